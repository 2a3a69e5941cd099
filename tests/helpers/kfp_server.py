"""A real HTTP server on 127.0.0.1 that speaks the KFP v2beta1 REST shapes the bridge uses.

Responses are built from ``kfp_server_api`` models and serialized by its own ApiClient, so a
change in the models' schema changes (and breaks) what this server says. Scripting:

* ``server.states[run_id]`` / ``server.default_states``: states returned by successive GETs;
* ``server.failures``: HTTP statuses to answer the next requests with (401, 503, ...);
* ``server.token``: when set, requests without ``Authorization: Bearer <token>`` get 401;
* ``server.executor``: a callable(run_id, parameters) -> Popen; the run is RUNNING while the
  process lives, then SUCCEEDED or FAILED by its exit status (used to run kfp.local for real);
* ``server.lose_answers``: "METHOD path" of requests to carry out but answer with 503 (a lost answer);
* ``server.delay``: seconds to wait before answering (a hung API server).
Lists honour ``filter`` (display_name EQUALS) and ``page_size``/``page_token`` like the real server;
terminating a run that has ended answers 400 (FAILED_PRECONDITION), as KFP does.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import kfp_server_api as kfp

_CLIENT = kfp.ApiClient()
_IDS = itertools.count(1)


def dump(model) -> bytes:
    return json.dumps(_CLIENT.sanitize_for_serialization(model)).encode()


class FakeKfp:
    def __init__(self) -> None:
        self.pipelines: dict[str, kfp.V2beta1Pipeline] = {}
        self.versions: dict[str, list[kfp.V2beta1PipelineVersion]] = {}
        self.experiments: dict[str, kfp.V2beta1Experiment] = {}
        self.runs: dict[str, kfp.V2beta1Run] = {}
        self.states: dict[str, list[str]] = {}
        self.default_states = ["PENDING", "RUNNING", "SUCCEEDED"]
        self.failures: list[int] = []
        self.token: str | None = None
        self.executor = None
        self.processes: dict = {}
        self.requests: list[tuple[str, str, dict]] = []
        self.terminated: list[str] = []
        self.lose_answers: set[str] = set()
        self.delay = 0.0
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()

    # -- state ----------------------------------------------------------------------------
    def _run_state(self, run_id: str) -> str:
        if run_id in self.processes:
            code = self.processes[run_id].poll()
            return "RUNNING" if code is None else ("SUCCEEDED" if code == 0 else "FAILED")
        sequence = self.states.setdefault(run_id, list(self.default_states))
        return sequence.pop(0) if len(sequence) > 1 else sequence[0]

    def route(self, method: str, path: str, query: dict, body: bytes, headers) -> tuple[int, bytes]:
        status, payload = self._route(method, path, query, body, headers)
        if f"{method} {path}" in self.lose_answers and status == 200:
            self.lose_answers.discard(f"{method} {path}")
            return 503, json.dumps({"error": "upstream connect error", "code": 14}).encode()
        return status, payload

    @staticmethod
    def _page(items: list, query: dict) -> tuple[list, str]:
        """Filter by display_name EQUALS and cut one page, as the API server does."""
        wanted = json.loads(query.get("filter", '{"predicates": []}'))["predicates"]
        names = {p["string_value"] for p in wanted if p.get("key") == "display_name"}
        items = [i for i in items if not names or i.display_name in names]
        start, size = int(query.get("page_token") or 0), int(query.get("page_size") or 20)
        token = str(start + size) if start + size < len(items) else ""
        return items[start:start + size], token

    def _route(self, method: str, path: str, query: dict, body: bytes, headers) -> tuple[int, bytes]:
        if self.failures:
            status = self.failures.pop(0)
            return status, json.dumps({"error": "scripted failure", "code": status, "message": "scripted"}).encode()
        if self.token and headers.get("Authorization") != f"Bearer {self.token}":
            return 401, json.dumps({"error": "unauthenticated", "code": 16, "message": "bad token"}).encode()
        self.requests.append((method, path, query))
        if m := re.fullmatch(r"/apis/v2beta1/pipelines/names/([^/]+)", path):
            name = urllib.parse.unquote(m.group(1))
            found = [p for p in self.pipelines.values() if p.display_name == name]
            return (200, dump(found[0])) if found else (404, b'{"error": "not found", "code": 5}')
        if path == "/apis/v2beta1/pipelines/upload" and method == "POST":
            pipeline = kfp.V2beta1Pipeline(pipeline_id=f"p{next(_IDS)}", display_name=query["name"])
            self.pipelines[pipeline.pipeline_id] = pipeline
            self.versions[pipeline.pipeline_id] = [kfp.V2beta1PipelineVersion(
                pipeline_id=pipeline.pipeline_id, pipeline_version_id=f"v{next(_IDS)}", display_name=query["name"])]
            return 200, dump(pipeline)
        if path == "/apis/v2beta1/pipelines/upload_version" and method == "POST":
            version = kfp.V2beta1PipelineVersion(pipeline_id=query["pipelineid"], pipeline_version_id=f"v{next(_IDS)}",
                                                 display_name=query["name"])
            self.versions[query["pipelineid"]].append(version)
            return 200, dump(version)
        if m := re.fullmatch(r"/apis/v2beta1/pipelines/([^/]+)/versions", path):
            page, token = self._page(self.versions[m.group(1)], query)
            return 200, dump(kfp.V2beta1ListPipelineVersionsResponse(pipeline_versions=page, next_page_token=token,
                                                                      total_size=len(self.versions[m.group(1)])))
        if path == "/apis/v2beta1/experiments" and method == "GET":
            wanted = json.loads(query.get("filter", '{"predicates": []}'))["predicates"]
            names = {p["string_value"] for p in wanted}
            found = [e for e in self.experiments.values() if not names or e.display_name in names]
            return 200, dump(kfp.V2beta1ListExperimentsResponse(experiments=found, total_size=len(found)))
        if path == "/apis/v2beta1/experiments" and method == "POST":
            data = json.loads(body)
            experiment = kfp.V2beta1Experiment(experiment_id=f"e{next(_IDS)}", display_name=data["display_name"],
                                               namespace=data.get("namespace"))
            self.experiments[experiment.experiment_id] = experiment
            return 200, dump(experiment)
        if path == "/apis/v2beta1/runs" and method == "POST":
            data = json.loads(body)
            run_id = f"run-{next(_IDS)}"
            run = kfp.V2beta1Run(run_id=run_id, display_name=data["display_name"], experiment_id=data["experiment_id"],
                                 runtime_config=kfp.V2beta1RuntimeConfig(
                                     parameters=data.get("runtime_config", {}).get("parameters")),
                                 pipeline_version_reference=data.get("pipeline_version_reference"), state="PENDING")
            self.runs[run_id] = run
            if self.executor:
                self.processes[run_id] = self.executor(run_id, run.runtime_config.parameters)
            return 200, dump(run)
        if path == "/apis/v2beta1/runs" and method == "GET":
            runs = [r for r in list(self.runs.values())[::-1]
                    if not query.get("experiment_id") or r.experiment_id == query["experiment_id"]]
            page, token = self._page(runs, query)
            return 200, dump(kfp.V2beta1ListRunsResponse(runs=page, next_page_token=token, total_size=len(runs)))
        if m := re.fullmatch(r"/apis/v2beta1/runs/([^/:]+):terminate", path):
            run = self.runs.get(m.group(1))
            if run is not None and run.state in ("SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"):
                return 400, json.dumps({"error": f"run {run.run_id} is already {run.state}", "code": 9}).encode()
            self.terminated.append(m.group(1))
            self.states[m.group(1)] = ["CANCELED"]
            return 200, b"{}"
        if m := re.fullmatch(r"/apis/v2beta1/runs/([^/:]+)", path):
            run = self.runs.get(m.group(1))
            if run is None:
                return 404, b'{"error": "run not found", "code": 5}'
            run.state = self._run_state(run.run_id)
            run.error = kfp.GoogleRpcStatus(code=2, message="step train failed") if run.state == "FAILED" else None
            return 200, dump(run)
        return 404, json.dumps({"error": f"no route {method} {path}"}).encode()

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self, method: str) -> None:
                parsed = urllib.parse.urlparse(self.path)
                query = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query).items()}
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if fake.delay:
                    time.sleep(fake.delay)
                with fake.lock:
                    status, payload = fake.route(method, parsed.path, query, body, self.headers)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self):  # noqa: N802
                self._serve("GET")

            def do_POST(self):  # noqa: N802
                self._serve("POST")

            def log_message(self, *args):
                pass

        return Handler
