"""Dataset generators for tests (no downloads): shapes drawn with Pillow, learnable but not trivial.

Every image is one shape (its class) at a random position, size and rotation on a noisy
background; ``rgb`` images also get random colours, so colour alone says nothing about the class.
"""

from __future__ import annotations

import io
import json
import math
import tarfile
import zipfile
from pathlib import Path

import numpy as np

SHAPES = ("circle", "square", "triangle", "cross")


def shape_image(kind: str, size: int, rng: np.random.Generator, mode: str = "L"):
    from PIL import Image, ImageDraw

    background = tuple(int(v) for v in rng.integers(0, 90, 3))
    ink = tuple(int(v) for v in rng.integers(150, 256, 3))
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    radius = size * rng.uniform(0.22, 0.36)
    cx, cy = (size / 2 + rng.uniform(-0.12, 0.12, 2) * size)
    angle = rng.uniform(0, math.pi / 2)
    if kind == "circle":
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=ink)
    elif kind in ("square", "triangle"):
        corners = 4 if kind == "square" else 3
        points = [(cx + radius * math.cos(angle + 2 * math.pi * i / corners),
                   cy + radius * math.sin(angle + 2 * math.pi * i / corners)) for i in range(corners)]
        draw.polygon(points, fill=ink)
    else:
        width = max(1, int(radius / 2.5))
        draw.line([cx - radius, cy, cx + radius, cy], fill=ink, width=width)
        draw.line([cx, cy - radius, cx, cy + radius], fill=ink, width=width)
    pixels = np.asarray(image, np.float32) + rng.normal(0, 12, (size, size, 3))
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    return image.convert(mode)


def png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def image_files(classes, per_class: int, size: int, mode: str, seed: int) -> dict[str, bytes]:
    """``{"<class>/<n>.png": png bytes}``."""
    rng = np.random.default_rng(seed)
    return {f"{kind}/{i:04d}.png": png(shape_image(kind, size, rng, mode)) for kind in classes for i in range(per_class)}


def write_folder(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def zip_bytes(files: dict[str, bytes], top: str = "") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(f"{top}{name}", data)
    return buffer.getvalue()


def tar_gz_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def label_studio_export(files: dict[str, bytes], base_url: str, unannotated: int = 0) -> bytes:
    """A Label Studio JSON export (Choices) whose images are ``<base_url>/<name>``; the first
    ``unannotated`` tasks have no annotation."""
    tasks = []
    for i, name in enumerate(sorted(files)):
        task = {"id": i + 1, "data": {"image": f"{base_url}/{name}"}, "annotations": [], "predictions": []}
        if i >= unannotated:
            task["annotations"] = [{
                "id": 1000 + i, "was_cancelled": False, "created_at": "2026-11-01T10:00:00Z",
                "result": [{"from_name": "choice", "to_name": "image", "type": "choices",
                            "value": {"choices": [name.split("/")[0]]}}],
            }]
        tasks.append(task)
    return json.dumps(tasks).encode()
