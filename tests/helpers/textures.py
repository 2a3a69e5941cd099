"""Texture datasets for tests and benchmarks (no downloads): classes that differ only by texture.

Each image is one texture patch (its class) on a cluttered background:

* the patch: a random ellipse covering about a quarter to two thirds of the image, at a random place,
  filled with the class's texture at a jittered scale (period x0.75 to x1.33), phase and angle, in two
  random colours at a random contrast;
* the background: smooth "cloud" noise in two other random colours, with a faint texture of *another*
  class over it (clutter the model must learn to ignore);
* the whole image: a lighting gradient in a random direction, a random gamma, pixel noise.

Colour, brightness and position say nothing about the class; only the texture in the patch does. Sizes
are given in fractions of the image side, so one dataset looks the same at 64 and at 224 pixels (the
finest period is ~6 px at 64 px). Every image comes from its own generator ``(seed, class, index)``, so a
dataset is reproducible by seed and a class's images do not depend on which other classes are drawn.

    files = texture_files(TEXTURES, per_class=50, size=64, mode="RGB", seed=1)   # {"<class>/<n>.png": bytes}
    write_folder(tmp_path / "textures", files)   # tests.helpers.datasets: what ``download`` reads

    python -m tests.helpers.textures OUT_DIR [--per-class N] [--size PX] [--mode L|RGB] [--seed S] [--pretext]

``PRETEXT`` is a second family of textures (stripes at the angles between TEXTURES', zigzags, bricks,
spirals, plaids), disjoint from TEXTURES: pretrain on it, fine-tune on TEXTURES.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.helpers.datasets import png, write_folder  # noqa: E402

# Oriented stripes: the angle (degrees, +-ANGLE_JITTER) is the class.
STRIPES = {"stripes-0": 0, "stripes-45": 45, "stripes-90": 90, "stripes-135": 135}
ANGLE_JITTER = 10
TEXTURES = (*STRIPES, "checkers", "diamonds", "grid", "dots", "speckle", "rings", "waves", "blobs", "grain")
# Other textures, none of them in TEXTURES, drawn the same way: a pretext task to pretrain a backbone on before
# fine-tuning it on TEXTURES (transfer across classes, as from ImageNet to a user's data).
PRETEXT_STRIPES = {"stripes-22": 22.5, "stripes-67": 67.5, "stripes-112": 112.5, "stripes-157": 157.5}
PRETEXT = (*PRETEXT_STRIPES, "zigzag", "bricks", "spiral", "plaid")
STRIPES_ALL = {**STRIPES, **PRETEXT_STRIPES}
PERIOD = (0.10, 0.16)  # the base period of the periodic textures, in image sides
SCALE = (0.75, 1.33)  # the per-image scale jitter of that period
LUMA = np.array([0.299, 0.587, 0.114])  # Pillow's RGB -> L weights
MIN_LUMA_GAP = 45  # the least grey-level difference between a texture's two colours


def _rotated(x: np.ndarray, y: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    a = math.radians(degrees)
    return x * math.cos(a) + y * math.sin(a), -x * math.sin(a) + y * math.cos(a)


def _square(t: np.ndarray) -> np.ndarray:
    """A square wave of period 1 in [0, 1], slightly soft (anti-aliased)."""
    return np.clip(0.5 + 3.0 * np.sin(2 * np.pi * t), 0, 1)


def _spectral_noise(size: int, rng: np.random.Generator, exponent: float, low: float = 0.0,
                    high: float = 1.0) -> np.ndarray:
    """Gaussian noise with a ``1/f^exponent`` amplitude spectrum between ``low`` and ``high`` (in units of
    the Nyquist frequency: 2 x cycles per pixel), scaled to [0, 1]."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    f = np.sqrt(fx**2 + fy**2) * 2
    amplitude = np.where((f > low) & (f <= high), 1 / np.maximum(f, 1 / size) ** exponent, 0.0)
    spectrum = amplitude * (rng.normal(size=f.shape) + 1j * rng.normal(size=f.shape))
    field = np.fft.irfft2(spectrum, s=(size, size))
    field -= field.min()
    return field / max(field.max(), 1e-9)


