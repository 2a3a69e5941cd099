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

from bench.train import epoch_runners, gratings  # noqa: E402
from retrain_steps.input_spec import InputSpec, prepare  # noqa: E402
from retrain_steps.models import resolve_device  # noqa: E402

DEVICE = resolve_device("auto")
SIDE = int(os.environ.get("PROFILE_SIDE", "28"))
SAMPLES = int(os.environ.get("PROFILE_SAMPLES", "21000"))
BATCH = int(os.environ.get("PROFILE_BATCH", "256"))
PRECISION = os.environ.get("PROFILE_PRECISION", "fp32")
ARCH = os.environ.get("PROFILE_ARCH", "cnn")


def data(spec: InputSpec):
    images, target = gratings(SAMPLES, SIDE)
    return torch.from_numpy(prepare(images, spec)), torch.from_numpy(target)


def main() -> None:
    from torch.profiler import ProfilerActivity, profile

    spec = InputSpec(height=SIDE, width=SIDE, channels=1, class_names=tuple(f"c{k}" for k in range(10)),
                     mean=(0.5,), std=(0.25,))
    x, y = data(spec)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if DEVICE == "cuda" else [])
    print(f"{DEVICE}, {ARCH} at {SIDE}x{SIDE}, {PRECISION}, batch {BATCH}, {len(x)} images; torch {torch.__version__}")
    runners = epoch_runners(spec, x, y, ARCH, PRECISION, BATCH)  # the Trainer's epoch and the bare loop's
    for name in ("bare", "step"):
        run = runners[name]
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
