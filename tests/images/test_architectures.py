"""Standard architectures from torchvision: built by name for any input (grayscale or RGB) and class count."""

from __future__ import annotations

import pytest

from retrain_steps import architectures
from retrain_steps.errors import InputError


@pytest.mark.parametrize("name", architectures.ARCHITECTURES)
def test_each_architecture_takes_grayscale_at_its_smallest_size(name):
    import torch

    side = architectures.MIN_SIDE[name]
    model = architectures.build(name, 1, side, side + 8, 7).eval()
    assert architectures.first_conv(model)[2].in_channels == 1
    with torch.inference_mode():
        assert model(torch.rand(2, 1, side, side + 8)).shape == (2, 7)


def test_small_inputs_get_the_small_stem_from_scratch():
    """Below 64 px: ResNet's 3x3 stride-1 stem without max-pool (a 28x28 image 4x4 after layer4, not 1x1), the
    first convolution of MobileNetV3 and EfficientNet at stride 1; from 64 px, or pretrained, the ImageNet stem."""
    import torch

    assert architectures.stem_for("resnet18", 28, 28) == architectures.stem_for("efficientnet_b0", 63, 200) == "small"
    assert architectures.stem_for("resnet18", 64, 64) == architectures.stem_for("convnext_tiny", 32, 32) == "imagenet"
    small, imagenet = (architectures.build("resnet18", 1, 28, 28, 10, stem).eval() for stem in ("small", "imagenet"))
    conv = architectures.first_conv(small)[2]
    assert (conv.in_channels, conv.kernel_size, conv.stride) == (1, (3, 3), (1, 1))
    assert isinstance(small.maxpool, torch.nn.Identity)
    sides = {}
    for name, model in (("small", small), ("imagenet", imagenet)):
        model.layer4.register_forward_hook(lambda module, args, out, name=name: sides.__setitem__(name, out.shape[-1]))
        with torch.inference_mode():
            assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    assert sides == {"small": 4, "imagenet": 1}
    mobile = architectures.build("mobilenet_v3_small", 3, 28, 28, 10, "small")
    assert architectures.first_conv(mobile)[2].stride == (1, 1)
    with pytest.raises(ValueError, match="convnext_tiny has no small-input stem"):
        architectures.build("convnext_tiny", 3, 32, 32, 10, "small")


def test_a_small_stem_is_recorded_trained_and_rebuilt(trained, tmp_path):
    """train records the stem in model.json and metrics.json; load_predictor rebuilds it, and from the weights
    alone (no model.json) tells it apart from the ImageNet stem by its shapes."""
    import json
    import shutil

    import numpy as np

    from retrain_steps import models
    from tests.conftest import run_cli

    out = tmp_path / "t"
    run_cli("retrain_steps", "train", "--input", trained["preprocess"], "--output", f"file://{out}",
            "--architecture", "resnet18", "--epochs", "1", "--batch-size", "128")
    info, metrics = (json.loads((out / name).read_text()) for name in ("model.json", "metrics.json"))
    assert info["stem"] == metrics["stem"] == "small" and info["architecture"] == "resnet18"
    framework, spec = models.read_model_info(out)
    x = np.random.default_rng(0).normal(size=(4, *spec.shape)).astype("float32")
    expected = models.load_predictor(out, framework, spec)(x)
    bare = tmp_path / "bare"
    shutil.copytree(out, bare)
    (bare / "model.json").unlink()
    state = __import__("torch").load(bare / "model.pt", weights_only=True)
    assert models.architecture_of_state(state, spec) == ("resnet18", "small")
    np.testing.assert_allclose(models.load_predictor(bare, framework, spec)(x), expected, atol=1e-6)
    (out / "model.json").write_text(json.dumps({**info, "stem": "imagenet"}))
    with pytest.raises(RuntimeError, match="size mismatch for conv1.weight"):
        models.load_predictor(out, framework, spec)


