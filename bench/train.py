"""The torch train step's samples/s vs a bare loop of the same model, data, optimizer and batch size.

For each input size it generates a dataset (10 classes of noisy oriented gratings, grayscale), runs it through the
real step CLIs (``download``, ``preprocess``, ``train --architecture NAME`` on the chosen device) and reads the
step's samples/s (``metrics.json``: the median over its epochs of the training pass). In the same run it times a
bare loop over the same prepared data, on the same device, for as many epochs: the same model (the step's
architecture and stem, built by the same function) and AdamW (fused on CUDA), batches gathered on the device, and
nothing else (no schedule, label smoothing, augmentation, loss bookkeeping or validation); its figure is its
median epoch too. The architecture is always named, never ``auto`` (which trains ResNet-18 from 64 pixels up: a
64x64 row once compared a ResNet-18 step with a CNN bare loop). Rounds interleave them (bare, step, bare, step,
..., bare: a busy machine drifts), and each side's figure is the median of its rounds. Goal: step / bare >= 0.9x.
Rows: per architecture (``cnn``; ``resnet18`` too on CUDA) fp32, and bf16 autocast + channels_last
(``--precision bf16``) when CUDA is present. Each row also gives the same comparison in this one process (the
step's Trainer, with the recipe the step resolves for this data, against the bare loop: ``BENCH_IN_PROCESS_ROUNDS``
interleaved epochs after a warm-up each), which tells the loop's own cost from what the step's process adds (its
start-up epochs, its settings, a busy machine's drift between processes). Last line: the step's time a batch over
the bare loop's for a linear model (:func:`dispatch_overhead`), what the step's own dispatches cost where launches
bound a batch.

Run here:      PYTHONPATH=images/steps/src .venv-steps/bin/python bench/train.py
GPU machine:   PYTHONPATH=images/steps/src python3 bench/train.py   (imports: torch, torchvision, numpy, the steps)
Config (env): BENCH_SIZES ("8,28" on the CPU, "28,64" on CUDA), BENCH_SAMPLES (1500 / 30000),
BENCH_EPOCHS (3 / 5), BENCH_BATCH (64 / 256), BENCH_ROUNDS (3 / 1), BENCH_ARCHITECTURES ("cnn" / "cnn,resnet18"),
BENCH_IN_PROCESS_ROUNDS (9 / 5), BENCH_DEVICE (auto).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "images" / "steps" / "src"))

from bench.step_cli import step  # noqa: E402
from retrain_steps import architectures, data, layout, recipe  # noqa: E402
from retrain_steps.input_spec import prepare  # noqa: E402
from retrain_steps.models import resolve_device, torch_model  # noqa: E402
from retrain_steps.preprocess import load_spec, load_splits  # noqa: E402

DEVICE = resolve_device(os.environ.get("BENCH_DEVICE", "auto"))
CUDA = DEVICE == "cuda"
SIZES = [int(s) for s in os.environ.get("BENCH_SIZES", "28,64" if CUDA else "8,28").split(",")]
SAMPLES = int(os.environ.get("BENCH_SAMPLES", 30000 if CUDA else 1500))
EPOCHS = int(os.environ.get("BENCH_EPOCHS", 5 if CUDA else 3))
BATCH = int(os.environ.get("BENCH_BATCH", 256 if CUDA else 64))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 1 if CUDA else 3))
IN_PROCESS_ROUNDS = int(os.environ.get("BENCH_IN_PROCESS_ROUNDS", 5 if CUDA else 9))
ARCHITECTURES = os.environ.get("BENCH_ARCHITECTURES", "cnn,resnet18" if CUDA else "cnn").split(",")
LEARNING_RATE, WEIGHT_DECAY = 1e-3, 0.05


def gratings(n: int, side: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` ``side x side`` uint8 images: class k is a grating at angle k * 18 degrees, random phase, noise."""
    rng = np.random.default_rng(seed)
    target = rng.integers(0, 10, n)
    yy, xx = np.mgrid[0:side, 0:side] / side
    angle = target[:, None, None] * np.pi / 10
    phase = rng.uniform(0, 2 * np.pi, (n, 1, 1))
    wave = np.sin(2 * np.pi * 3 * (xx * np.cos(angle) + yy * np.sin(angle)) + phase)
    pixels = 127.5 + 80 * wave + rng.normal(0, 40, (n, side, side))
    return np.clip(pixels, 0, 255).astype(np.uint8)[..., None], target.astype(np.int64)


