"""Pretrained weights from the store (retrain_steps.pretrained) and fine-tuning (head-only epochs, the backbone's
lower rate), with checkpoints these tests write themselves: torchvision models with random weights and ImageNet's
1,000-class head, saved as the platform team would put a torchvision checkpoint in the store."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from retrain_steps import architectures, artifacts, pretrained, recipe  # noqa: E402
from retrain_steps.artifacts import ArtifactError  # noqa: E402
from retrain_steps.errors import InputError  # noqa: E402
from tests.conftest import run_cli  # noqa: E402
from tests.helpers.datasets import SHAPES, image_files, write_folder  # noqa: E402


def checkpoint_bytes(name: str, seed: int = 0) -> bytes:
    """A torchvision ``name`` with random weights and the 1,000-class head, as its ``state_dict`` file."""
    from torchvision import models

    torch.manual_seed(seed)
    buffer = io.BytesIO()
    torch.save(getattr(models, name)(weights=None).state_dict(), buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory) -> tuple[Path, str, dict]:
    path = tmp_path_factory.mktemp("weights") / "resnet18-imagenet.pth"
    path.write_bytes(checkpoint_bytes("resnet18"))
    return path, artifacts.sha256(path.read_bytes()), torch.load(path, weights_only=True)


def test_a_checkpoint_loads_with_its_head_reinitialised_and_its_rgb_stem_summed_for_grayscale(resnet18_file):
    path, sha256, saved = resnet18_file
    state = pretrained.read_checkpoint(str(path), sha256)
    model, loaded = pretrained.build_pretrained("resnet18", 1, 32, 32, 4, state, str(path))
    assert loaded.reinitialised == ("fc.bias", "fc.weight") and loaded.stem_summed
    mine = model.state_dict()
    assert mine["conv1.weight"].shape == (64, 1, 7, 7)
    assert torch.equal(mine["conv1.weight"], saved["conv1.weight"].sum(dim=1, keepdim=True)), "grey = R + G + B"
    body = [k for k in saved if not k.startswith(("fc.", "conv1."))]
    assert body and all(torch.equal(mine[k], saved[k]) for k in body), "every other tensor as the checkpoint's"
    assert mine["fc.weight"].shape == (4, 512)
    rgb, rgb_loaded = pretrained.build_pretrained("resnet18", 3, 32, 32, 1000, state, str(path))
    assert rgb_loaded.reinitialised == () and not rgb_loaded.stem_summed, "a head of the same shape is kept"
    assert all(torch.equal(v, saved[k]) for k, v in rgb.state_dict().items())
    assert loaded.stem == rgb_loaded.stem == "imagenet", "an ImageNet checkpoint at 32 px keeps its stem"


def test_a_small_stem_checkpoint_fine_tunes_with_its_stem():
    """A ResNet trained here from scratch below 64 px (3x3 stride-1 stem) is a checkpoint too: the model is built
    with its stem (a 7x7 one would refuse conv1's shape), at any input size."""
    from retrain_steps import architectures

    saved = architectures.build("resnet18", 1, 28, 28, 10, "small").state_dict()
    for side in (28, 96):
        model, loaded = pretrained.build_pretrained("resnet18", 1, side, side, 4, saved, "small.pth")
        assert loaded.stem == "small" and architectures.first_conv(model)[2].kernel_size == (3, 3)
        assert isinstance(model.maxpool, torch.nn.Identity) and not loaded.stem_summed
        assert torch.equal(model.state_dict()["conv1.weight"], saved["conv1.weight"])
    assert pretrained.checkpoint_stem("mobilenet_v3_small", 28, 28, 4, {}) == "imagenet", "no stride in weights"


def test_a_checkpoint_of_another_architecture_is_refused_naming_its_keys(tmp_path):
    path = tmp_path / "mobilenet.pth"
    path.write_bytes(checkpoint_bytes("mobilenet_v3_small"))
    state = pretrained.read_checkpoint(str(path), artifacts.sha256(path.read_bytes()))
    with pytest.raises(InputError, match=rf"the pretrained weights {path} do not fit resnet18: unexpected keys "
                                         r"classifier\.0\.bias, .* and \d+ more; missing keys bn1\.bias, "):
        pretrained.build_pretrained("resnet18", 3, 32, 32, 4, state, str(path))


def test_a_checkpoint_whose_body_shapes_differ_is_refused_naming_them(resnet18_file):
    path, sha256, _ = resnet18_file
    state = dict(pretrained.read_checkpoint(str(path), sha256))
    state["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    with pytest.raises(InputError, match=r"shapes differ for layer1\.0\.conv1\.weight \[64, 64, 1, 1\] "
                                         r"\(model \[64, 64, 3, 3\]\)"):
        pretrained.build_pretrained("resnet18", 3, 32, 32, 4, state, str(path))


def test_bad_weights_files_are_refused_naming_the_file(resnet18_file, tmp_path):
    path, sha256, _ = resnet18_file
    with pytest.raises(ArtifactError, match=f"checksum mismatch for {path}: expected sha256 {'0' * 64}"):
        pretrained.read_checkpoint(str(path), "0" * 64)
    with pytest.raises(ArtifactError, match=f"artifact not found: {tmp_path}/absent.pth"):
        pretrained.read_checkpoint(f"{tmp_path}/absent.pth", sha256)
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(path.read_bytes()[: 4096] + b"\0" * 64)
    with pytest.raises(InputError, match=f"the pretrained weights {corrupt} are not a torch checkpoint"):
        pretrained.read_checkpoint(str(corrupt), artifacts.sha256(corrupt.read_bytes()))
    listed = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], listed)
    with pytest.raises(InputError, match=f"the pretrained weights {listed} are not a state_dict .* got list"):
        pretrained.read_checkpoint(str(listed), artifacts.sha256(listed.read_bytes()))


