"""docker-compose.yaml validates with the real Compose v2 binary (`docker compose config`, offline)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import ROOT


def compose(*args: str, env: dict) -> subprocess.CompletedProcess:
    binary = shutil.which("docker-compose") or str(Path(sys.executable).parent / "docker-compose")
    return subprocess.run([binary, "-f", str(ROOT / "docker-compose.yaml"), *args], cwd=ROOT, capture_output=True,
                          text=True, env=env)


def example_env() -> dict:
    values = dict(line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines()
                  if line and not line.startswith("#"))
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **values}


def test_compose_config_is_valid():
    result = compose("config", env=example_env())
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    services = config["services"]
    assert set(services) >= {"postgres", "minio", "minio-init", "airflow-init", "airflow-apiserver",
                             "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "model-server"}
    scheduler = services["airflow-scheduler"]["environment"]
    assert scheduler["RETRAIN_ARTIFACT_STORE"] == "s3://artifacts"
    assert '"endpoint_url": "http://minio:9000"' in scheduler["AIRFLOW_CONN_ARTIFACT_STORE"]
    assert "mc mb --ignore-existing local/artifacts" in " ".join(services["minio-init"]["command"])
    assert services["model-server"]["environment"]["DIGITS_REGISTRY_URI"] == "s3://artifacts/registry"


def test_compose_refuses_to_run_without_secrets():
    result = compose("config", env={"PATH": os.environ["PATH"], "HOME": "/tmp"})
    assert "is missing a value: set" in result.stderr and "in .env" in result.stderr
    assert result.stdout.strip() == "", "no configuration may be produced without the secrets"


def test_no_secret_values_in_the_compose_file():
    text = (ROOT / "docker-compose.yaml").read_text()
    for key in ("POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD", "AIRFLOW_JWT_SECRET"):
        assert f"${{{key}:?" in text