def training_split(preprocessed: str):
    """``(spec, x, y)``: the step's own prepared training split, as model inputs (on the CPU)."""
    spec = load_spec(preprocessed)
    splits = load_splits(preprocessed, spec)
    return spec, torch.from_numpy(prepare(splits["x_train"], spec)), torch.from_numpy(splits["y_train"])


def bare_loop(preprocessed: str, architecture: str, precision: str) -> float:
    """Samples/s (median epoch) of the bare loop on the step's own prepared training split."""
    spec, x, y = training_split(preprocessed)
    run = bare_runner(spec, x, y, architecture, precision, BATCH)
    return statistics.median([len(x) / seconds(run) for _ in range(EPOCHS)])


def initial_model(spec, architecture: str):
    """The untrained model both sides start from: the train step's architecture and stem, seed 0."""
    torch.manual_seed(0)
    return torch_model(architecture, spec, architectures.stem_for(architecture, spec.height, spec.width))


def bare_runner(spec, x, y, architecture: str, precision: str, batch: int):
    """A closure that trains one epoch of the bare loop on ``x``, ``y`` (moved to the device once)."""
    fast = precision == "bf16"
    memory_format = torch.channels_last if fast else torch.contiguous_format
    net = initial_model(spec, architecture).to(DEVICE, memory_format=memory_format).train()
    optimizer = bare_optimizer(net)
    x, y = x.to(DEVICE).contiguous(memory_format=memory_format), y.to(DEVICE)
    return lambda: bare_epoch(net, optimizer, x, y, batch, fast)


def epoch_runners(spec, x, y, architecture: str, precision: str, batch: int) -> dict:
    """Two closures that each train one epoch on ``x``, ``y`` in this process from the same initial model: ``step``,
    the train step's Trainer with the recipe the step resolves for this many images (no validation); ``bare``, the
    bare loop (:func:`bare_runner`)."""
    fit = recipe.Trainer(initial_model(spec, architecture),
                         recipe.plan(len(x), EPOCHS, batch, LEARNING_RATE, precision=precision), DEVICE, 0)
    x_fit, y_fit = fit.to_device(x), y.to(DEVICE)
    return {"step": lambda: fit.train_epoch(x_fit, y_fit),
            "bare": bare_runner(spec, x, y, architecture, precision, batch)}


def in_process(preprocessed: str, architecture: str, precision: str) -> dict:
    """Samples/s of the Trainer's epoch and the bare loop's (:func:`epoch_runners`) on the step's own prepared
    training split, in this process: medians of interleaved epochs after a warm-up epoch each."""
    spec, x, y = training_split(preprocessed)
    runners = epoch_runners(spec, x, y, architecture, precision, BATCH)
    for run in runners.values():
        seconds(run)
    times = {name: [] for name in runners}
    for _ in range(IN_PROCESS_ROUNDS):
        for name, run in runners.items():
            times[name].append(seconds(run))
    return {name: len(x) / statistics.median(values) for name, values in times.items()}


def bare_optimizer(model):
    """The bare loop's AdamW: the step's parameter groups, rate and weight decay (fused on CUDA)."""
    return torch.optim.AdamW(recipe.parameter_groups(model, WEIGHT_DECAY), lr=LEARNING_RATE,
                             **recipe.optimizer_options(DEVICE))


def seconds(run) -> float:
    """Wall time of ``run()``, the device's queued work included."""
    start = time.perf_counter()
    run()
    if CUDA:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def bare_epoch(model, optimizer, x, y, batch: int, fast: bool) -> None:
    """One epoch of the bare loop on ``x``'s device: a random order, batches gathered there, the loss, AdamW's step;
    bf16 autocast when ``fast``."""
    order = torch.randperm(len(x), device=x.device)
    for begin in range(0, len(x), batch):
        idx = order[begin : begin + batch]
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=fast):
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        loss.backward()
        optimizer.step()


