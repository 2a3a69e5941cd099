"""The texture datasets (tests/helpers/textures.py) are what they claim: their classes, sizes and modes as the
download step reads them, reproducible by seed, each texture's orientation and scale as named, and nothing
but the texture telling the classes apart."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from retrain_steps import datasets, settings
from tests.helpers.datasets import write_folder
from tests.helpers.textures import PRETEXT, STRIPES_ALL, TEXTURES, texture, texture_files


def dominant_angle(field: np.ndarray) -> float:
    """The direction (degrees, 0-180) in which ``field`` varies most: the angle of its spectrum's peak."""
    spectrum = np.abs(np.fft.fftshift(np.fft.fft2(field - field.mean())))
    fy, fx = np.unravel_index(spectrum.argmax(), spectrum.shape)
    centre = field.shape[0] // 2
    return float(np.degrees(np.arctan2(fy - centre, fx - centre)) % 180)


def gradient_angle(field: np.ndarray) -> float:
    """The mean direction (degrees, 0-180) of ``field``'s gradients, from its structure tensor."""
    gy, gx = np.gradient(field)
    return float(np.degrees(0.5 * np.arctan2(2 * (gx * gy).sum(), (gx**2 - gy**2).sum())) % 180)


def spectral_centroid(field: np.ndarray) -> float:
    """The power-weighted mean spatial frequency of ``field`` (cycles per image)."""
    power = np.abs(np.fft.fft2(field - field.mean())) ** 2
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(field.shape[0]), np.fft.fftfreq(field.shape[1]), indexing="ij"))
    return float((power * f).sum() / power.sum() * field.shape[0])


@pytest.mark.parametrize(("size", "mode"), [(64, "RGB"), (224, "L")])
def test_the_download_step_reads_every_class_at_the_size_and_mode_asked(tmp_path, size, mode):
    files = texture_files(TEXTURES, 2, size, mode, seed=3)
    canonical, _ = datasets.read(f"file://{write_folder(tmp_path / 'textures', files)}")
    card = canonical.card("version")
    assert len(TEXTURES) >= 10 and card["class_names"] == sorted(TEXTURES)
    assert card["class_counts"] == dict.fromkeys(sorted(TEXTURES), 2)
    count = 2 * len(TEXTURES)
    assert card["sizes_seen"] == {f"{size}x{size}": count} and card["modes_seen"] == {mode: count}
    stored = min(size, settings.current().max_stored_side)  # RETRAIN_MAX_STORED_SIDE
    assert canonical.images.shape == (count, stored, stored, 3 if mode == "RGB" else 1)


def test_a_seed_gives_the_same_images_whichever_classes_are_drawn():
    files = texture_files(TEXTURES, 2, 64, "RGB", seed=7)
    assert texture_files(TEXTURES, 2, 64, "RGB", seed=7) == files
    assert texture_files(("rings", "dots"), 2, 64, "RGB", seed=7) == {k: v for k, v in files.items()
                                                                      if k.split("/")[0] in ("rings", "dots")}
    other = texture_files(TEXTURES, 2, 64, "RGB", seed=8)
    assert all(other[name] != data for name, data in files.items())
    assert len(set(files.values())) == len(files)


def test_each_texture_has_the_orientation_and_scale_its_name_says():
    rng = np.random.default_rng(0)
    assert not set(PRETEXT) & set(TEXTURES)
    for kind, angle in STRIPES_ALL.items():  # stripes vary across their lines: the spectrum peaks at the angle
        for _ in range(5):
            found = gradient_angle(texture(kind, 128, rng))
            assert min(abs(found - angle), 180 - abs(found - angle)) <= 12, (kind, found)

    def peak_angles(kind: str) -> set[int]:  # checkers: peaks on the diagonals of their axes
        return {round(dominant_angle(texture(kind, 128, rng)) / 45) % 4 for _ in range(8)}

    assert peak_angles("checkers") <= {1, 3} and peak_angles("diamonds") <= {0, 2}
    centroids = {kind: np.mean([spectral_centroid(texture(kind, 128, rng)) for _ in range(5)])
                 for kind in ("blobs", "grain")}
    assert centroids["grain"] > 2.5 * centroids["blobs"], centroids


def test_colour_and_brightness_say_nothing_about_the_class():
    """Per image: mean and spread of each colour channel. Between-class over within-class variance (one-way
    ANOVA's F) stays near 1 for every one, as for random labels: only the texture tells the classes apart
    (a class-dependent colour, background or gamma gives F of 5 to 30 here)."""
    per_class = 40
    files = texture_files(TEXTURES, per_class, 32, "RGB", seed=5)
    features, labels = [], []
    for name, data in files.items():
        pixels = np.asarray(Image.open(io.BytesIO(data)), np.float32)
        features.append([*pixels.mean((0, 1)), *pixels.std((0, 1))])
        labels.append(TEXTURES.index(name.split("/")[0]))
    features, labels, classes = np.array(features), np.array(labels), len(TEXTURES)
    means = np.stack([features[labels == k].mean(0) for k in range(classes)])
    between = ((means - features.mean(0)) ** 2).sum(0) * per_class / (classes - 1)
    within = sum(((features[labels == k] - means[k]) ** 2).sum(0) for k in range(classes)) / (len(labels) - classes)
    assert (between / within).max() < 2.5, between / within  # F(12, 507) > 2.5: p < 0.005


def test_unknown_textures_and_tiny_sizes_are_refused_by_name():
    with pytest.raises(ValueError, match="'zebra'"):
        texture_files(("stripes-0", "zebra"), 1)
    with pytest.raises(ValueError, match="got 8"):
        texture_files(TEXTURES, 1, size=8)
