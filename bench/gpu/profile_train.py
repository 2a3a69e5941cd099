"""Where the train step's epoch spends its time against bench/train.py's bare loop: torch.profiler over one epoch of
each, in one process, on the same data (bench/train.py's gratings), printing the top operators by self time on the
host and on the device, and each side's wall time. For the GPU session that finds why the step runs at 0.84x of the
bare loop in fp32 on an H200 (CNN, 28x28, batch 256; bf16 0.99x).

GPU machine:  PYTHONPATH=images/steps/src python3 bench/gpu/profile_train.py
Env: PROFILE_SIDE (28), PROFILE_SAMPLES (21000), PROFILE_BATCH (256), PROFILE_PRECISION (fp32), PROFILE_ARCH (cnn).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "images" / "steps" / "src"))

from bench.train import bare_epoch as bare_loop_epoch  # noqa: E402
from bench.train import bare_optimizer  # noqa: E402
from bench.train import gratings  # noqa: E402
from retrain_steps import architectures, recipe  # noqa: E402
from retrain_steps.input_spec import InputSpec, prepare  # noqa: E402
from retrain_steps.models import resolve_device, torch_model  # noqa: E402

DEVICE = resolve_device("auto")
SIDE = int(os.environ.get("PROFILE_SIDE", "28"))
SAMPLES = int(os.environ.get("PROFILE_SAMPLES", "21000"))
BATCH = int(os.environ.get("PROFILE_BATCH", "256"))
PRECISION = os.environ.get("PROFILE_PRECISION", "fp32")
ARCH = os.environ.get("PROFILE_ARCH", "cnn")


def data(spec: InputSpec):
    images, target = gratings(SAMPLES, SIDE)
    return torch.from_numpy(prepare(images, spec)), torch.from_numpy(target)


def model(spec: InputSpec):
    torch.manual_seed(0)
    return torch_model(ARCH, spec, architectures.stem_for(ARCH, SIDE, SIDE))


def step_epoch(spec, x, y):
    """One epoch of the train step's Trainer, as ``train`` runs it (recipe for this size, no validation)."""
    fit = recipe.Trainer(model(spec), recipe.plan(len(x), 5, BATCH, 1e-3, precision=PRECISION), DEVICE, 0)
    x, y = fit.to_device(x), y.to(DEVICE)
    return lambda: fit.train_epoch(x, y)


def bare_epoch(spec, x, y):
    """bench/train.py's bare loop, one epoch."""
    fast = PRECISION == "bf16"
    layout = torch.channels_last if fast else torch.contiguous_format
    net = model(spec).to(DEVICE, memory_format=layout).train()
    optimizer = bare_optimizer(net)
    x, y = x.to(DEVICE).contiguous(memory_format=layout), y.to(DEVICE)
    return lambda: bare_loop_epoch(net, optimizer, x, y, BATCH, fast)


def main() -> None:
    from torch.profiler import ProfilerActivity, profile

    spec = InputSpec(height=SIDE, width=SIDE, channels=1, class_names=tuple(f"c{k}" for k in range(10)),
                     mean=(0.5,), std=(0.25,))
    x, y = data(spec)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if DEVICE == "cuda" else [])
    print(f"{DEVICE}, {ARCH} at {SIDE}x{SIDE}, {PRECISION}, batch {BATCH}, {len(x)} images; torch {torch.__version__}")
    for name, make in (("bare", bare_epoch), ("step", step_epoch)):
        run = make(spec, x, y)
        run()  # warm-up epoch: cuDNN's choices, the allocator
        if DEVICE == "cuda":
            torch.cuda.synchronize()
        with profile(activities=activities) as prof:
            began = time.perf_counter()
            run()
            if DEVICE == "cuda":
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - began
        print(f"\n===== {name}: {elapsed * 1000:.0f} ms an epoch, {len(x) / elapsed:.0f} samples/s")
        averages = prof.key_averages()
        print(averages.table(sort_by="self_cpu_time_total", row_limit=12))
        if DEVICE == "cuda":
            print(averages.table(sort_by="self_device_time_total", row_limit=12))


if __name__ == "__main__":
    main()