def main() -> None:
    precisions = ["fp32", "bf16"] if CUDA else ["fp32"]
    name = torch.cuda.get_device_name(0) if CUDA else f"{os.cpu_count()} CPU cores, {torch.get_num_threads()} threads"
    print(f"device {DEVICE} ({name}), torch {torch.__version__}; {SAMPLES} images (70 % train), "
          f"{EPOCHS} epochs, batch {BATCH}, {ROUNDS} round(s)")
    print(f"{'size':>7} {'architecture':<13}{'precision':<10}{'step samples/s':>15}{'bare samples/s':>16}{'ratio':>8}"
          "   (goal >= 0.9x)")
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for side in SIZES:
            images, target = gratings(SAMPLES, side)
            source = Path(tmp) / f"gratings{side}.npz"
            source.write_bytes(data.dump_npz(images=images, target=target,
                                             class_names=np.array([f"angle{k * 18}" for k in range(10)])))
            store = f"file://{tmp}/{side}"
            step("download", "--source", f"file://{source}", "--output", f"{store}/dl", echo=False)
            step("preprocess", "--input", f"{store}/dl", "--output", f"{store}/pp", echo=False)
            for architecture in ARCHITECTURES:
                for precision in precisions:
                    rows[side, architecture, precision] = measure(store, side, architecture, precision)
    if CUDA:
        for side in SIZES:
            for architecture in ARCHITECTURES:
                print(f"step bf16 / fp32, {architecture} at {side}x{side}: "
                      f"{rows[side, architecture, 'bf16'] / rows[side, architecture, 'fp32']:.2f}x")
    else:
        print("bf16 + channels_last rows need CUDA (no GPU here); run this script unchanged on a GPU machine")
    dispatch_overhead()


def dispatch_overhead(batch: int = 256, batches: int = 200, rounds: int = 7) -> None:
    """Print the train step's time a batch over the bare loop's for a model that computes next to nothing (one linear
    layer on 16 features; label smoothing 0.1 as the step uses from 1,000 images; fp32; one thread on the CPU): the
    cost of what the step dispatches and launches beyond the bare loop, which decides a small model's ratio on a GPU,
    where each batch is bound by its launches. Medians of interleaved rounds."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    x, y = torch.randn(batch * batches, 16, device=DEVICE), torch.randint(0, 10, (batch * batches,), device=DEVICE)

    def linear():
        torch.manual_seed(0)
        return torch.nn.Linear(16, 10)

    trainer = recipe.Trainer(linear(), recipe.plan(len(x), 10**6, batch, LEARNING_RATE, label_smoothing=0.1),
                             DEVICE, 0)
    bare = linear().to(DEVICE)
    optimizer = bare_optimizer(bare)
    epochs = {"step": lambda: trainer.train_epoch(x, y),
              "bare": lambda: bare_epoch(bare, optimizer, x, y, batch, False)}
    times = {name: [] for name in epochs}
    for _ in range(rounds):
        for name, epoch in epochs.items():
            times[name].append(seconds(epoch) / batches * 1e6)
    torch.set_num_threads(threads)
    step_us, bare_us = statistics.median(times["step"]), statistics.median(times["bare"])
    print(f"dispatch overhead (a linear model, batch {batch}, fp32, label smoothing 0.1): step {step_us:.0f} us a "
          f"batch, bare loop {bare_us:.0f} us: +{step_us - bare_us:.0f} us ({bare_us / step_us:.2f}x)")


def measure(store: str, side: int, architecture: str, precision: str) -> float:
    """One row: the step's and the bare loop's samples/s in interleaved rounds, printed; the step's median."""
    steps, bares, accuracy = [], [bare_loop(f"{store}/pp", architecture, precision)], None
    for round_ in range(ROUNDS):
        out = f"{store}/train-{architecture}-{precision}-{round_}"
        step("train", "--input", f"{store}/pp", "--output", out, "--device", DEVICE, "--precision", precision,
             "--architecture", architecture, "--epochs", str(EPOCHS), "--batch-size", str(BATCH),
             "--learning-rate", str(LEARNING_RATE), "--seed", str(round_), echo=False)
        measured = json.loads((Path(out.removeprefix("file://")) / layout.METRICS).read_text())
        steps.append(measured["samples_per_s"])
        accuracy = measured["val_accuracy"]
        bares.append(bare_loop(f"{store}/pp", architecture, precision))
    mine, bare = statistics.median(steps), statistics.median(bares)
    here = in_process(f"{store}/pp", architecture, precision)
    print(f"{side:>3}x{side:<3} {architecture:<13}{precision:<10}{mine:15.0f}{bare:16.0f}{mine / bare:7.2f}x   "
          f"(step rounds {', '.join(f'{v:.0f}' for v in steps)}; bare {', '.join(f'{v:.0f}' for v in bares)}; "
          f"step val_accuracy {accuracy:.3f}; in one process: Trainer {here['step']:.0f}, bare {here['bare']:.0f}, "
          f"{here['step'] / here['bare']:.2f}x)", flush=True)
    return mine


if __name__ == "__main__":
    main()
