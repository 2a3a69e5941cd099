"""``/predict`` throughput and latency: our BentoML server vs the seed's Flask app vs a bare Starlette app.

One run, same model (the embedded digits, trained here for a few epochs; ours serves it from the
bento ``serving.package`` built, following the registry as ``make run`` does) and the same
preprocessing in all three; each server in its own process group on 127.0.0.1. Load: ``wrk``
(32 connections, 2 threads), multipart PNG uploads (``curl -F file=@digit.png``) and, for our
server, JSON ``instances``, and our server with adaptive batching off; ``BENCH_ROUNDS`` interleaved rounds of ``BENCH_SECONDS`` each, medians
reported, plus cold start (process start → ``/readyz`` 200), one and two worker processes,
latency at a constant half of peak (``h2load --rps``: 16 paced clients, every request's latency
from its log), and a soak (``BENCH_SOAK_SECONDS``, 60) at 32 connections with the server's RSS
before and after. Prints a table and the ratios the issue sets as goals (≥ 2x Flask,
≥ 0.8x Starlette with the same number of workers, p99 ≤ 50 ms at half of peak, cold start ≤ 5 s).

Beside the digits CNN, the same server following a second registry whose production version is a ResNet-18
at 224x224 RGB (13 classes; trained 1 epoch on a small generated texture set, :mod:`tests.helpers.textures`:
its accuracy is not the point, its cost is), loaded with a 224x224 PNG: its cold start, req/s and latency,
and their ratios to the digits CNN's (``BENCH_RESNET=0`` leaves it out).

    make bench-serve        # installs wrk and h2load (nghttp2-client) from Debian when missing
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers.servers import free_port, serve  # noqa: E402

BIN = Path(sys.executable).parent
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "8"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
SOAK = int(os.environ.get("BENCH_SOAK_SECONDS", "60"))
RESNET = os.environ.get("BENCH_RESNET", "1") != "0"
RESNET_SIDE = 224
# Loads that are not the body of that name at CONNECTIONS: body, connections, wrk's timeout (s). A ResNet-18 at
# 224 px batches 32 requests into a pass of about 2 s on these cores: past wrk's 2 s default they would be errors.
LOADS = {"png224": ("png224", CONNECTIONS, 30), "png224, 1 conn": ("png224", 1, 30)}
BOUNDARY = "benchboundary7MA4YWxkTrZu0gW"
LUA = """local f = io.open("{body}", "rb")
wrk.method = "POST"
wrk.body = f:read("*all")
f:close()
wrk.headers["Content-Type"] = "{content_type}"
"""


def step(*args: str, env: dict) -> None:
    subprocess.run([sys.executable, "-m", "retrain_steps", *args], env=env, cwd=ROOT, check=True, capture_output=True)


def train_model(tmp: Path, name: str = "store", source: str | None = None, train_args: tuple[str, ...] = (
        "--epochs", "5"), env: dict | None = None) -> tuple[str, str]:
    """A model as a train folder, and packaged (``serving.package``: registered with its bento) as the production
    version of a registry, which our server follows as ``make run``'s does: by default the digits model (5 epochs);
    else the dataset at ``source`` trained with ``train_args``."""
    from retrain_steps import protocol, registry

    store = f"file://{tmp}/{name}"
    env = {**os.environ, **(env or {})}
    if source is None:
        source = f"{store}/digits.npz"
        step("export-default", "--output", source, env=env)
    step("download", "--source", source, "--output", f"{store}/dl", env=env)
    step("preprocess", "--input", f"{store}/dl", "--output", f"{store}/pp", env=env)
    step("train", "--input", f"{store}/pp", "--output", f"{store}/model", *train_args, env=env)
    step("evaluate", "--data", f"{store}/pp", "--model", f"{store}/model", "--output", f"{store}/eval", env=env)
    reg = f"{store}/registry"
    result = tmp / f"{name}-package-result.json"  # where the step protocol writes the step's result (the card)
    subprocess.run([sys.executable, "-m", "serving.package", "--model", f"{store}/model", "--evaluation",
                    f"{store}/eval", "--dataset", f"{store}/dl", "--registry", reg],
                   env={**env, protocol.RESULT_ENV: str(result)}, cwd=ROOT, check=True, capture_output=True, text=True)
    card = protocol.read_result(result)
    registry.promote(reg, card["version"])
    return f"{tmp}/{name}/model", reg


def train_resnet(tmp: Path) -> str:
    """A ResNet-18 for 224x224 RGB images (13 texture classes, 1 epoch on 6 images a class: its accuracy does not
    matter here), registered and promoted in a registry of its own; that registry's URI."""
    from tests.helpers.datasets import write_folder
    from tests.helpers.textures import TEXTURES, texture_files

    source = write_folder(tmp / "textures", texture_files(TEXTURES, 6, RESNET_SIDE, "RGB", seed=1))
    return train_model(tmp, "resnet", f"file://{source}", ("--architecture", "resnet18", "--epochs", "1"),
                       env={"RETRAIN_MAX_STORED_SIDE": str(RESNET_SIDE)})[1]


