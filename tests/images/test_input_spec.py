"""The input spec: one prepare() for training, evaluation and serving; the CNN family it sizes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from retrain_steps.errors import InputError
from retrain_steps.input_spec import DIGITS, InputSpec, convert, decode_upload, from_instances, prepare, spec_of_model
from tests.conftest import run_cli
from tests.helpers.datasets import image_files, png, shape_image, write_folder

RGB32 = InputSpec(height=32, width=32, channels=3, class_names=("circle", "square", "triangle"),
                  mean=(0.2, 0.3, 0.4), std=(0.25, 0.25, 0.25))


def test_an_upload_of_any_size_and_mode_prepares_like_the_training_image():
    image = shape_image("circle", 32, np.random.default_rng(0), mode="RGB")
    training = prepare(np.asarray(image)[None], RGB32)
    assert np.array_equal(prepare(decode_upload(png(image), RGB32), RGB32), training), "same image, same input"
    uploads = (image.resize((97, 97), Image.Resampling.NEAREST), image.convert("RGBA"),
               image.convert("P", palette=Image.Palette.ADAPTIVE), image.convert("L"))
    for upload in uploads:
        served = prepare(decode_upload(png(upload), RGB32), RGB32)
        assert served.shape == training.shape == (1, 3, 32, 32)
        assert np.abs(served - training).mean() < 0.5, "the server must see what training saw"
    assert np.abs(prepare(np.asarray(shape_image("square", 32, np.random.default_rng(9), mode="RGB"))[None], RGB32)
                  - training).mean() > 0.5, "another image is farther away than any re-encoding of this one"


def test_prepare_normalises_with_the_specs_statistics_and_converts_channels():
    images = np.random.default_rng(1).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    fitted = RGB32.with_statistics(images)
    x = prepare(images, fitted)
    assert np.allclose(x.mean(axis=(0, 2, 3)), 0, atol=1e-4) and np.allclose(x.std(axis=(0, 2, 3)), 1, atol=1e-3)
    gray = InputSpec(height=16, width=16, channels=1, class_names=("a", "b"))
    assert prepare(images, gray).shape == (5, 1, 16, 16)
    assert convert(images[..., :1], RGB32).shape == (5, 32, 32, 3)


def test_json_instances_take_the_models_shape_flat_or_nested():
    pixels = np.random.default_rng(2).integers(0, 256, (2, 32, 32, 3))
    assert np.array_equal(from_instances(pixels.tolist(), RGB32), pixels)
    assert np.array_equal(from_instances(pixels.reshape(2, -1).tolist(), RGB32), pixels)
    with pytest.raises(InputError, match=r"3072 numbers, or nested \[32\]\[32\]\[3\]"):
        from_instances(pixels[:, :8].tolist(), RGB32)
    with pytest.raises(InputError, match=r"\[0, 255\]"):
        from_instances((pixels + 300).tolist(), RGB32)
    with pytest.raises(InputError, match=r"\[0, 16\]"):
        from_instances([[17] * 64], DIGITS)


def test_specs_are_validated_and_compared():
    with pytest.raises(ValueError, match="two distinct class names"):
        InputSpec(height=8, width=8, channels=1, class_names=("a", "a"))
    with pytest.raises(ValueError, match="8x8 grayscale"):
        InputSpec(height=16, width=16, channels=1, class_names=("a", "b"), profile="digits")
    assert spec_of_model({"framework": "torch", "file": "model.pt"}) == DIGITS, "models from before specs are digits"
    assert RGB32.compatible(RGB32) is None
    assert "predicts classes" in DIGITS.compatible(RGB32)
    other_size = InputSpec(height=64, width=64, channels=3, class_names=RGB32.class_names)
    assert "shape (3, 64, 64)" in RGB32.compatible(other_size)


@pytest.mark.parametrize(("side", "channels", "stages"), [(8, 1, 1), (28, 1, 2), (32, 3, 3), (64, 3, 4)])
def test_the_cnn_family_scales_with_the_input_in_both_frameworks(side, channels, stages):
    import keras
    import torch

    from retrain_steps.models import conv_stages, keras_cnn, torch_cnn

    spec = InputSpec(height=side, width=side, channels=channels, class_names=tuple("abcde"),
                     profile="digits" if side == 8 else "image")
    assert len(conv_stages(spec)) == stages
    x = np.zeros((2, channels, side, side), np.float32)
    assert torch_cnn(spec)(torch.from_numpy(x)).shape == (2, 5)
    assert keras_cnn(1e-3, spec)(np.transpose(x, (0, 2, 3, 1))).shape == (2, 5)


def test_the_digits_cnn_keeps_the_layers_of_earlier_digits_models():
    keys = list(__import__("retrain_steps.models", fromlist=["torch_cnn"]).torch_cnn(DIGITS).state_dict())
    assert keys == ["0.weight", "0.bias", "2.weight", "2.bias", "7.weight", "7.bias", "10.weight", "10.bias"]


def test_warm_start_from_a_model_of_other_classes_is_refused(trained, tmp_path):
    root = write_folder(tmp_path / "shapes", image_files(("circle", "square"), 10, 8, "L", seed=3))
    run_cli("retrain_steps", "download", "--source", f"file://{root}", "--output", f"file://{tmp_path}/dl")
    run_cli("retrain_steps", "preprocess", "--input", f"file://{tmp_path}/dl", "--output", f"file://{tmp_path}/pp")
    result = run_cli("retrain_steps", "train", "--input", f"file://{tmp_path}/pp", "--output", f"file://{tmp_path}/t",
                     "--init-from", trained["train"], check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "cannot warm-start from the model at" in result.stderr and "predicts classes" in result.stderr


def test_a_bad_spec_override_is_named(trained, tmp_path):
    result = run_cli("retrain_steps", "preprocess", "--input", trained["download"], "--output", f"file://{tmp_path}/p",
                     "--image-size", "16", check=False)
    assert result.returncode == 2 and "the digits profile takes 8x8 grayscale images" in result.stderr
    resized = run_cli("retrain_steps", "preprocess", "--input", trained["download"], "--output",
                      f"file://{tmp_path}/p2", "--image-size", "16", "--profile", "image", "--channels", "3")
    assert '"height": 16' in (tmp_path / "p2" / "spec.json").read_text() and resized.returncode == 0


