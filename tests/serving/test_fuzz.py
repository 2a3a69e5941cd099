"""Schemathesis over the server's own OpenAPI document: no 5xx, every /predict 4xx a JSON {"error": ...}."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.serving.test_service_http import SAMPLE


def test_no_request_from_the_schema_breaks_the_server(server):
    """Every operation of ``/docs.json``, 150 generated requests each (schemathesis' strategies driven
    by Hypothesis directly: its pytest plugin does not support pytest 9 yet)."""
    from hypothesis import given

    schema = schemathesis.openapi.from_url(f"{server}/docs.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert any(op.path == "/predict" for op in operations)
    failures, statuses = [], {}

    for operation in operations:

        @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy())
        def check(case):
            response = case.call(base_url=server, timeout=30)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code >= 500:
                failures.append((case.path, case.body, response.text[:300]))
            elif case.path == "/predict" and response.status_code >= 400:
                body = response.json()
                assert set(body) == {"error"} and "object at 0x" not in body["error"], body

        check()
    print(f"fuzz: responses by status {dict(sorted(statuses.items()))}")
    assert not failures, failures[:5]


@pytest.mark.parametrize("depth", [1_000, 5_000, 100_000])
def test_deeply_nested_json_is_a_400(server, depth):
    """``{"instances": [[[...]]]}`` past the JSON decoder's depth limit, as a body and as a multipart field."""
    nested = b"[" * depth + b"]" * depth
    as_body = httpx.post(f"{server}/predict", content=b'{"instances": ' + nested + b"}",
                         headers={"content-type": "application/json"}, timeout=30)
    as_field = httpx.post(f"{server}/predict", files={"instances": ("i.json", nested)}, timeout=30)
    for response in (as_body, as_field):
        assert response.status_code == 400, response.text
        assert response.json() == {"error": "Invalid JSON: nested too deeply"}


def test_the_server_is_ready_and_quiet_after_the_fuzz(server, server_log):
    assert httpx.get(f"{server}/readyz").status_code == 200
    answer = httpx.post(f"{server}/predict", files={"file": ("d.png", SAMPLE.read_bytes())}, timeout=30)
    assert answer.status_code == 200
    assert "Traceback" not in server_log.read_text(), "bad requests are answered, not logged as crashes"