def test_weights_of_no_architecture_fall_back_to_the_cnn_whose_load_names_the_mismatch():
    """From weights alone, at 32 px (where ConvNeXt fits but has no small stem): no architecture's shapes, so the
    CNN, whose load then names the mismatch."""
    import torch

    from retrain_steps import models
    from retrain_steps.input_spec import InputSpec

    spec = InputSpec(height=32, width=32, channels=3, class_names=("a", "b"), mean=(0.5,) * 3, std=(0.2,) * 3)
    assert models.architecture_of_state({"weight": torch.zeros(3)}, spec) == ("cnn", "imagenet")


def test_a_warm_start_keeps_the_warm_models_stem(tmp_path):
    """``auto`` with ``--init-from``: the warm model's architecture and stem, whichever stem this size would pick
    from scratch (a ResNet-18 at 28 px from before small stems has the ImageNet one: its weights are for it)."""
    import argparse
    import json

    from retrain_steps import train
    from retrain_steps.input_spec import InputSpec

    spec = InputSpec(height=28, width=28, channels=1, class_names=("a", "b"), mean=(0.5,), std=(0.2,))
    parser = argparse.ArgumentParser()
    train.add_arguments(parser)
    for recorded, expected in (({}, "imagenet"), ({"stem": "small"}, "small")):
        (tmp_path / "model.json").write_text(json.dumps({"framework": "torch", "architecture": "resnet18",
                                                         **recorded}))
        args = parser.parse_args(["--input", "file:///in", "--output", "file:///out",
                                  "--init-from", f"file://{tmp_path}"])
        assert train.choose_model(args, spec) == train.ModelChoice("resnet18", expected)
    assert train.choose_model(parser.parse_args(["--input", "i", "--output", "o", "--architecture", "resnet18"]),
                              spec) == train.ModelChoice("resnet18", "small"), "from scratch at 28 px"


def test_resnet18_classifies_224_pixel_rgb_images():
    import torch

    model = architectures.build("resnet18", 3, 224, 224, 10).eval()
    with torch.inference_mode():
        assert model(torch.rand(1, 3, 224, 224)).shape == (1, 10)


def test_a_grayscale_stem_sees_a_grey_image_as_the_rgb_stem_saw_it():
    import torch

    model = architectures.build("resnet18", 3, 64, 64, 4).eval()
    grey = torch.rand(2, 1, 64, 64)
    with torch.inference_mode():
        rgb_logits = model(grey.expand(-1, 3, -1, -1))
        architectures.adapt_first_conv(model, 1)
        assert torch.allclose(model(grey), rgb_logits, atol=1e-5)


@pytest.mark.parametrize(("args", "message"), [
    (("vgg16", 3, 64, 64, 10), r"unknown architecture 'vgg16'; expected one of \['resnet18'"),
    (("resnet18", 4, 64, 64, 10), "1 \\(grayscale\\) or 3 \\(RGB\\) channels, got 4"),
    (("convnext_tiny", 1, 28, 28, 10), "convnext_tiny needs images of at least 32x32 pixels, got 28x28"),
    (("resnet18", 1, 28, 7, 10), "at least 8x8 pixels, got 28x7"),
    (("resnet50", 3, 64, 64, 1), "at least 2 classes, got 1"),
])
def test_bad_requests_are_input_errors_naming_the_value(args, message):
    with pytest.raises(InputError, match=message):
        architectures.build(*args)


@pytest.mark.parametrize(("requested", "size", "framework", "warm", "expected"), [
    ("auto", (63, 200), "torch", None, "cnn"),
    ("auto", (64, 64), "torch", None, "resnet18"),
    ("auto", (224, 224), "tensorflow", None, "cnn"),
    ("auto", (224, 224), "torch", "cnn", "cnn"),
    ("auto", (28, 28), "torch", "mobilenet_v3_small", "mobilenet_v3_small"),
    ("cnn", (224, 224), "torch", None, "cnn"),
    ("convnext_tiny", (28, 28), "torch", None, "convnext_tiny"),
    ("cnn", (64, 64), "tensorflow", None, "cnn"),
])
def test_auto_is_the_cnn_below_64_pixels_and_resnet18_from_64(requested, size, framework, warm, expected):
    assert architectures.resolve(requested, *size, framework=framework, warm_start=warm) == expected