def texture(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """The texture ``kind`` as a ``(size, size)`` float field in [0, 1] (1: the texture's ink)."""
    y, x = (np.mgrid[0:size, 0:size] + 0.5) / size - 0.5
    period = rng.uniform(*PERIOD) * rng.uniform(*SCALE)
    phase = rng.uniform(0, 1, 2)
    if kind in STRIPES_ALL:
        u, _ = _rotated(x, y, STRIPES_ALL[kind] + rng.uniform(-ANGLE_JITTER, ANGLE_JITTER))
        return _square(u / period + phase[0])
    if kind in ("checkers", "diamonds"):
        angle = (0 if kind == "checkers" else 45) + rng.uniform(-ANGLE_JITTER, ANGLE_JITTER)
        u, v = _rotated(x, y, angle)
        return np.abs(_square(u / (2 * period) + phase[0]) - _square(v / (2 * period) + phase[1]))
    if kind == "grid":  # thin lines both ways, any angle
        u, v = _rotated(x, y, rng.uniform(0, 90))
        line = lambda t: np.clip((np.abs(((t % 1) + 1) % 1 - 0.5) - 0.38) * 12, 0, 1)  # noqa: E731
        return np.maximum(line(u / period + phase[0]), line(v / period + phase[1]))
    if kind == "dots":  # a lattice of discs, any angle
        u, v = _rotated(x, y, rng.uniform(0, 90))
        du, dv = (u / period + phase[0]) % 1 - 0.5, (v / period + phase[1]) % 1 - 0.5
        return np.clip((0.28 - np.sqrt(du**2 + dv**2)) * 12, 0, 1)
    if kind == "speckle":  # the same discs, scattered at random
        count = int(2.0 / period**2)
        centres = rng.uniform(-0.55, 0.55, (count, 2))
        radius = 0.28 * period
        distance = np.full((size, size), np.inf)
        for cx, cy in centres:
            np.minimum(distance, np.hypot(x - cx, y - cy), out=distance)
        return np.clip((radius - distance) / radius * 4, 0, 1)
    if kind == "rings":  # concentric around a point anywhere in or near the image
        cx, cy = rng.uniform(-0.6, 0.6, 2)
        return _square(np.hypot(x - cx, y - cy) / period + phase[0])
    if kind == "waves":  # stripes bent by a sine, any angle
        u, v = _rotated(x, y, rng.uniform(0, 180))
        bend = rng.uniform(0.25, 0.45) * period * 2
        return _square((u + bend * np.sin(2 * np.pi * v / (period * rng.uniform(2.5, 4)))) / period + phase[0])
    if kind == "blobs":  # low-pass noise, thresholded into soft blobs
        field = _spectral_noise(size, rng, 1.0, high=2 * 0.6 / period / size)
        return np.clip((field - np.median(field)) * 10 + 0.5, 0, 1)
    if kind == "grain":  # band-pass noise about the periodic textures' scale: grain, no orientation
        field = _spectral_noise(size, rng, 0.0, low=2 * 1.2 / period / size, high=2 * 2.5 / period / size)
        return np.clip((field - np.median(field)) * 4 + 0.5, 0, 1)
    if kind == "zigzag":  # stripes bent by a triangle wave, any angle
        u, v = _rotated(x, y, rng.uniform(0, 180))
        wave = np.abs((v / (period * 2) + phase[1]) % 1 - 0.5) * 2 - 0.5
        return _square((u + wave * period * rng.uniform(1.0, 1.6)) / period + phase[0])
    if kind == "bricks":  # rows of bricks, each row offset by half a brick, any angle
        u, v = _rotated(x, y, rng.uniform(0, 180))
        row = np.floor(v / period + phase[1])
        across = (u / (2 * period) + phase[0] + 0.5 * (row % 2)) % 1
        along = (v / period + phase[1]) % 1
        return np.maximum(np.clip((0.08 - np.minimum(along, 1 - along)) * 14, 0, 1),
                          np.clip((0.05 - np.minimum(across, 1 - across)) * 28, 0, 1))
    if kind == "spiral":  # arms winding out of a point in or near the image
        cx, cy = rng.uniform(-0.4, 0.4, 2)
        arms = int(rng.integers(2, 5))
        theta = np.arctan2(y - cy, x - cx)
        return _square(np.hypot(x - cx, y - cy) / (period * arms / 2) + arms * theta / (2 * np.pi) + phase[0])
    if kind == "plaid":  # two soft sine gratings at right angles, summed
        u, v = _rotated(x, y, rng.uniform(0, 90))
        return (2 + np.sin(2 * np.pi * (u / period + phase[0]))
                + np.sin(2 * np.pi * (v / (1.5 * period) + phase[1]))) / 4
    raise ValueError(f"unknown texture {kind!r}; expected one of {list(TEXTURES + PRETEXT)}")


def _colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0, 255, 3)


