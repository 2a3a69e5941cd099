"""Device check: the bento path (registry follower) serving on FAST_DEVICE vs cpu; answers, wrk load, cold start.

Stdlib only (runs under the device's python3 with the carried wheels on PYTHONPATH). Run from the repo root.
Env: OUT, REGISTRY (file:// URI), FAST_DEVICE (cuda), WRK (path), WRK_SECONDS, WRK_CONNECTIONS, WRK_THREADS,
BUDGET_S (skip the remaining servers past this many seconds).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path.cwd()
OUT = Path(os.environ["OUT"])
WORK = Path(os.environ.get("WORK_DIR", "/tmp/gpu-bench"))
REG = os.environ["REGISTRY"]
FAST = os.environ.get("FAST_DEVICE", "cuda")
WRK = os.environ.get("WRK", "wrk")
SECS = int(os.environ.get("WRK_SECONDS", "10"))
CONNS = int(os.environ.get("WRK_CONNECTIONS", "64"))
THREADS = int(os.environ.get("WRK_THREADS", "4"))
BUDGET = float(os.environ.get("BUDGET_S", "330"))
T0 = time.monotonic()
BOUNDARY = "gpubenchboundary7MA4YWxkTrZu0gW"
LUA = 'local f = io.open("{body}", "rb")\nwrk.method = "POST"\nwrk.body = f:read("*all")\nf:close()\n' \
      'wrk.headers["Content-Type"] = "{ctype}"\n'

WORK.mkdir(parents=True, exist_ok=True)
(WORK / "logs").mkdir(exist_ok=True)
results: dict = {"fast_device": FAST, "wrk": {"seconds": SECS, "connections": CONNS, "threads": THREADS},
                 "servers": {}}


def say(*parts) -> None:
    print(f"[{time.monotonic() - T0:6.1f}s]", *parts, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http(url: str, body: bytes | None = None, ctype: str | None = None, timeout: float = 30) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": ctype} if ctype else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


PNG = (ROOT / "serving" / "samples" / "digit-3.png").read_bytes()
MULTIPART = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"digit-3.png\"\r\n"
             "Content-Type: image/png\r\n\r\n").encode() + PNG + f"\r\n--{BOUNDARY}--\r\n".encode()
MP_TYPE = f"multipart/form-data; boundary={BOUNDARY}"
DATA = json.loads((ROOT / ".gpu" / "instances.json").read_text())
INSTANCES, TARGET = DATA["instances"], DATA["target"]
BODIES = {"png": (MULTIPART, MP_TYPE), "json64": (json.dumps({"instances": INSTANCES[:64]}).encode(), "application/json")}
SCRIPTS = {}
for kind, (body, ctype) in BODIES.items():
    (WORK / f"{kind}.body").write_bytes(body)
    (WORK / f"{kind}.lua").write_text(LUA.format(body=WORK / f"{kind}.body", ctype=ctype))
    SCRIPTS[kind] = WORK / f"{kind}.lua"


def metrics_totals(url: str) -> dict:
    _, text = http(f"{url}/metrics")
    totals: dict[str, float] = {}
    for line in text.decode().splitlines():
        m = re.match(r"^(digits_predict_batch_(?:size|requests)_(?:sum|count))(?:\{[^}]*\})? ([0-9.eE+-]+)$", line)
        if m:
            totals[m.group(1)] = totals.get(m.group(1), 0.0) + float(m.group(2))
    return totals


def wrk(url: str, kind: str, seconds: int) -> dict:
    out = subprocess.run([WRK, f"-t{THREADS}", f"-c{CONNS}", f"-d{seconds}s", "--latency", "-s", str(SCRIPTS[kind]),
                          f"{url}/predict"], capture_output=True, text=True, timeout=seconds + 30)
    text = out.stdout + out.stderr

    def latency(pct: str) -> float | None:
        m = re.search(rf"^\s+{pct}%\s+([0-9.]+)(us|ms|s)\s*$", text, re.M)
        return round(float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)], 3) if m else None

    rps = re.search(r"Requests/sec:\s+([0-9.]+)", text)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return {"rps": float(rps.group(1)) if rps else None, "p50_ms": latency("50"), "p99_ms": latency("99"),
            "non2xx": int(non2xx.group(1)) if non2xx else 0, "socket_errors": sum(map(int, sock.groups())) if sock else 0,
            "raw_tail": text[-600:] if not rps else None}


def measured_wrk(url: str, kind: str) -> dict:
    wrk(url, kind, 2)  # warm-up, discarded
    before = metrics_totals(url)
    row = wrk(url, kind, SECS)
    after = metrics_totals(url)

    def mean(name: str) -> float | None:
        count = after.get(f"{name}_count", 0) - before.get(f"{name}_count", 0)
        return round((after.get(f"{name}_sum", 0) - before.get(f"{name}_sum", 0)) / count, 2) if count else None

    row["batch_size_mean"] = mean("digits_predict_batch_size")
    row["batch_requests_mean"] = mean("digits_predict_batch_requests")
    row["forward_passes"] = after.get("digits_predict_batch_size_count", 0) - before.get("digits_predict_batch_size_count", 0)
    return row


def gpu_apps() -> str:
    try:
        return subprocess.run(["nvidia-smi", "--query-compute-apps=pid,process_name,used_memory", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20).stdout.strip() or "(no compute apps)"
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"n/a ({type(err).__name__})"


def gpu_util() -> str:
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"n/a ({type(err).__name__})"


def run_server(name: str, device: str, workers: int, wait_ms: float, loads: list[str], answers: bool) -> None:
    if time.monotonic() - T0 > BUDGET:
        say(f"skip {name}: past the {BUDGET:.0f} s budget")
        results["servers"][name] = {"skipped": "time budget"}
        return
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "DIGITS_REGISTRY_URI": REG, "DIGITS_DEVICE": device, "DIGITS_WORKERS": str(workers),
           "DIGITS_BATCH_WAIT_MS": str(wait_ms), "DIGITS_POLL_SECONDS": "30", "BENTOML_HOME": str(WORK / name / "bentoml"),
           "PYTHONUNBUFFERED": "1"}
    row: dict = {"device": device, "workers": workers, "batch_wait_ms": wait_ms}
    results["servers"][name] = row
    log_path = WORK / "logs" / f"{name}.log"
    with open(log_path, "w") as log:
        start = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", "serving.service:DigitsClassifier",
                                    "--host", "127.0.0.1", "--port", str(port)], cwd=ROOT, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    say(f"{name}: started pid {process.pid} (device={device} workers={workers} wait={wait_ms} ms) on {url}")
    try:
        deadline = time.monotonic() + 150
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited {process.returncode} before /readyz answered")
            try:
                status, body = http(f"{url}/readyz", timeout=2)
            except OSError:
                status, body = 0, b""
            if status == 200:
                break
            if time.monotonic() > deadline:
                raise TimeoutError("/readyz not 200 after 150 s")
            time.sleep(0.1)
        row["cold_start_s"] = round(time.perf_counter() - start, 2)
        row["readyz"] = json.loads(body)
        say(f"{name}: ready in {row['cold_start_s']} s: {body.decode()}")
        row["gpu_apps"] = gpu_apps()
        if answers:
            status, body = http(f"{url}/predict", MULTIPART, MP_TYPE)
            answer = json.loads(body)
            row["png"] = {"status": status, "prediction": answer.get("prediction"), "class_name": answer.get("class_name"),
                          "model_version": answer.get("model_version"),
                          "p_max": max(answer.get("probabilities", [0]))}
            status, body = http(f"{url}/predict", json.dumps({"instances": INSTANCES}).encode(), "application/json")
            answer = json.loads(body)
            row["json200"] = {"status": status, "predictions": answer.get("predictions"),
                              "probabilities": answer.get("probabilities"), "model_version": answer.get("model_version")}
            if status == 200:
                row["json200"]["accuracy"] = sum(p == t for p, t in zip(answer["predictions"], TARGET)) / len(TARGET)
            say(f"{name}: png -> {row['png']}; json200 status {status} accuracy {row['json200'].get('accuracy')}")
        for kind in loads:
            row[f"wrk_{kind}"] = measured_wrk(url, kind)
            say(f"{name}: wrk {kind}: {row[f'wrk_{kind}']}")
        row["gpu_after_load"] = gpu_util()
        row["gpu_apps_after"] = gpu_apps()
    except Exception as err:  # record and go on to the next server
        row["error"] = f"{type(err).__name__}: {err}"
        say(f"{name}: ERROR {row['error']}")
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        say(f"{name}: stopped (process group {process.pid})")
        write_summary()


def ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "n/a"


def write_summary() -> None:
    servers = results["servers"]
    lines = [f"bento path: bentoml serve serving.service:DigitsClassifier following {REG}",
             f"fast device = {FAST}; wrk {SECS} s, {CONNS} connections, {THREADS} threads (after a 2 s warm-up)", ""]
    fast, cpu = servers.get("fast_w1"), servers.get("cpu_w1")
    if fast and cpu and fast.get("json200", {}).get("probabilities") and cpu.get("json200", {}).get("probabilities"):
        pf, pc = fast["json200"]["probabilities"], cpu["json200"]["probabilities"]
        agree = sum(a == b for a, b in zip(fast["json200"]["predictions"], cpu["json200"]["predictions"]))
        dp = max(abs(x - y) for rf, rc in zip(pf, pc) for x, y in zip(rf, rc))
        results["agreement"] = {"argmax_agree": agree, "n": len(pf), "max_abs_dp": dp}
        lines.append(f"answers {FAST} vs cpu on {len(pf)} instances: argmax agree {agree}/{len(pf)}, max |dp| {dp:.2e} "
                     f"(probabilities as served, 6 decimals); accuracy {FAST} {fast['json200'].get('accuracy')}, "
                     f"cpu {cpu['json200'].get('accuracy')}")
        lines.append(f"png digit-3: {FAST} {fast.get('png')}; cpu {cpu.get('png')}")
        lines.append("")
    lines.append(f"{'server':12} {'device':6} {'wrk':3} {'wait':>4} {'body':6} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
                 f"{'rows/pass':>9} {'req/pass':>8} {'errs':>5} {'cold s':>7}")
    for name, row in servers.items():
        if "skipped" in row:
            lines.append(f"{name:12} skipped ({row['skipped']})")
            continue
        loads = [k for k in row if k.startswith("wrk_")] or [None]
        for key in loads:
            w = row.get(key) or {}
            lines.append(f"{name:12} {row['device']:6} {row['workers']:3d} {row['batch_wait_ms']:4g} "
                         f"{(key or '-')[4:]:6} {w.get('rps') or 0:9.0f} {w.get('p50_ms') or 0:8.2f} "
                         f"{w.get('p99_ms') or 0:8.2f} {w.get('batch_size_mean') or 0:9.2f} "
                         f"{w.get('batch_requests_mean') or 0:8.2f} {w.get('non2xx', 0) + w.get('socket_errors', 0):5d} "
                         f"{row.get('cold_start_s', 0):7.2f}" + (f"  ERROR {row['error']}" if row.get("error") else ""))
    lines.append("")
    lines.append(f"ratios {FAST} / cpu (same machine, same call):")
    for fast_name, cpu_name in (("fast_w1", "cpu_w1"), ("fast_w2", "cpu_w2")):
        f, c = servers.get(fast_name, {}), servers.get(cpu_name, {})
        for kind in ("png", "json64"):
            wf, wc = f.get(f"wrk_{kind}"), c.get(f"wrk_{kind}")
            if wf and wc:
                lines.append(f"  {fast_name}/{cpu_name} {kind}: req/s {ratio(wf['rps'], wc['rps'])}, "
                             f"p50 {ratio(wf['p50_ms'], wc['p50_ms'])}, p99 {ratio(wf['p99_ms'], wc['p99_ms'])}")
        if f.get("cold_start_s") and c.get("cold_start_s"):
            lines.append(f"  {fast_name}/{cpu_name} cold start: {ratio(f['cold_start_s'], c['cold_start_s'])} "
                         f"({f['cold_start_s']} s vs {c['cold_start_s']} s)")
    for a, b, what in (("fast_w2", "fast_w1", "2 workers / 1"), ("fast_w1_wait2", "fast_w1", "wait 2 ms / 0"),
                       ("fast_w2_wait2", "fast_w2", "2 workers: wait 2 ms / 0"), ("cpu_w2", "cpu_w1", "cpu 2 workers / 1")):
        wa, wb = servers.get(a, {}).get("wrk_png"), servers.get(b, {}).get("wrk_png")
        if wa and wb:
            lines.append(f"  {what} (png): req/s {ratio(wa['rps'], wb['rps'])}, p99 {ratio(wa['p99_ms'], wb['p99_ms'])}")
    for name, row in servers.items():
        if row.get("gpu_apps") is not None:
            lines.append(f"gpu compute apps while {name} was ready: {row['gpu_apps']!r}; after load: "
                         f"{row.get('gpu_after_load')!r}")
    lines.append(f"elapsed {time.monotonic() - T0:.0f} s")
    (OUT / "summary.txt").write_text("\n".join(lines) + "\n")
    (OUT / "results.json").write_text(json.dumps(results, indent=1))


run_server("fast_w1", FAST, 1, 0, ["png", "json64"], answers=True)
run_server("cpu_w1", "cpu", 1, 0, ["png", "json64"], answers=True)
run_server("fast_w2", FAST, 2, 0, ["png"], answers=False)
run_server("cpu_w2", "cpu", 2, 0, ["png"], answers=False)
run_server("fast_w1_wait2", FAST, 1, 2, ["png"], answers=False)
run_server("fast_w2_wait2", FAST, 2, 2, ["png"], answers=False)
write_summary()
# server logs: each one's errors and tail, one file
with open(OUT / "servers.log", "w") as merged:
    for log in sorted((WORK / "logs").glob("*.log")):
        lines = log.read_text(errors="replace").splitlines()
        flagged = [line for line in lines if re.search(r"ERROR|Traceback|Error:|exception", line)]
        merged.write(f"===== {log.name}: {len(lines)} lines; {len(flagged)} flagged (first 40)\n")
        merged.write("\n".join(flagged[:40]) + "\n----- first 40 lines\n" + "\n".join(lines[:40]) + "\n----- last 40\n"
                     + "\n".join(lines[-40:]) + "\n")
print((OUT / "summary.txt").read_text())
