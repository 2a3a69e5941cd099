"""Run a step CLI (``python -m retrain_steps ...``) from a benchmark the way its pod would: one process each."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STEPS_PYTHON = os.environ.get("STEPS_PYTHON", sys.executable)


def step(*args: str, echo: bool = True) -> float:
    """Run one step CLI, echoing it and its per-epoch lines (``echo``); its wall time in seconds (exit with its log
    when it fails)."""
    if echo:
        print("  python -m retrain_steps " + " ".join(args), flush=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "images" / "steps" / "src"),
                                                                     os.environ.get("PYTHONPATH")]))}
    start, lines = time.perf_counter(), []
    with subprocess.Popen([STEPS_PYTHON, "-m", "retrain_steps", *args], cwd=ROOT, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as process:
        for line in process.stdout:
            lines.append(line)
            if echo and (" epoch " in line or "pretrained weights" in line):
                print("    " + line.split(" INFO ", 1)[-1].rstrip(), flush=True)
    if process.returncode:
        sys.exit(f"step failed (exit {process.returncode}):\n{''.join(lines)[-6000:]}")
    return time.perf_counter() - start
