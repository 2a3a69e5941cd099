"""Start and stop real servers for tests: free ports, readiness polling, process groups."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager


def free_port() -> int:
    """A port free now, below the kernel's ephemeral range.

    The server binds it later; a port from the ephemeral range (what binding port 0 gives) can be
    taken meanwhile by any outgoing connection on the machine ("Address already in use"). Ports
    below that range are only ever taken by an explicit bind.
    """
    low = _ephemeral_low()
    start, stop = max(1024, low - 12000), low
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:  # each pytest-xdist worker draws from its own slice: no two workers pick the same port
        share = (stop - start) // workers
        start += share * int(os.environ["PYTEST_XDIST_WORKER"].removeprefix("gw"))
        stop = start + share
    for _ in range(200):
        port = random.randrange(start, stop)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ranges:
            return int(ranges.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def wait_http(url: str, timeout: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} not ready after {timeout} s")


@contextmanager
def serve(argv: list[str], *, ready_url: str, env: dict, cwd, log_path, timeout: float = 120):
    """Run ``argv`` in its own process group until the block ends; wait for ``ready_url``."""
    with open(log_path, "w") as log:
        process = subprocess.Popen(argv, cwd=cwd, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        try:
            wait_http(ready_url, timeout, process)
        except Exception as err:
            raise RuntimeError(f"{err}\n--- server log ---\n{open(log_path).read()[-4000:]}") from None
        yield process
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(process.pid, signal.SIGKILL)


@contextmanager
def serve_directory(root):
    """A static HTTP server for ``root`` on 127.0.0.1 in a thread of this process; yields its base URL."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextmanager
def webhook_receiver():
    """An HTTP endpoint on 127.0.0.1 recording the JSON bodies POSTed to it; yields ``(url, bodies)``."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    bodies: list[dict] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            bodies.append({**json.loads(self.rfile.read(int(self.headers["Content-Length"]))),
                           "_authorization": self.headers.get("Authorization")})
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/hook", bodies
    finally:
        httpd.shutdown()
        httpd.server_close()


def wait_for_bodies(bodies: list, event: str, dag_id: str | None = None, seconds: float = 120) -> list:
    """The bodies a :func:`webhook_receiver` got for ``event`` (and ``dag_id``, when given) once at least one has
    arrived, or ``[]`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        found = [b for b in bodies if b["event"] == event and dag_id in (None, b.get("dag_id", dag_id))]
        if found or time.monotonic() >= deadline:
            return found
        time.sleep(0.5)