def test_keras_trains_the_cnn_only():
    with pytest.raises(InputError, match="Keras trains the CNN family only, not resnet50: choose the PyTorch"):
        architectures.resolve("resnet50", 64, 64, "tensorflow")
    with pytest.raises(InputError, match="unknown architecture 'vgg'"):
        architectures.resolve("vgg", 64, 64)


def test_every_architecture_has_a_head_that_ends_in_its_classes():
    import torch

    for name in architectures.ARCHITECTURES:
        with torch.device("meta"):
            model = architectures.build(name, 3, 32, 32, 5)
        last = [m for m in architectures.head(model, name).modules() if isinstance(m, torch.nn.Linear)][-1]
        assert last.out_features == 5 and last is [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]


def test_the_cnn_path_never_imports_torchvision(trained, tmp_path):
    """train and load_predictor of a CNN in a fresh process: torchvision (and its torch._dynamo import) stays out."""
    script = (
        "import sys, pathlib\n"
        "from retrain_steps.__main__ import main\n"
        f"code = main(['train', '--input', {trained['preprocess']!r}, '--output', 'file://{tmp_path}/t',"
        " '--epochs', '1', '--augment'])\n"
        "from retrain_steps.models import load_predictor, read_model_info\n"
        f"folder = pathlib.Path({str(tmp_path)!r}) / 't'\n"
        "load_predictor(folder, *read_model_info(folder))\n"
        "print('torchvision' in sys.modules, code)\n"
    )
    from tests.conftest import run_step_process

    import os
    import sys

    result = run_step_process([sys.executable, "-c", script], dict(os.environ))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False 0", result.stdout


def test_a_model_json_without_an_architecture_is_a_cnn(trained, tmp_path):
    import json
    import shutil
    from pathlib import Path

    from retrain_steps.models import load_predictor, read_model_info

    folder = tmp_path / "old"
    shutil.copytree(Path(trained["train"].removeprefix("file://")), folder)
    info = json.loads((folder / "model.json").read_text())
    assert info.pop("architecture") == "cnn"
    (folder / "model.json").write_text(json.dumps(info))
    framework, spec = read_model_info(folder)
    assert load_predictor(folder, framework, spec)(__import__("numpy").zeros((2, *spec.shape), "float32")).shape \
        == (2, len(spec.class_names))
    info["architecture"] = "resnet18"
    (folder / "model.json").write_text(json.dumps(info))
    with pytest.raises(RuntimeError, match="Error\\(s\\) in loading state_dict for ResNet"):
        load_predictor(folder, framework, spec)


def test_warm_start_refuses_a_model_of_another_architecture(trained, tmp_path):
    from tests.conftest import run_cli

    result = run_cli("retrain_steps", "train", "--input", trained["preprocess"], "--output", f"file://{tmp_path}/t",
                     "--init-from", trained["train"], "--architecture", "resnet18", "--epochs", "1", check=False)
    assert result.returncode == 2, result.stderr
    assert (f"cannot warm-start a resnet18 candidate from the cnn model at {trained['train']}; choose the "
            "architecture cnn (or auto) or turn warm start off") in result.stderr


def test_evaluate_builds_the_architecture_model_json_names(trained, tmp_path, monkeypatch):
    """``evaluate`` copies ``model.json`` beside the weights: the architecture is read, never guessed from them."""
    from retrain_steps import evaluate, models

    def guessed(*_):
        raise AssertionError("the architecture was guessed from the weights' names and shapes")

    monkeypatch.setattr(models, "architecture_of_state", guessed)
    info = evaluate.fetch_model(trained["train"], tmp_path, evaluate.model_fingerprint(trained["train"]))
    framework, spec = models.read_model_info(tmp_path)
    assert framework == info["framework"]
    assert models.load_predictor(tmp_path, framework, spec)(__import__("numpy").zeros((2, *spec.shape), "float32")) \
        .shape == (2, len(spec.class_names))
