"""Test accuracy and train time of the train step's architectures on a generated texture dataset.

The data: :mod:`tests.helpers.textures`, 13 classes that differ only by texture (stripes at four angles,
checkers, diamonds, grids, dots, speckle, rings, waves, blobs, grain), each a patch on a cluttered background
under random lighting and colours, RGB at ``BENCH_SIZE`` pixels. Every model goes through the real step CLIs
(``download`` → ``preprocess`` → ``train`` → ``evaluate``, in the steps' environment) with the step's
defaults plus ``--augment`` (and the epochs below); rows:

- ``cnn``: the small CNN family (``--architecture cnn``), the baseline every ratio is against;
- ``resnet18`` from scratch (what ``--architecture auto`` trains from 64 pixels up);
- ``resnet18`` fine-tuned: ``--pretrained`` a checkpoint this script writes first by training ResNet-18 on a
  *different* generated dataset (:data:`tests.helpers.textures.PRETEXT`: 8 other textures, other images), its
  sha256 passed as ``--pretrained-sha256``: transfer across classes, as from ImageNet to a user's photos;
- ``mobilenet_v3_small`` from scratch (``BENCH_MOBILENET=0`` leaves it out).

Per row: test accuracy (``evaluate``), the train step's wall time (process start to exit, so imports and
validation included) and its samples/s (``metrics.json``: the median epoch's training pass), and their
ratios against the CNN measured in the same run. One training at a time. The accuracies repeat exactly (seeded
data, splits and training); the times move with the load: on these 2 cores while other jobs loaded them, 31 min for
a first run (the pretext checkpoint's 11 included) and 17 min with it cached (BENCH_MOBILENET=0: about 4 less).

    PYTHONPATH=images/steps/src .venv-steps/bin/python bench/architectures.py

Config (env): BENCH_SIZE (64), BENCH_PER_CLASS (60 images per class: 13 classes, 70 % train),
BENCH_EPOCHS (8), BENCH_PRETEXT_PER_CLASS (150), BENCH_PRETEXT_EPOCHS (8), BENCH_MOBILENET (1),
BENCH_SEED (1), STEPS_PYTHON (the steps' interpreter: this one), BENCH_CACHE (build/bench-architectures: where the
pretext checkpoint is kept, by its settings, for the next run).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "images" / "steps" / "src"))

from bench.step_cli import step  # noqa: E402
from retrain_steps import artifacts, layout  # noqa: E402
from tests.helpers.textures import PRETEXT, TEXTURES, preprocessed_textures  # noqa: E402

SIZE = int(os.environ.get("BENCH_SIZE", "64"))
PER_CLASS = int(os.environ.get("BENCH_PER_CLASS", "60"))
EPOCHS = int(os.environ.get("BENCH_EPOCHS", "8"))
PRETEXT_PER_CLASS = int(os.environ.get("BENCH_PRETEXT_PER_CLASS", "150"))
PRETEXT_EPOCHS = int(os.environ.get("BENCH_PRETEXT_EPOCHS", "8"))
MOBILENET = os.environ.get("BENCH_MOBILENET", "1") != "0"
SEED = int(os.environ.get("BENCH_SEED", "1"))
CACHE = ROOT / os.environ.get("BENCH_CACHE", "build/bench-architectures")  # a relative path: from the checkout


def dataset(store: Path, name: str, classes, per_class: int, seed: int) -> str:
    """Generate, download and preprocess a texture dataset; the preprocess output URI."""
    print(f"{name}: {len(classes)} classes x {per_class} RGB {SIZE}x{SIZE} images (seed {seed})", flush=True)
    return preprocessed_textures(store, name, classes, per_class, SIZE, seed, step)


def train(store: Path, data: str, name: str, epochs: int, *flags: str) -> dict:
    """Train (``--augment``, the step's defaults otherwise) and evaluate; the row's figures."""
    model = f"file://{store}/models/{name}"
    seconds = step("train", "--input", data, "--output", model, "--epochs", str(epochs), "--augment", *flags)
    metrics = json.loads((store / "models" / name / layout.METRICS).read_text())
    row = {"train_s": seconds, "samples_per_s": metrics["samples_per_s"], "val_accuracy": metrics["val_accuracy"],
           "architecture": metrics.get("architecture", "cnn")}
    if data.endswith("/target/preprocess"):
        step("evaluate", "--data", data, "--model", model, "--output", f"file://{store}/evaluations/{name}")
        row["test_accuracy"] = json.loads((store / "evaluations" / name / layout.METRICS).read_text())["test_accuracy"]
    print(f"  -> {name}: {json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()})}",
          flush=True)
    return row


def pretext_weights(store: Path) -> tuple[Path, dict]:
    """The pretext checkpoint (a ResNet-18 state_dict trained on PRETEXT) and its row: from CACHE when a run with the
    same settings left it there, else trained now and left there (what a platform team's weights file is to a user:
    made once, used by every fine-tuning)."""
    seed = SEED + 1000
    name = f"pretext-resnet18-{SIZE}px-{PRETEXT_PER_CLASS}x{PRETEXT_EPOCHS}-seed{seed}"
    weights, figures = CACHE / f"{name}.pt", CACHE / f"{name}.json"
    if weights.exists() and figures.exists():
        row = json.loads(figures.read_text())
        print(f"pretext: {weights} from an earlier run (delete it to train it again)", flush=True)
        return weights, {**row, "cached": True}
    pretext = dataset(store, "pretext", PRETEXT, PRETEXT_PER_CLASS, seed)
    row = train(store, pretext, "pretext", PRETEXT_EPOCHS, "--architecture", "resnet18")
    artifacts.write_bytes(f"file://{weights}", (store / "models" / "pretext" / layout.WEIGHTS["torch"]).read_bytes())
    artifacts.write_bytes(f"file://{figures}", json.dumps(row).encode())  # atomic, the folder made as needed
    return weights, {**row, "cached": False}


def main() -> None:
    began = time.perf_counter()
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-architectures-") as tmp:
        store = Path(tmp)
        target = dataset(store, "target", TEXTURES, PER_CLASS, SEED)
        rows["cnn"] = train(store, target, "cnn", EPOCHS, "--architecture", "cnn")
        rows["resnet18"] = train(store, target, "resnet18", EPOCHS, "--architecture", "resnet18")
        if PRETEXT_PER_CLASS:
            weights, rows["pretext"] = pretext_weights(store)
            sha256 = artifacts.sha256(weights.read_bytes())
            rows["resnet18, fine-tuned"] = train(store, target, "finetuned", EPOCHS, "--architecture", "resnet18",
                                                 "--pretrained", f"file://{weights}", "--pretrained-sha256", sha256)
        if MOBILENET:
            rows["mobilenet_v3_small"] = train(store, target, "mobilenet", EPOCHS, "--architecture",
                                               "mobilenet_v3_small")
    n_train = round(len(TEXTURES) * PER_CLASS * 0.7)
    print(f"\nTarget: {len(TEXTURES)} texture classes, {PER_CLASS} RGB {SIZE}x{SIZE} images each (~{n_train} train, "
          f"15 % validation, 15 % test), {EPOCHS} epochs, --augment, the step's defaults otherwise; CPU, "
          f"{os.cpu_count()} cores. Whole run: {time.perf_counter() - began:.0f} s.")
    if "pretext" in rows:
        when = "by an earlier run, kept in " + str(CACHE) if rows["pretext"]["cached"] else "first, in this run"
        print(f"Fine-tuned: from a ResNet-18 trained {when}, on {len(PRETEXT)} other textures x {PRETEXT_PER_CLASS} "
              f"images, {PRETEXT_EPOCHS} epochs ({rows['pretext']['train_s']:.0f} s, validation accuracy "
              f"{rows['pretext']['val_accuracy']:.3f}; not in the time above when cached), loaded with "
              f"--pretrained/--pretrained-sha256.\n")
    base = rows["cnn"]
    print(f"| {'architecture':22} | input | test accuracy | vs CNN         | train s | vs CNN | samples/s | vs CNN |")
    print(f"|{'-' * 24}|-------|---------------|----------------|---------|--------|-----------|--------|")
    for name, row in rows.items():
        if name == "pretext":
            continue
        gain = row["test_accuracy"] - base["test_accuracy"]
        print(f"| {name:22} | {SIZE}x{SIZE} | {row['test_accuracy']:13.3f} | "
              f"{gain:+.3f} ({row['test_accuracy'] / max(base['test_accuracy'], 1e-9):4.1f}x) | "
              f"{row['train_s']:7.0f} | {row['train_s'] / base['train_s']:5.2f}x | {row['samples_per_s']:9.0f} | "
              f"{row['samples_per_s'] / base['samples_per_s']:5.2f}x |")
    print(f"\nChance: {1 / len(TEXTURES):.3f}.")


if __name__ == "__main__":
    main()
