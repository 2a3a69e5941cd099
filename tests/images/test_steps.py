"""Each step CLI on small real data: outputs, bad-input errors, idempotence, atomic writes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from retrain_steps import artifacts
from retrain_steps.preprocess import load_splits, split_indices
from tests.conftest import run_cli


def path_of(uri: str) -> Path:
    return Path(uri.removeprefix("file://"))


def write_npz(path: Path, **arrays) -> str:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return f"file://{path}"


def test_download_records_the_dataset_version(trained):
    info = json.loads((path_of(trained["download"]) / "dataset.json").read_text())
    raw = path_of(trained["source"]).read_bytes()
    assert info["sha256"] == artifacts.sha256(raw)
    assert info["samples"] == 1797
    assert sum(info["class_counts"].values()) == 1797


def test_download_verifies_the_checksum(trained, tmp_path):
    bad = "0" * 64
    result = run_cli("retrain_steps", "download", "--source", trained["source"], "--sha256", bad,
                     "--output", f"file://{tmp_path}/dl", check=False)
    assert result.returncode == 2
    assert "checksum mismatch" in result.stderr and bad in result.stderr
    assert not (tmp_path / "dl").exists(), "nothing may be written when the checksum fails"


def test_download_names_a_missing_object(tmp_path):
    missing = f"file://{tmp_path}/nope.npz"
    result = run_cli("retrain_steps", "download", "--source", missing, "--output", f"file://{tmp_path}/dl", check=False)
    assert result.returncode == 2
    assert f"artifact not found: {missing}" in result.stderr


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"images": np.zeros((4, 5, 5, 2)), "target": np.arange(4)}, "must have shape (n, H, W) or (n, H, W, 1|3)"),
        ({"images": np.full((4, 8, 8), np.nan), "target": np.arange(4)}, "NaN or infinity"),
        ({"images": np.ones((4, 8, 8)), "target": np.array([0, 1, 2, 11]), "class_names": np.array(["a", "b", "c"])},
         "indexing the 3 class names"),
        ({"images": np.ones((4, 8, 8)), "target": np.array([0, 0, 1, 1]), "class_names": np.array(["a", "b", "c"])},
         "class 'c' has no images"),
        ({"images": np.ones((4, 8, 8)), "target": np.zeros(4, np.int64)}, "needs at least two classes"),
        ({"images": np.ones((4, 8, 8)), "target": np.arange(3)}, "'target' must have shape (4,)"),
        ({"pixels": np.ones((4, 8, 8))}, "lacks arrays"),
    ],
)
def test_download_rejects_a_malformed_dataset(tmp_path, arrays, message):
    source = write_npz(tmp_path / "bad.npz", **arrays)
    result = run_cli("retrain_steps", "download", "--source", source, "--output", f"file://{tmp_path}/dl", check=False)
    assert result.returncode == 2
    assert message in result.stderr and source in result.stderr


def test_download_rejects_a_file_of_no_known_format(tmp_path):
    (tmp_path / "x.npz").write_text("not an archive")
    result = run_cli("retrain_steps", "download", "--source", f"file://{tmp_path}/x.npz",
                     "--output", f"file://{tmp_path}/dl", check=False)
    assert result.returncode == 2 and "unknown dataset format" in result.stderr


def test_preprocess_split_is_seeded_stratified_and_disjoint():
    target = np.repeat(np.arange(10), 20)
    first, again = split_indices(target, 0.2, 0.2, 7), split_indices(target, 0.2, 0.2, 7)
    other = split_indices(target, 0.2, 0.2, 8)
    for name in ("train", "val", "test"):
        assert np.array_equal(first[name], again[name])
    assert not np.array_equal(first["test"], other["test"])
    all_idx = np.concatenate(list(first.values()))
    assert len(all_idx) == len(set(all_idx.tolist())) == 200
    assert np.bincount(target[first["test"]]).tolist() == [4] * 10


def test_preprocess_rejects_bad_fractions(trained, tmp_path):
    result = run_cli("retrain_steps", "preprocess", "--input", trained["download"], "--output", f"file://{tmp_path}/p",
                     "--val-fraction", "0.6", "--test-fraction", "0.5", check=False)
    assert result.returncode == 2 and "fractions" in result.stderr


def test_preprocess_writes_raw_splits_and_the_input_spec(trained):
    from retrain_steps.input_spec import prepare
    from retrain_steps.preprocess import load_spec

    spec = load_spec(trained["preprocess"])
    assert (spec.profile, spec.shape, spec.class_names) == ("digits", (1, 8, 8), tuple("0123456789"))
    splits = load_splits(trained["preprocess"], spec)
    assert splits["x_train"].dtype == np.uint8 and splits["x_train"].shape[1:] == (8, 8, 1)
    x = prepare(splits["x_train"], spec)
    assert x.dtype == np.float32 and x.shape[1:] == (1, 8, 8)
    assert 0.0 <= x.min() and x.max() == pytest.approx(1.0)
    assert sum(len(splits[f"y_{n}"]) for n in ("train", "val", "test")) == 1797


def test_train_writes_model_metrics_and_curve(trained):
    folder = path_of(trained["train"])
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["framework"] == "torch" and len(metrics["history"]) == 15
    assert metrics["val_accuracy"] >= 0.95
    assert all(h["samples_per_s"] > 0 for h in metrics["history"])
    assert (folder / "model.pt").stat().st_size > 0
    assert (folder / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ood = json.loads((folder / "ood.json").read_text())  # the OOD statistics, measured on the validation split
    assert ood["score"] == "pca-reconstruction" and ood["threshold"] > 0 and ood["held_out_samples"] == 269
    assert ood["held_out_quantiles"]["0.95"] == pytest.approx(1.0) and ood["held_out_quantiles"]["0.5"] < 1
    assert len(ood["mean"]) == 64 and 1 <= len(ood["components"]) <= 32 and ood["explained_variance"] >= 0.8
    assert "ood.json" in json.loads((folder / "manifest.json").read_text())["outputs"]


def test_train_rejects_a_bad_learning_rate(trained, tmp_path):
    result = run_cli("retrain_steps", "train", "--input", trained["preprocess"], "--output", f"file://{tmp_path}/t",
                     "--learning-rate", "-1", check=False)
    assert result.returncode == 2 and "--learning-rate" in result.stderr and "-1" in result.stderr


def test_train_rejects_cuda_when_absent(trained, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    result = run_cli("retrain_steps", "train", "--input", trained["preprocess"], "--output", f"file://{tmp_path}/t",
                     "--epochs", "1", "--device", "cuda", check=False)
    assert result.returncode != 0 and "no CUDA device" in (result.stderr + result.stdout)


def test_train_rejects_wrong_array_shapes(tmp_path):
    from retrain_steps import manifest

    from retrain_steps.input_spec import DIGITS

    bad = write_npz(tmp_path / "pp" / "splits.npz", **{f"x_{n}": np.zeros((3, 64), np.float32) for n in ("train", "val", "test")},
                    **{f"y_{n}": np.zeros(3, np.int64) for n in ("train", "val", "test")})
    spec_sha = artifacts.write_json(f"file://{tmp_path}/pp/spec.json", DIGITS.to_dict())
    manifest.write(f"file://{tmp_path}/pp", "preprocess", "k",
                   {"splits.npz": artifacts.sha256((tmp_path / "pp" / "splits.npz").read_bytes()), "spec.json": spec_sha})
    result = run_cli("retrain_steps", "train", "--input", f"file://{tmp_path}/pp", "--output", f"file://{tmp_path}/t",
                     check=False)
    assert result.returncode == 2 and "x_train must be uint8 (n, 8, 8, 1)" in result.stderr and bad in result.stderr


def test_evaluate_reports_accuracy_per_class_and_confusion(trained):
    folder = path_of(trained["evaluate"])
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.95
    matrix = np.array(metrics["confusion_matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == metrics["samples"]
    assert np.trace(matrix) / matrix.sum() == pytest.approx(metrics["test_accuracy"])
    assert set(metrics["per_class"]) == {str(c) for c in range(10)}
    assert (folder / "confusion.png").read_bytes()[:4] == b"\x89PNG"


def test_steps_are_idempotent(trained):
    before = {p: p.stat().st_mtime_ns for p in path_of(trained["train"]).iterdir()}
    result = run_cli("retrain_steps", "train", "--input", trained["preprocess"], "--output", trained["train"],
                     "--epochs", "15")
    assert "is up to date" in result.stdout
    assert {p: p.stat().st_mtime_ns for p in path_of(trained["train"]).iterdir()} == before
    again = run_cli("retrain_steps", "evaluate", "--data", trained["preprocess"], "--model", trained["train"],
                    "--output", trained["evaluate"])
    assert "is up to date" in again.stdout


def test_a_corrupted_output_is_recomputed(trained, tmp_path):
    out = f"file://{tmp_path}/pp"
    run_cli("retrain_steps", "preprocess", "--input", trained["download"], "--output", out)
    stats = tmp_path / "pp" / "stats.json"
    good = stats.read_bytes()
    stats.write_text("{}")
    result = run_cli("retrain_steps", "preprocess", "--input", trained["download"], "--output", out)
    assert "up to date" not in result.stdout
    assert stats.read_bytes() == good


def test_writes_leave_no_temporary_files(trained):
    leftovers = [p for p in path_of(trained["store"]).rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_unknown_step_and_missing_argument_are_usage_errors():
    assert run_cli("retrain_steps", "fly", check=False).returncode == 2
    missing = run_cli("retrain_steps", "train", "--output", "file:///tmp/x", check=False)
    assert missing.returncode == 2 and "--input" in missing.stderr


@pytest.fixture(scope="module")
def keras_model(trained, tmp_path_factory) -> str:
    """A Keras candidate trained on the ``trained`` split (8 epochs)."""
    model = f"file://{tmp_path_factory.mktemp('keras')}/k"
    run_cli("retrain_steps", "train", "--input", trained["preprocess"], "--output", model, "--framework", "tensorflow",
            "--epochs", "8")
    return model


def test_keras_path_trains_and_evaluates(trained, keras_model, tmp_path):
    info = json.loads((path_of(keras_model) / "model.json").read_text())
    assert (info["framework"], info["file"], info["input_spec"]["profile"]) == ("tensorflow", "model.keras", "digits")
    result = run_cli("retrain_steps", "evaluate", "--data", trained["preprocess"], "--model", keras_model, "--output",
                     f"file://{tmp_path}/ke")
    assert result.result["metrics"]["test_accuracy"] >= 0.9


# -- a data path that fails safely: bad input exits 2 at once (no retry), nothing is half-read ---
def test_a_corrupted_npz_is_bad_input(trained, tmp_path):
    raw = bytearray(path_of(trained["source"]).read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # one flipped byte inside an array: the CRC fails
    (tmp_path / "bad.npz").write_bytes(bytes(raw))
    result = run_cli("retrain_steps", "download", "--source", f"file://{tmp_path}/bad.npz",
                     "--output", f"file://{tmp_path}/dl", check=False)
    assert result.returncode == 2 and "is not a valid .npz archive" in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "dl").exists()


@pytest.mark.parametrize("step", ["train", "evaluate"])
def test_a_corrupted_split_is_refused_against_its_manifest(trained, tmp_path, step):
    import shutil

    shutil.copytree(path_of(trained["preprocess"]), tmp_path / "pp")
    splits = tmp_path / "pp" / "splits.npz"
    arrays = dict(np.load(splits))
    arrays["y_train"] = np.roll(arrays["y_train"], 1)  # a valid archive with wrong labels
    write_npz(splits, **arrays)
    args = (["train", "--input", f"file://{tmp_path}/pp", "--output", f"file://{tmp_path}/out", "--epochs", "1"]
            if step == "train" else
            ["evaluate", "--data", f"file://{tmp_path}/pp", "--model", trained["train"], "--output", f"file://{tmp_path}/out"])
    result = run_cli("retrain_steps", *args, check=False)
    assert result.returncode == 2 and "does not match its manifest" in result.stderr and "rerun the preprocess" in result.stderr
    assert not (tmp_path / "out").exists()


def test_an_unfinished_upstream_step_is_named(trained, tmp_path):
    import shutil

    shutil.copytree(path_of(trained["preprocess"]), tmp_path / "pp")
    (tmp_path / "pp" / "manifest.json").unlink()
    result = run_cli("retrain_steps", "train", "--input", f"file://{tmp_path}/pp", "--output",
                     f"file://{tmp_path}/out", check=False)
    assert result.returncode == 2 and "did not finish" in result.stderr


def test_reads_are_bounded(trained, tmp_path):
    zero = run_cli("retrain_steps", "download", "--source", "file:///dev/zero", "--output", f"file://{tmp_path}/a",
                   check=False)
    assert zero.returncode == 2 and "not a regular file" in zero.stderr
    big = run_cli("retrain_steps", "download", "--source", trained["source"], "--output", f"file://{tmp_path}/b",
                  env={"RETRAIN_MAX_READ_BYTES": "10000"}, check=False)
    assert big.returncode == 2 and "larger than the limit of 10000 bytes" in big.stderr


def test_an_archive_that_unpacks_past_the_limit_is_refused_before_unpacking(tmp_path):
    buffer = io.BytesIO()
    np.savez_compressed(buffer, images=np.zeros((20000, 8, 8), np.float32), target=np.zeros(20000, np.int64))
    (tmp_path / "bomb.npz").write_bytes(buffer.getvalue())
    assert len(buffer.getvalue()) < 100_000
    result = run_cli("retrain_steps", "download", "--source", f"file://{tmp_path}/bomb.npz",
                     "--output", f"file://{tmp_path}/dl", env={"RETRAIN_MAX_DATASET_BYTES": "1000000"}, check=False)
    assert result.returncode == 2 and "unpacks to" in result.stderr and "over the limit" in result.stderr


def test_an_unchanged_dataset_reuses_the_preprocessing(trained, tmp_path):
    cache = f"file://{tmp_path}/cache"
    first = run_cli("retrain_steps", "preprocess", "--input", trained["download"], "--output", f"file://{tmp_path}/r1",
                    "--cache", cache)
    assert "reusing" not in first.stdout
    second = run_cli("retrain_steps", "preprocess", "--input", trained["download"], "--output", f"file://{tmp_path}/r2",
                     "--cache", cache)
    assert "unchanged: reusing the preprocessing" in second.stdout
    assert second.result["reused_from"].startswith(cache)
    assert (tmp_path / "r2" / "splits.npz").read_bytes() == (tmp_path / "r1" / "splits.npz").read_bytes()
    other_seed = run_cli("retrain_steps", "preprocess", "--input", trained["download"], "--output",
                         f"file://{tmp_path}/r3", "--cache", cache, "--seed", "7")
    assert "reusing" not in other_seed.stdout, "other settings are not served from the cache"


# -- early stopping and warm start ----------------------------------------------------------
def test_should_stop_after_patience_epochs_without_a_lower_val_loss():
    from retrain_steps.train import should_stop

    history = [{"val_loss": v} for v in (1.0, 0.5, 0.6, 0.7)]
    assert should_stop(history, 2) and not should_stop(history, 3) and not should_stop(history, 0)
    assert not should_stop([{"val_loss": v} for v in (1.0, 0.5, 0.6, 0.4)], 2)


def test_training_logs_each_epoch_and_stops_early_saying_so(trained, tmp_path):
    result = run_cli("retrain_steps", "train", "--input", trained["preprocess"], "--output", f"file://{tmp_path}/es",
                     "--epochs", "60", "--learning-rate", "0.003", "--patience", "2", "--device", "cpu")
    metrics = result.result["metrics"]
    assert "early stop after epoch" in result.stdout and metrics["epochs_run"] < 60 and metrics["patience"] == 2
    assert metrics["val_accuracy"] > 0.9
    lines = [line for line in result.stdout.splitlines() if " INFO epoch " in line]
    assert len(lines) == metrics["epochs_run"], "one progress line per epoch"
    assert all(word in lines[0] for word in ("epoch 1/60", "loss", "val_accuracy", "samples/s"))


@pytest.mark.parametrize("framework", ["torch", "tensorflow"])
def test_warm_start_fine_tunes_the_given_model(trained, request, tmp_path, framework):
    def train(out, *extra):
        result = run_cli("retrain_steps", "train", "--input", trained["preprocess"], "--output",
                         f"file://{tmp_path}/{out}", "--framework", framework, "--seed", "3", *extra)
        return result.result["metrics"], result.stdout

    origin = trained["train"] if framework == "torch" else request.getfixturevalue("keras_model")
    start = json.loads((path_of(origin) / "metrics.json").read_text())
    fresh, _ = train("fresh", "--epochs", "1")
    warm, log = train("warm", "--epochs", "1", "--init-from", origin)
    assert "warm start from" in log and warm["warm_start_from"] == origin
    assert warm["val_accuracy"] > fresh["val_accuracy"], (warm, fresh)
    assert warm["val_accuracy"] >= start["val_accuracy"] - 0.05


def test_warm_start_from_another_framework_is_refused(trained):
    result = run_cli("retrain_steps", "train", "--input", trained["preprocess"], "--output", "file:///tmp/unused-ws",
                     "--framework", "tensorflow", "--init-from", trained["train"], check=False)
    assert result.returncode == 2 and "cannot warm-start a tensorflow candidate from the torch model" in result.stderr


def test_augmentation_shifts_by_at_most_one_pixel_and_still_learns(trained, tmp_path):
    from retrain_steps.train import shift_batch

    x = np.zeros((50, 1, 8, 8), np.float32)
    x[:, 0, 3:5, 3:5] = 1.0
    shifted = shift_batch(x, np.random.default_rng(0))
    assert shifted.shape == x.shape and (shifted.sum(axis=(1, 2, 3)) == 4).all(), "a centred blob never leaves"
    assert not np.array_equal(shifted, x) and (shifted[:, 0, 3:5, 3:5].sum(axis=(1, 2)) >= 1).all()
    result = run_cli("retrain_steps", "train", "--input", trained["preprocess"], "--output", f"file://{tmp_path}/aug",
                     "--epochs", "12", "--augment")
    metrics = result.result["metrics"]
    assert metrics["augment"] is True and metrics["val_accuracy"] > 0.9
