"""End-to-end wall time of a `retrain` run vs the sum of its steps' own run time.

Runs `airflow dags test retrain` on the local backend in a scratch AIRFLOW_HOME and artifact
store, reads each step's own wall time from the task logs ("step X exited 0 after N s", the
subprocess running the step CLI) and prints both and their ratio. Goal: ratio <= 1.5.
Config: BENCH_CONF (JSON), default 10 epochs and two candidates.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STEP_LINE = re.compile(r"step (\w+) exited 0 after ([0-9.]+) s")


def main() -> None:
    conf = os.environ.get("BENCH_CONF", json.dumps({"epochs": 10, "learning_rates": [0.001, 0.003]}))
    with tempfile.TemporaryDirectory() as tmp:
        store = f"file://{tmp}/artifacts"
        env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "AIRFLOW_HOME": f"{tmp}/airflow",
               "RETRAIN_BACKEND": "local", "RETRAIN_ARTIFACT_STORE": store,
               "RETRAIN_DATASET_URI": f"{store}/datasets/digits/digits.npz"}
        subprocess.run([sys.executable, "-m", "retrain_steps", "export-default", "--output",
                        env["RETRAIN_DATASET_URI"]], env=env, cwd=ROOT, check=True, capture_output=True)
        subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, cwd=ROOT, check=True, capture_output=True)
        start = time.perf_counter()
        run = subprocess.run([str(BIN / "airflow"), "dags", "test", "retrain", "-c", conf], env=env, cwd=ROOT,
                             capture_output=True, text=True)
        total = time.perf_counter() - start
        if run.returncode != 0:
            sys.exit(run.stdout[-3000:] + run.stderr[-3000:])
    steps = [(name, float(seconds)) for name, seconds in STEP_LINE.findall(run.stdout + run.stderr)]
    own = sum(seconds for _, seconds in steps)
    print(f"config: {conf}")
    for name, seconds in steps:
        print(f"  step {name:<12}{seconds:8.2f} s")
    print(f"sum of step run times (baseline): {own:.1f} s")
    print(f"airflow dags test wall time:      {total:.1f} s")
    print(f"ratio end-to-end / steps:         {total / own:.2f}x (goal <= 1.5x)")


if __name__ == "__main__":
    main()
