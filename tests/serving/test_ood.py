"""The server says when it does not know: the OOD score trained with the model, the confidence floor, old models."""

from __future__ import annotations

import dataclasses
import io
import json
import shutil

import numpy as np
import pytest

from retrain_steps.artifacts import local_path
from retrain_steps.preprocess import load_spec, load_splits
from serving.service import EXAMPLE_INSTANCE
from tests.serving.test_batching import service_of


@pytest.fixture(scope="module")
def model(trained):
    from serving.service import load_folder

    return load_folder(local_path(trained["train"]), "v1")


def jpeg(pixels: np.ndarray) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=90)
    return out.getvalue()


def colourful_photo(seed: int) -> bytes:
    """A 640x480 colour picture: stripes and gradients under a few filled ellipses of random colours."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:480, 0:640]
    pixels = np.stack([np.sin(x / rng.uniform(20, 150) + rng.uniform(0, 6)) * 127 + 128,
                       np.cos(y / rng.uniform(20, 150)) * 127 + 128, (x + y) % 256], axis=-1).astype(np.uint8)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    for _ in range(10):
        left, top = rng.integers(0, 640), rng.integers(0, 480)
        draw.ellipse([left, top, left + rng.integers(20, 200), top + rng.integers(20, 200)],
                     fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    return jpeg(np.asarray(image))


def flagged(service, model, requests) -> float:
    """The share of the requests' images the service answers ``in_distribution: false``."""
    verdicts = []
    for result in service.predict_batch([(model, data, rows) for data, rows in requests]):
        value = result["in_distribution"]
        verdicts += value if isinstance(value, list) else [value]
    assert all(isinstance(v, bool) for v in verdicts)
    return 1 - float(np.mean(verdicts))


def test_test_digits_pass_and_photos_and_noise_are_flagged(model, trained):
    """Measured on the session model's own test split (held out from training and from the threshold)."""
    splits = load_splits(trained["preprocess"], load_spec(trained["preprocess"]))
    digits = (splits["x_test"][:, :, :, 0] / 255 * 16).reshape(len(splits["x_test"]), -1).tolist()
    rng = np.random.default_rng(0)
    service = service_of(model)
    rates = {
        "digits": flagged(service, model, [(None, digits)]),
        "photos": flagged(service, model, [(colourful_photo(seed), None) for seed in range(12)]),
        "noise uploads": flagged(service, model, [(jpeg(rng.integers(0, 256, (64, 64, 3), np.uint8)), None)
                                                  for _ in range(12)]),
        "noise instances": flagged(service, model, [(None, rng.integers(0, 17, (100, 64)).tolist())]),
    }
    assert rates["digits"] <= 0.10, rates
    assert min(rates["photos"], rates["noise uploads"], rates["noise instances"]) >= 0.8, rates


def test_the_score_and_floor_are_fields_of_every_answer(model):
    from serving.service import answer

    (upload,) = service_of(model).predict_batch([(model, colourful_photo(1), None)])
    assert upload["ood_score"] > 1 and upload["in_distribution"] is False and isinstance(upload["confident"], bool)
    assert {"prediction", "class_name", "top_k", "probabilities", "model_version"} <= set(upload)  # as before
    probabilities = np.array([[0.6, 0.4], [0.3, 0.7]])
    rows = answer(probabilities, dataclasses.replace(model.spec, class_names=("a", "b")), np.array([0.5, 1.5]), 0.65)
    assert [(r["confident"], r["ood_score"], r["in_distribution"]) for r in rows] == [(False, 0.5, True),
                                                                                    (True, 1.5, False)]


def test_a_model_without_statistics_serves_and_answers_unknown(trained, tmp_path):
    """A model trained before the OOD statistics (an older bento's) still serves; its answers say null."""
    from serving.service import load_folder

    folder = tmp_path / "old"
    shutil.copytree(local_path(trained["train"]), folder)
    (folder / "ood.json").unlink()
    old = load_folder(folder, "old")
    assert old.ood is None
    upload, instances = service_of(old).predict_batch([(old, colourful_photo(2), None),
                                                       (old, None, [EXAMPLE_INSTANCE, EXAMPLE_INSTANCE])])
    assert (upload["ood_score"], upload["in_distribution"]) == (None, None) and isinstance(upload["confident"], bool)
    assert instances["ood_scores"] == instances["in_distribution"] == [None, None]
    assert len(instances["confident"]) == 2 and instances["predictions"]


def test_packaging_carries_the_statistics_only_when_trained_with_them():
    from serving.package import model_files

    files = {"model.pt": "a", "model.json": "b"}
    assert model_files({"file": "model.pt", "files": files}) == ("model.pt", "model.json")
    assert model_files({"file": "model.pt", "files": {**files, "ood.json": "c"}}) == ("model.pt", "model.json", "ood.json")


def test_malformed_statistics_are_refused_naming_the_problem(trained):
    from retrain_steps.ood import Scorer

    stats = json.loads((local_path(trained["train"]) / "ood.json").read_text())
    with pytest.raises(ValueError, match="unknown OOD score 'energy'"):
        Scorer({**stats, "score": "energy"})
    with pytest.raises(ValueError, match="malformed OOD statistics"):
        Scorer({**stats, "mean": stats["mean"][:10]})


def test_large_inputs_keep_the_statistics_small_and_still_separate():
    """224x224x3 images: the statistics are pooled to at most MAX_FEATURES values (~1 MB of JSON, not ~100 MB),
    and images like the training ones still score below images unlike them."""
    from retrain_steps import ood

    rng = np.random.default_rng(0)
    base = rng.random((1, 3, 224, 224), np.float32)
    like = lambda n: (base + 0.05 * rng.standard_normal((n, 3, 224, 224))).astype(np.float32)  # noqa: E731
    stats = ood.fit(like(60), like(20))
    assert stats["pool"] == ood.pool_for(3 * 224 * 224) > 1 and len(stats["mean"]) <= ood.MAX_FEATURES
    assert len(json.dumps(stats)) < 2_000_000
    scorer = ood.Scorer(json.loads(json.dumps(stats)))
    unlike = rng.random((10, 3, 224, 224), np.float32)
    assert np.median(scorer(like(10))) < 1.5 < np.median(scorer(unlike))
    with pytest.raises(ValueError, match="pool"):
        ood.Scorer({**stats, "pool": 0})
