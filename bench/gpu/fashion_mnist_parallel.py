"""The GPU table of the README's Fashion-MNIST benchmark: bench/train.py (fp32 and bf16 rows), then Fashion-MNIST
candidates trained at once as separate processes on one GPU by the real ``train`` step CLI (20 epochs, batch 64, the
form's defaults but the flags each job names; the split of ``preprocess``, as bench/fashion_mnist.py), each saved
model's test accuracy through ``load_predictor`` on CUDA, batched, on the same test split. Jobs still training at
``DEADLINE_S`` are stopped and reported by the validation accuracy of their last logged epoch. One job trains with
resized crops instead of the small inputs' shifts (``SMALL_INPUT_BELOW`` patched to 0 in its process).

The dataset: bench/fashion_mnist.py's converted .npz (``make bench-fashion-mnist`` builds it here), carried compressed
(``numpy.savez_compressed``: 30 MB; ``download`` reads it) in a folder that ``.git/info/exclude`` ignores, e.g.

    run(command="FM_NPZ=.gpu/fmnist.npz DEADLINE_S=500 TRAIN_BENCH_S=150 python3 bench/gpu/fashion_mnist_parallel.py",
        carry=[".gpu"], timeout_s=560)      # 2026-11-30 on an H200: 500 s

Env: OUT (results: fmnist.json, logs.txt, train_bench.txt), DEADLINE_S (470), TRAIN_BENCH (1: run bench/train.py
first), TRAIN_BENCH_S (170), FM_NPZ, FM_EPOCHS (20), FM_JOBS (job names, default all), WORK_DIR (/tmp/fm).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "images" / "steps" / "src"))

from bench.fashion_mnist import CONVERTED  # noqa: E402
from bench.step_cli import step  # noqa: E402
from retrain_steps import layout  # noqa: E402

OUT = Path(os.environ["OUT"])
T0 = time.monotonic()
DEADLINE = float(os.environ.get("DEADLINE_S", "470"))
EPOCHS = os.environ.get("FM_EPOCHS", "20")
NPZ = Path(os.environ.get("FM_NPZ", CONVERTED)).resolve()
WORK = Path(os.environ.get("WORK_DIR", "/tmp/fm"))
PY = sys.executable
ENV = {**os.environ, "PYTHONPATH": f"{ROOT}/images/steps/src", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "2"}
RRC = ("import sys; from retrain_steps import augmentation as a; a.SMALL_INPUT_BELOW = 0; "
       "from retrain_steps.__main__ import main; sys.exit(main(sys.argv[1:]))")
JOBS = {  # name: (learning rate, flags, resized crops instead of the small inputs' shifts)
    "cnn-0.003": (0.003, [], False),
    "cnn-aug-0.003": (0.003, ["--augment"], False),
    "rn18-0.001": (0.001, ["--architecture", "resnet18"], False),
    "rn18-0.003": (0.003, ["--architecture", "resnet18"], False),
    "rn18-aug-0.001": (0.001, ["--architecture", "resnet18", "--augment"], False),
    "rn18-aug-0.003": (0.003, ["--architecture", "resnet18", "--augment"], False),
    "rn18-augflip-0.001": (0.001, ["--architecture", "resnet18", "--augment", "--flip"], False),
    "rn18-rrc-0.001": (0.001, ["--architecture", "resnet18", "--augment"], True),
}
SELECTED = [j for j in os.environ.get("FM_JOBS", ",".join(JOBS)).split(",") if j]
results: dict = {"jobs": {}}


def say(*parts) -> None:
    print(f"[{time.monotonic() - T0:6.1f}s]", *parts, flush=True)


def epochs_logged(log: Path) -> list[tuple[int, float, float]]:
    lines = re.findall(r"epoch (\d+)/\d+ loss \S+ val_loss \S+ val_accuracy (\S+) samples/s (\S+)", log.read_text())
    return [(int(e), float(a), float(r)) for e, a, r in lines]


def test_accuracy(model: Path, splits_uri: str) -> float:
    import numpy as np

    from retrain_steps.input_spec import prepare
    from retrain_steps.models import load_predictor, read_model_info
    from retrain_steps.preprocess import load_spec, load_splits

    framework, spec = read_model_info(model)
    splits = load_splits(splits_uri, load_spec(splits_uri))
    predict = load_predictor(model, framework, spec, device="auto")
    x, y = prepare(splits["x_test"], spec), splits["y_test"]
    predicted = np.concatenate([predict(x[i : i + 2048]).argmax(1) for i in range(0, len(x), 2048)])
    return float((predicted == y).mean())


def run_job(name: str, splits_uri: str, lock: threading.Lock) -> None:
    learning_rate, flags, rrc = JOBS[name]
    out = WORK / "models" / name
    log = WORK / "logs" / f"{name}.log"
    head = [PY, "-c", RRC] if rrc else [PY, "-m", "retrain_steps"]
    command = [*head, "train", "--input", splits_uri, "--output", f"file://{out}", "--learning-rate",
               str(learning_rate), "--epochs", EPOCHS, "--batch-size", "64", "--seed", "0", "--device", "auto", *flags]
    began = time.monotonic()
    row: dict = {"flags": " ".join(flags) + (" (resized crops)" if rrc else ""), "learning_rate": learning_rate}
    for precision in ("auto", "fp32"):
        left = DEADLINE - (time.monotonic() - T0)
        with log.open("a") as handle:
            try:
                code = subprocess.run([*command, "--precision", precision], env=ENV, stdout=handle, stderr=handle,
                                      timeout=max(left, 1)).returncode
            except subprocess.TimeoutExpired:
                code = "timeout"
        row.update(precision=precision, exit=code, train_s=round(time.monotonic() - began, 1))
        if code != 0 and code != "timeout" and precision == "auto" and left > 150:
            say(f"{name}: exit {code} with --precision auto; again in fp32")
            continue
        break
    epochs = epochs_logged(log)
    if epochs:
        best = max(epochs, key=lambda e: e[1])
        row.update(epochs_run=len(epochs), best_epoch=best[0], val_accuracy=best[1],
                   samples_per_s=sorted(r for _, _, r in epochs)[len(epochs) // 2])
    if row["exit"] == 0:
        metrics = json.loads((out / layout.METRICS).read_text())
        row.update(architecture=metrics["architecture"], stem=metrics.get("stem"),
                   used_precision=metrics.get("recipe", {}).get("precision"))
        with lock:  # one CUDA evaluation at a time in this process
            row["test_accuracy"] = round(test_accuracy(out, splits_uri), 4)
    results["jobs"][name] = row
    say(f"{name}: {json.dumps(row)}")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    smi = subprocess.run("nvidia-smi -L || true", shell=True, capture_output=True, text=True).stdout.strip()
    say("nvidia-smi:", smi or "(none)")
    if os.environ.get("TRAIN_BENCH", "1") == "1":
        say("== bench/train.py")
        try:
            done = subprocess.run([PY, str(ROOT / "bench" / "train.py")], env=ENV, capture_output=True, text=True,
                                  timeout=float(os.environ.get("TRAIN_BENCH_S", "170")))
            text = done.stdout + done.stderr[-3000:]
        except subprocess.TimeoutExpired as err:
            text = f"bench/train.py timed out; so far:\n{err.stdout or ''}"
        (OUT / "train_bench.txt").write_text(text)
        print(text, flush=True)
    say("== Fashion-MNIST")
    (WORK / "logs").mkdir(parents=True, exist_ok=True)
    store = f"file://{WORK}"
    seconds = step("download", "--source", f"file://{NPZ}", "--output", f"{store}/download", echo=False)
    seconds += step("preprocess", "--input", f"{store}/download", "--output", f"{store}/preprocess", echo=False)
    say(f"download and preprocess: {seconds:.0f} s")
    lock = threading.Lock()
    threads = [threading.Thread(target=run_job, args=(name, f"{store}/preprocess", lock)) for name in SELECTED]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results["whole_s"] = round(time.monotonic() - T0, 1)
    (OUT / "fmnist.json").write_text(json.dumps(results, indent=1))
    with (OUT / "logs.txt").open("w") as handle:
        for name in SELECTED:
            log = WORK / "logs" / f"{name}.log"
            handle.write(f"===== {name}\n{log.read_text()[-6000:] if log.exists() else '(none)'}\n")
    print(f"\n{'job':22}{'flags':44}{'prec':6}{'exit':>8}{'epochs':>7}{'best':>5}{'val':>8}{'test':>8}{'s/s':>8}"
          f"{'train s':>9}")
    for name, row in results["jobs"].items():
        print(f"{name:22}{row['flags']:44}{str(row.get('used_precision', row['precision'])):6}{str(row['exit']):>8}"
              f"{row.get('epochs_run', 0):>7}{row.get('best_epoch', 0):>5}{row.get('val_accuracy', 0):8.4f}"
              f"{row.get('test_accuracy', 0):8.4f}{row.get('samples_per_s', 0):8.0f}{row['train_s']:9.0f}")
    say("done")


if __name__ == "__main__":
    main()