def test_a_pickle_that_runs_code_is_never_unpickled(tmp_path):
    class Boom:
        def __reduce__(self):
            return (Path.touch, (tmp_path / "ran",))

    import pickle

    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"x": Boom()}, protocol=2))
    with pytest.raises(InputError, match="not a torch checkpoint"):
        pretrained.read_checkpoint(str(evil), artifacts.sha256(evil.read_bytes()))
    assert not (tmp_path / "ran").exists(), "weights_only=True"


def test_head_only_epochs_keep_the_backbone_the_checkpoints_and_train_the_head(resnet18_file):
    path, sha256, saved = resnet18_file
    model, _ = pretrained.build_pretrained("resnet18", 3, 16, 16, 4, pretrained.read_checkpoint(str(path), sha256))
    head = architectures.head(model, "resnet18")
    head_before = {k: v.clone() for k, v in head.state_dict().items()}
    plan = recipe.plan(32, 2, 16, 1e-2)
    fit = recipe.Trainer(model, plan, "cpu", 0, head=head, backbone_lr_scale=0.1)
    lrs = [group["lr"] for group in fit.optimizer.param_groups]
    assert len(lrs) == 4 and lrs[0] == lrs[1] == pytest.approx(0.1 * lrs[2]) and lrs[2] == lrs[3]
    x, y = torch.randn(32, 3, 16, 16), torch.arange(32) % 4
    fit.freeze_backbone(True)
    assert not any(p.requires_grad for k, p in model.named_parameters() if not k.startswith("fc."))
    fit.epoch(x, y, x[:8], y[:8])
    after = recipe.cpu_state(fit.state())
    assert all(torch.equal(after[k], saved[k]) for k in saved if not k.startswith("fc.")), \
        "weights and BatchNorm statistics as the checkpoint's"
    assert not torch.equal(after["fc.weight"], head_before["weight"]), "the head learned"
    fit.freeze_backbone(False)
    assert all(p.requires_grad for p in model.parameters())
    fit.epoch(x, y, x[:8], y[:8])
    moved = recipe.cpu_state(fit.state())
    assert not torch.equal(moved["layer1.0.conv1.weight"], saved["layer1.0.conv1.weight"]), "then the backbone"


@pytest.fixture(scope="module")
def rgb_data(tmp_path_factory) -> str:
    """A preprocessed set of 48 RGB 32x32 shape images (4 classes)."""
    root = tmp_path_factory.mktemp("rgb")
    write_folder(root / "src", image_files(SHAPES, 12, 32, "RGB", 0))
    run_cli("retrain_steps", "download", "--source", f"file://{root}/src/", "--output", f"file://{root}/dl",
            "--allow", f"file://{root}/")
    run_cli("retrain_steps", "preprocess", "--input", f"file://{root}/dl", "--output", f"file://{root}/pp")
    return f"file://{root}/pp"


@pytest.fixture(scope="module")
def fine_tuned(rgb_data, resnet18_file, s3_endpoint, tmp_path_factory) -> tuple[Path, str]:
    """A resnet18 fine-tuned by the CLI from a checkpoint in S3: 1 head-only epoch, 1 of the whole network."""
    import boto3

    path, sha256, _ = resnet18_file
    boto3.client("s3").create_bucket(Bucket="platform")
    uri = "s3://platform/weights/resnet18-imagenet.pth"
    artifacts.write_bytes(uri, path.read_bytes())
    out = tmp_path_factory.mktemp("fine-tuned")
    run_cli("retrain_steps", "train", "--input", rgb_data, "--output", f"file://{out}", "--architecture", "resnet18",
            "--pretrained", uri, "--pretrained-sha256", sha256.upper(), "--epochs", "2", "--head-epochs", "1",
            "--batch-size", "16", "--augment", "--flip")
    return out, uri


def test_the_cli_fine_tunes_from_the_store_and_records_it(fine_tuned, resnet18_file):
    out, uri = fine_tuned
    _, sha256, saved = resnet18_file
    metrics = json.loads((out / "metrics.json").read_text())
    info = json.loads((out / "model.json").read_text())
    assert metrics["architecture"] == info["architecture"] == "resnet18"
    assert metrics["stem"] == info["stem"] == "imagenet", "fine-tuning keeps the checkpoint's stem at any size"
    assert metrics["pretrained"] == {"uri": uri, "sha256": sha256, "head_epochs": 1, "backbone_lr_scale": 0.1,
                                     "reinitialised": ["fc.bias", "fc.weight"], "stem_summed": False}
    weights = torch.load(out / "model.pt", weights_only=True)
    assert weights["fc.weight"].shape == (4, 512)
    if metrics["best_epoch"] == 2:
        assert not torch.equal(weights["layer4.1.conv2.weight"], saved["layer4.1.conv2.weight"])
    else:
        assert torch.equal(weights["layer4.1.conv2.weight"], saved["layer4.1.conv2.weight"]), "frozen in epoch 1"