def multipart(png: bytes, filename: str) -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode() + png + f"\r\n--{BOUNDARY}--\r\n".encode()


def bodies(tmp: Path) -> dict[str, tuple[Path, str]]:
    """wrk scripts by load: ``png`` (the digit sample), ``json`` (``instances``), ``png224`` (a 224x224 RGB
    texture image, for the ResNet-18)."""
    import numpy as np

    from serving.service import EXAMPLE_INPUT
    from tests.helpers.datasets import png
    from tests.helpers.textures import texture_image

    kind = "rings"
    texture = png(texture_image(kind, RESNET_SIDE, np.random.default_rng(0), "RGB"))
    form = f"multipart/form-data; boundary={BOUNDARY}"
    out = {}
    for name, body, content_type in (("png", multipart((ROOT / "serving" / "samples" / "digit-3.png").read_bytes(),
                                                       "digit-3.png"), form),
                                     ("json", json.dumps(EXAMPLE_INPUT).encode(), "application/json"),
                                     ("png224", multipart(texture, f"{kind}.png"), form)):
        (tmp / f"{name}.body").write_bytes(body)
        (tmp / f"{name}.lua").write_text(LUA.format(body=tmp / f"{name}.body", content_type=content_type))
        out[name] = (tmp / f"{name}.lua", content_type)
    return out


def wrk(url: str, script: Path, connections: int = CONNECTIONS, seconds: int = SECONDS, timeout: int = 2) -> dict:
    """One wrk run: requests/s, p50 and p99 latency (ms), non-2xx responses and socket errors (a response slower
    than ``timeout`` seconds is a timeout error: wrk's default, 2 s, unless a load says otherwise)."""
    out = subprocess.run(["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s", "--latency",
                          f"--timeout={timeout}s", "-s", str(script), f"{url}/predict"],
                         capture_output=True, text=True, check=True).stdout

    def latency(pct: str) -> float:
        value, unit = re.search(rf"^\s+{pct}%\s+([0-9.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1)), "p50": latency("50"),
            "p99": latency("99"), "errors": int(errors.group(1)) if errors else 0,
            "socket_errors": sum(map(int, socket.groups())) if socket else 0}


def paced(url: str, body: Path, content_type: str, rate: float, seconds: int = SECONDS, clients: int = 16) -> dict:
    """Latency at a constant request rate: ``h2load --rps`` (HTTP/1.1), ``clients`` paced clients.

    Unlike wrk's closed loop, the offered load does not fall when the server slows; p50/p99/max
    come from h2load's per-request log (send to end of response).
    """
    with tempfile.NamedTemporaryFile(suffix=".log") as log:
        subprocess.run(["h2load", "--h1", f"-c{clients}", f"--rps={rate / clients:.2f}", "-D", str(seconds),
                        "-d", str(body), "-H", f"Content-Type: {content_type}", f"--log-file={log.name}",
                        f"{url}/predict"], capture_output=True, text=True, check=True)
        rows = [line.split("\t") for line in Path(log.name).read_text().splitlines()]
    latencies = sorted(int(row[2]) / 1000 for row in rows)
    return {"rps": len(rows) / seconds, "p50": latencies[len(latencies) // 2],
            "p99": latencies[int(len(latencies) * 0.99)], "max": latencies[-1],
            "errors": sum(row[1] != "200" for row in rows)}


def forward_passes(url: str) -> tuple[float, float]:
    """From the server's ``/metrics``: forward passes so far and the mean requests per pass."""
    import httpx

    text = httpx.get(f"{url}/metrics", timeout=10).text

    def total(name: str) -> float:
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))

    passes = total("digits_predict_batch_requests_count")
    return passes, total("digits_predict_batch_requests_sum") / max(passes, 1)


