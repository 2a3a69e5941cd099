"""PNG figures for the steps' reports (matplotlib, Agg backend, no display needed)."""

from __future__ import annotations

import io

import numpy as np


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    _figure().close(fig)
    return buffer.getvalue()


def training_curve(history: list[dict]) -> bytes:
    """Loss and validation accuracy per epoch."""
    plt = _figure()
    epochs = [h["epoch"] for h in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    left.plot(epochs, [h["loss"] for h in history], label="train loss")
    left.plot(epochs, [h["val_loss"] for h in history], label="val loss")
    left.set_xlabel("epoch")
    left.legend()
    right.plot(epochs, [h["val_accuracy"] for h in history], color="tab:green")
    right.set_xlabel("epoch")
    right.set_ylabel("val accuracy")
    fig.tight_layout()
    return _png(fig)


DARK_TEXT, LIGHT_TEXT = "black", "white"


def text_colour(cell_rgba) -> str:
    """The colour of a count written on a cell: white on a dark cell, black on a light one (by the
    cell's relative luminance, ITU-R BT.709 weights)."""
    red, green, blue = cell_rgba[:3]
    return LIGHT_TEXT if 0.2126 * red + 0.7152 * green + 0.0722 * blue < 0.5 else DARK_TEXT


def confusion_matrix(matrix: np.ndarray, class_names: list[str] | None = None) -> bytes:
    """A labelled confusion-matrix heat map (rows: true class, columns: predicted); each count in
    the colour that reads on its cell."""
    plt = _figure()
    fig, axis = plt.subplots(figsize=(5, 5))
    image = axis.imshow(matrix, cmap="Blues")
    for (row, col), count in np.ndenumerate(matrix):
        colour = text_colour(image.cmap(image.norm(count)))
        axis.text(col, row, str(count), ha="center", va="center", fontsize=8, color=colour)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    names = class_names or [str(i) for i in range(matrix.shape[0])]
    axis.set_xticks(range(matrix.shape[1]), names, rotation=45 if max(map(len, names)) > 2 else 0, ha="right")
    axis.set_yticks(range(matrix.shape[0]), names)
    fig.tight_layout()
    return _png(fig)