def test_the_fine_tuned_model_round_trips_through_load_predictor(fine_tuned, rgb_data):
    from retrain_steps.input_spec import prepare
    from retrain_steps.models import load_predictor, read_model_info
    from retrain_steps.preprocess import load_spec, load_splits

    out, _ = fine_tuned
    framework, spec = read_model_info(out)
    assert spec == load_spec(rgb_data)
    x = prepare(load_splits(rgb_data, spec)["x_test"], spec)
    model = architectures.build("resnet18", 3, 32, 32, 4)
    model.load_state_dict(torch.load(out / "model.pt", weights_only=True))
    with torch.inference_mode():
        expected = torch.softmax(model.eval()(torch.from_numpy(x)), 1).numpy()
    served = load_predictor(out, framework, spec)(x)
    np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-6)
    weights_only = out.parent / "weights-only"
    weights_only.mkdir()
    (weights_only / "model.pt").write_bytes((out / "model.pt").read_bytes())
    np.testing.assert_array_equal(load_predictor(weights_only, framework, spec)(x), served), \
        "without model.json (lost, or a folder of weights alone) the weights name their architecture"


@pytest.mark.parametrize(("flags", "message"), [
    (["--pretrained", "s3://platform/w.pth"], "--pretrained s3://platform/w.pth needs --pretrained-sha256"),
    (["--pretrained-sha256", "a" * 64], "--pretrained-sha256 is set without --pretrained"),
    (["--pretrained", "w.pth", "--pretrained-sha256", "xyz"],
     "argument --pretrained-sha256: must be a sha256: 64 hexadecimal digits, got 'xyz'"),
    (["--pretrained", "w.pth", "--pretrained-sha256", "a" * 64],
     "--pretrained w.pth needs a standard architecture (auto chose cnn for 32x32 images)"),
    (["--pretrained", "w.pth", "--pretrained-sha256", "a" * 64, "--architecture", "cnn"],
     "--pretrained w.pth needs a standard architecture (cnn has no pretrained weights for 32x32 images)"),
    (["--architecture", "resnet18", "--framework", "tensorflow"],
     "Keras trains the CNN family only, not resnet18: choose the PyTorch framework"),
    (["--architecture", "resnet18", "--pretrained", "w.pth", "--pretrained-sha256", "a" * 64, "--epochs", "2",
      "--head-epochs", "3"], "--head-epochs 3 must be at most --epochs 2"),
    (["--architecture", "resnet18", "--backbone-lr-scale", "2"], "argument --backbone-lr-scale: must be in (0, 1]"),
])
def test_bad_fine_tuning_flags_exit_2_naming_them(rgb_data, tmp_path, flags, message):
    result = run_cli("retrain_steps", "train", "--input", rgb_data, "--output", f"file://{tmp_path}/t", *flags,
                     check=False)
    assert result.returncode == 2 and message in result.stderr, result.stderr


@pytest.mark.parametrize("case", ["wrong sha256", "missing"])
def test_the_cli_refuses_bad_weights_with_exit_2_naming_the_file(rgb_data, resnet18_file, tmp_path, case):
    """Before the data is loaded (no torch import: a fraction of a second); the other refusals (corrupt, keys)
    are InputErrors from retrain_steps.pretrained, exit 2 as every InputError."""
    path, sha256, _ = resnet18_file
    if case == "wrong sha256":
        uri, digest, message = str(path), "f" * 64, f"checksum mismatch for {path}"
    else:
        uri, digest, message = f"file://{tmp_path}/nothing.pth", sha256, f"artifact not found: file://{tmp_path}/"
    result = run_cli("retrain_steps", "train", "--input", rgb_data, "--output", f"file://{tmp_path}/t",
                     "--architecture", "resnet18", "--pretrained", uri, "--pretrained-sha256", digest, check=False)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert not (tmp_path / "t").exists()


def test_fine_tuning_flags_and_their_defaults():
    import argparse

    from retrain_steps import train

    parser = argparse.ArgumentParser()
    train.add_arguments(parser)
    args = parser.parse_args(["--input", "i", "--output", "o"])
    assert (args.architecture, args.pretrained, args.pretrained_sha256, args.head_epochs, args.backbone_lr_scale,
            args.flip) == ("auto", None, None, None, 0.1, False)
    empty = parser.parse_args(["--input", "i", "--output", "o", "--pretrained", "", "--pretrained-sha256", ""])
    assert not empty.pretrained and empty.pretrained_sha256 is None, "a form's empty fields are no value"
    assert [train.default_head_epochs(e) for e in (1, 3, 4, 7, 8, 20, 100)] == [0, 0, 1, 1, 2, 2, 2]