def tree_rss(pid: int) -> int:
    """Resident memory of a server and its worker processes, in bytes."""
    import psutil

    root = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])


def main() -> None:
    for tool, package in (("wrk", "wrk"), ("h2load", "nghttp2-client")):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed: make bench-serve installs it (apt-get install {package})")
    with tempfile.TemporaryDirectory() as tmp_name, ExitStack() as stack:
        tmp = Path(tmp_name)
        model_dir, reg = train_model(tmp)
        resnet_reg = train_resnet(tmp) if RESNET else None
        scripts = bodies(tmp)
        bento = [str(BIN / "bentoml"), "serve", "serving.service:DigitsClassifier", "--host", "127.0.0.1", "--port", "{port}"]
        # Ours follows the registry: it fetches the production version's bento, verifies its sha256, imports it.
        ours = {"DIGITS_REGISTRY_URI": reg, "DIGITS_WORKERS": "1", "BENTOML_HOME": f"{tmp}/bentoml"}
        uvicorn = [str(BIN / "uvicorn"), "bench.baselines.starlette_app:app", "--port", "{port}", "--log-level", "warning",
                   "--no-access-log", "--workers"]
        servers = {
            "flask (seed)": ([sys.executable, str(ROOT / "bench" / "baselines" / "flask_app.py"), "{port}"],
                             {"MODEL_DIR": model_dir, "PYTHONPATH": str(ROOT)}),
            "starlette (bare ASGI)": ([*uvicorn, "1"], {"MODEL_DIR": model_dir}),
            "bentoml (ours)": (bento, ours),
            "bentoml (ours), no batching": (bento, {**ours, "DIGITS_MAX_BATCH_ROWS": "1"}),
            "starlette, 2 workers": ([*uvicorn, "2"], {"MODEL_DIR": model_dir}),
            "bentoml (ours), 2 workers": (bento, {**ours, "DIGITS_WORKERS": "2"}),
            "bentoml (ours), capture on": (bento, {**ours,
                                                   "DIGITS_CAPTURE_URI": f"file://{tmp}/capture"}),
        }
        if resnet_reg:
            servers["bentoml, resnet18 224px"] = (bento, {**ours, "DIGITS_REGISTRY_URI": resnet_reg})
        urls, cold, processes = {}, {}, {}
        for name, (argv, env) in servers.items():
            port = free_port()
            start = time.perf_counter()
            processes[name] = stack.enter_context(serve(
                [a.replace("{port}", str(port)) for a in argv], env=env, cwd=ROOT,
                ready_url=f"http://127.0.0.1:{port}/readyz", log_path=tmp / f"{port}.log"))
            cold[name], urls[name] = time.perf_counter() - start, f"http://127.0.0.1:{port}"
        loads = [(name, "png") for name in servers if "resnet18" not in name] + [("bentoml (ours)", "json")]
        if resnet_reg:
            loads += [("bentoml, resnet18 224px", "png224"), ("bentoml, resnet18 224px", "png224, 1 conn")]
        results: dict[tuple[str, str], list[dict]] = {load: [] for load in loads}
        for _ in range(ROUNDS):
            for name, kind in loads:
                body, connections, timeout = LOADS.get(kind, (kind, CONNECTIONS, 2))
                results[(name, kind)].append(wrk(urls[name], scripts[body][0], connections, timeout=timeout))
        batching = forward_passes(urls["bentoml (ours)"])
        peak = statistics.median(r["rps"] for r in results[("bentoml (ours)", "png")])
        light = [paced(urls["bentoml (ours)"], tmp / "png.body", scripts["png"][1], peak / 2) for _ in range(ROUNDS)]
        soak = None
        if SOAK:  # three equal parts; RSS after each shows whether memory levels off
            pid = processes["bentoml (ours)"].pid
            parts, rss = [], [tree_rss(pid)]
            for _ in range(3):
                parts.append(wrk(urls["bentoml (ours)"], scripts["png"][0], seconds=max(SOAK // 3, 1)))
                rss.append(tree_rss(pid))
            soak = {"rps": statistics.mean(p["rps"] for p in parts), "rss": rss,
                    "errors": sum(p["errors"] + p["socket_errors"] for p in parts)}
    summary = {load: {key: statistics.median(r[key] for r in runs) for key in runs[0]} for load, runs in results.items()}
    print(f"\n/predict at {CONNECTIONS} connections, median of {ROUNDS} interleaved rounds of {SECONDS} s "
          f"(one worker process each)\n")
    print(f"{'server':27} {'body':14} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'cold start s':>13}")
    for (name, kind), row in summary.items():
        print(f"{name:27} {kind:14} {row['rps']:8.0f} {row['p50']:8.1f} {row['p99']:8.1f} "
              f"{int(row['errors'] + row['socket_errors']):7d} {cold[name]:13.1f}")
    ours, flask = summary[("bentoml (ours)", "png")]["rps"], summary[("flask (seed)", "png")]["rps"]
    ours2 = summary[("bentoml (ours), 2 workers", "png")]["rps"]
    low = {key: statistics.median(r[key] for r in light) for key in light[0]}
    per_round = sorted(o["rps"] / f["rps"] for o, f in zip(results[("bentoml (ours)", "png")],
                                                            results[("flask (seed)", "png")], strict=True))
    print(f"\nours / flask (seed):              {ours / flask:.2f}x   (goal >= 2.0x; rounds {per_round[0]:.2f}x to "
          f"{per_round[-1]:.2f}x; 2 workers: {ours2 / flask:.2f}x)")
    print(f"ours / starlette, 1 worker each:  {ours / summary[('starlette (bare ASGI)', 'png')]['rps']:.2f}x   (goal >= 0.8x)")
    print(f"ours / starlette, 2 workers each: {ours2 / summary[('starlette, 2 workers', 'png')]['rps']:.2f}x")
    print(f"ours, 2 workers / 1 worker:       {ours2 / ours:.2f}x")
    print(f"feedback capture on / off:        {summary[('bentoml (ours), capture on', 'png')]['rps'] / ours:.2f}x")
    print(f"adaptive batching on / off:       {ours / summary[('bentoml (ours), no batching', 'png')]['rps']:.2f}x   "
          f"({batching[1]:.1f} requests per forward pass on average, {batching[0]:.0f} passes, png + json loads)")
    print(f"ours at a constant {low['rps']:.0f} req/s ({low['rps'] / ours:.0%} of peak): p50 {low['p50']:.1f} ms, "
          f"p99 {low['p99']:.1f} ms, max {low['max']:.0f} ms, {int(low['errors'])} errors   (goal: p99 <= 50 ms at half of peak)")
    print(f"cold start (ours):                {cold['bentoml (ours)']:.1f} s   (goal <= 5 s)")
    if ("bentoml, resnet18 224px", "png224") in summary:
        resnet, digits = summary[("bentoml, resnet18 224px", "png224")], summary[("bentoml (ours)", "png")]
        alone = summary[("bentoml, resnet18 224px", "png224, 1 conn")]
        print(f"resnet18 224px / digits CNN:      req/s {resnet['rps'] / digits['rps']:.3f}x "
              f"({resnet['rps']:.1f} vs {digits['rps']:.0f} at {CONNECTIONS} connections), p50 "
              f"{resnet['p50'] / digits['p50']:.0f}x, p99 {resnet['p99'] / digits['p99']:.0f}x; cold start "
              f"{cold['bentoml, resnet18 224px']:.1f} s ({cold['bentoml, resnet18 224px'] / cold['bentoml (ours)']:.2f}x); "
              f"one request at a time: p50 {alone['p50']:.0f} ms, p99 {alone['p99']:.0f} ms, {alone['rps']:.1f} req/s")
    if soak:
        print(f"soak {SOAK} s at {CONNECTIONS} connections: {soak['rps']:.0f} req/s, {soak['errors']} errors, "
              f"RSS every {SOAK // 3} s: {' -> '.join(f'{r / 2**20:.0f}' for r in soak['rss'])} MiB")


if __name__ == "__main__":
    main()
