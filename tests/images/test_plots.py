"""The confusion matrix's counts read on their cells: white on the dark ones, black on the light ones."""

from __future__ import annotations

import io

import numpy as np
from matplotlib import colormaps

from retrain_steps import plots


def pixels(png: bytes) -> np.ndarray:
    import matplotlib.image

    return (matplotlib.image.imread(io.BytesIO(png), format="png")[..., :3] * 255).round().astype(int)


def test_text_colour_follows_the_cell_brightness():
    blues = colormaps["Blues"]
    assert plots.text_colour(blues(1.0)) == plots.LIGHT_TEXT, "navy, the diagonal of a good model"
    assert plots.text_colour(blues(0.0)) == plots.DARK_TEXT, "near white, an empty cell"
    assert plots.text_colour((0.5, 0.5, 0.5, 1.0)) == plots.DARK_TEXT


def test_the_count_on_the_darkest_cell_is_drawn_in_white():
    """Render a matrix whose top-left cell is navy; inside that cell's area there are white (text) pixels."""
    png = plots.confusion_matrix(np.array([[88, 0], [1, 3]]), ["a", "b"])
    image = pixels(png)
    navy = (np.array(colormaps["Blues"](1.0)[:3]) * 255).round().astype(int)
    cell = np.argwhere(np.abs(image - navy).max(axis=-1) <= 2)
    assert len(cell) > 1000, "the darkest cell is navy"
    (top, left), (bottom, right) = cell.min(axis=0), cell.max(axis=0)
    inside = image[top:bottom + 1, left:right + 1]
    assert (inside.min(axis=-1) >= 150).sum() > 20, "the count is written in white (anti-aliased) on navy"
    assert (inside.max(axis=-1) <= 30).sum() == 0, "not in black"
