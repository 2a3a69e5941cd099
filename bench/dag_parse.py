"""DAG-file parse time: steady state (as the DAG processor records it) and in a cold process.

Prints, for every file in dags/ and each backend: the duration of ``DagBag.process_file`` (what
the DAG processor times per file) for the first parse and the median of 5 further parses in
the same process (the DAG processor's steady state), and the wall time of a cold `python` process that parses the file, next to a
cold process that only imports `airflow.sdk` (the floor every DAG file pays) measured in the
same run. Goal: steady state <= 0.5 s.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DAGS = sorted((ROOT / "dags").glob("*.py"))
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT)])}

STEADY = """
import statistics, sys, time
from airflow.models import DagBag
path = sys.argv[1]
durations = []
for _ in range(6):
    bag = DagBag(dag_folder=path, collect_dags=False)
    start = time.perf_counter()
    bag.process_file(path, only_if_updated=False)
    durations.append(time.perf_counter() - start)
    assert not bag.import_errors and bag.dags, bag.import_errors
print(durations[0], statistics.median(durations[1:]))
"""


def cold(code: str, env: dict, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    floor = cold("import airflow.sdk", ENV)
    print(f"cold process importing airflow.sdk only (baseline): {floor:.2f} s")
    print(f"{'file':<24}{'backend':<12}{'first parse':>12}{'steady':>10}{'cold proc':>11}{'cold/base':>10}")
    for backend in ("local", "kubernetes"):
        env = {**ENV, "RETRAIN_BACKEND": backend}
        for dag in DAGS:
            out = subprocess.run([sys.executable, "-c", STEADY, str(dag)], env=env, check=True, capture_output=True,
                                 text=True).stdout.split()
            first, steady = float(out[-2]), float(out[-1])
            wall = cold(f"import runpy; runpy.run_path({str(dag)!r})", env)
            print(f"{dag.name:<24}{backend:<12}{first:>11.3f}s{steady:>9.3f}s{wall:>10.2f}s{wall / floor:>9.2f}x")


if __name__ == "__main__":
    main()