def texture_image(kind: str, size: int, rng: np.random.Generator, mode: str = "RGB"):
    """One image of class ``kind`` (a Pillow image, ``mode`` "L" or "RGB", ``size`` x ``size``)."""
    from PIL import Image

    if mode not in ("L", "RGB"):
        raise ValueError(f"mode must be 'L' or 'RGB', got {mode!r}")
    y, x = (np.mgrid[0:size, 0:size] + 0.5) / size - 0.5
    # background: clouds in two colours, and a faint texture of another class
    clouds = _spectral_noise(size, rng, 2.0)[..., None]
    back = _colour(rng) * (1 - clouds) + _colour(rng) * clouds
    other = rng.choice([t for t in (PRETEXT if kind in PRETEXT else TEXTURES) if t != kind])
    back += (texture(str(other), size, rng)[..., None] - 0.5) * rng.uniform(0.05, 0.2) * 255
    # the patch: an ellipse at a random place, the class's texture in two colours at a random contrast
    ink, paper = _colour(rng), _colour(rng)
    contrast = rng.uniform(0.45, 1.0)
    mid = (ink + paper) / 2
    ink, paper = mid + (ink - mid) * contrast, mid + (paper - mid) * contrast
    gap = LUMA @ (ink - paper)
    if abs(gap) < MIN_LUMA_GAP:  # visible in grey too: push the colours apart along the grey axis
        push = (MIN_LUMA_GAP - abs(gap)) / 2 * (1 if gap >= 0 else -1)
        ink, paper = np.clip(ink + push, 0, 255), np.clip(paper - push, 0, 255)
    field = texture(kind, size, rng)[..., None]
    patch = paper * (1 - field) + ink * field
    axes = rng.uniform(0.28, 0.46, 2)
    centre = rng.uniform(-0.18, 0.18, 2)
    u, v = _rotated(x - centre[0], y - centre[1], rng.uniform(0, 180))
    inside = np.clip((1 - np.sqrt((u / axes[0]) ** 2 + (v / axes[1]) ** 2)) * size / 3, 0, 1)[..., None]
    pixels = back * (1 - inside) + patch * inside
    # lighting: a gradient in a random direction, a gamma, then pixel noise
    g, _ = _rotated(x, y, rng.uniform(0, 360))
    pixels = pixels * (1 + rng.uniform(0.2, 0.6) * g)[..., None]
    pixels = 255 * (np.clip(pixels, 0, 255) / 255) ** rng.uniform(0.7, 1.4)
    pixels += rng.normal(0, rng.uniform(2, 10), pixels.shape)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    return image.convert(mode)


def texture_files(classes=TEXTURES, per_class: int = 50, size: int = 64, mode: str = "RGB",
                  seed: int = 0) -> dict[str, bytes]:
    """``{"<class>/<n>.png": png bytes}``: ``per_class`` images of each class, reproducible by ``seed``."""
    known = TEXTURES + PRETEXT  # a texture's index here seeds its images: new ones go at the end
    unknown = [kind for kind in classes if kind not in known]
    if unknown:
        raise ValueError(f"unknown textures {unknown}; expected some of {list(known)}")
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    return {f"{kind}/{i:04d}.png": png(texture_image(kind, size, np.random.default_rng([seed, known.index(kind), i]),
                                                     mode))
            for kind in classes for i in range(per_class)}


def preprocessed_textures(root: Path, name: str, classes, per_class: int, size: int, seed: int, run_step) -> str:
    """A texture dataset (RGB) written under ``root``, then downloaded and preprocessed by ``run_step(*args)``, a
    runner of the step CLI ``python -m retrain_steps ARGS``; the preprocess output URI."""
    source = write_folder(root / "sources" / name, texture_files(classes, per_class, size, "RGB", seed))
    run_step("download", "--source", f"file://{source}/", "--output", f"file://{root}/{name}/download",
             "--allow", f"file://{root}/")
    run_step("preprocess", "--input", f"file://{root}/{name}/download", "--output", f"file://{root}/{name}/preprocess")
    return f"file://{root}/{name}/preprocess"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, help="folder to write <class>/<n>.png into")
    parser.add_argument("--per-class", type=int, default=50)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--mode", choices=("L", "RGB"), default="RGB")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pretext", action="store_true", help="the pretext textures (PRETEXT) instead of TEXTURES")
    args = parser.parse_args(argv)
    classes = PRETEXT if args.pretext else TEXTURES
    write_folder(args.output, texture_files(classes, args.per_class, args.size, args.mode, args.seed))


if __name__ == "__main__":
    main()
