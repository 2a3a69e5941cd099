"""Small S3 reads through the artifact store against a bare boto3 loop, in the same run.

The registry's records, the Models view's pages and an image-folder dataset on S3 are many small objects: what the
store adds to each read (parsing and checking the URI, the bounded read, the client) is what they pay. A real S3
endpoint (moto's server on 127.0.0.1, in a process of its own as a store is) holds OBJECTS objects of SIZE bytes;
the bare loop reads them with one boto3 client (``get_object`` + ``read``), the store with ``artifacts.read_bytes``,
then ``artifacts.exists`` against ``head_object``; rounds interleaved, medians. Goal: the store at >= 0.9x of the
bare loop's reads/s. Then a registry of RECORDS run records, RECORDS version cards and RECORDS // 2 promotions,
read as the Models view reads it (``registry.runs``, ``versions``, ``promotions``), against the bare loop listing
and reading the same objects one after another: the registry reads them up to ``registry.READ_CONCURRENCY`` at
once.

    .venv/bin/python bench/store_reads.py
    env: BENCH_OBJECTS (300), BENCH_SIZE (1024), BENCH_RECORDS (100), BENCH_ROUNDS (3)
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "images" / "steps" / "src"))

from tests.helpers.servers import free_port, serve  # noqa: E402

OBJECTS = int(os.environ.get("BENCH_OBJECTS", "300"))
SIZE = int(os.environ.get("BENCH_SIZE", "1024"))
RECORDS = int(os.environ.get("BENCH_RECORDS", "100"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
BUCKET = "bench-store-reads"


def print_row(name: str, figures: dict[str, list[float]], note: str = "") -> None:
    """One table row: the medians of the store's and the bare loop's figures and their ratio."""
    bare, store = statistics.median(figures["bare"]), statistics.median(figures["store"])
    print(f"{name:<10}{store:>10.0f}{bare:>15.0f}{store / bare:>7.2f}x{note}")


def per_second(read, keys) -> float:
    began = time.perf_counter()
    for key in keys:
        read(key)
    return len(keys) / (time.perf_counter() - began)


def registry_reads(client) -> None:
    """The registry's three listings read by :mod:`retrain_steps.registry` against a bare loop over the same keys."""
    from retrain_steps import registry

    reg = f"s3://{BUCKET}/registry"
    versions = [f"{k:012x}" for k in range(RECORDS)]
    for k, version in enumerate(versions):
        registry.write_card(reg, {"version": version, "created_at": f"2026-01-01T00:00:{k % 60:02d}+00:00"})
        registry.record_run(reg, f"run-{k}", {"recorded_at": f"2026-01-01T00:00:{k % 60:02d}+00:00"})
    for previous, version in zip([None, *versions], versions[: RECORDS // 2]):
        registry.promote(reg, version, expected=previous)

    def bare() -> int:
        keys = []
        for prefix in ("registry/versions/", "registry/models/digits/runs/", "registry/models/digits/promotions/"):
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
                keys += [item["Key"] for item in page.get("Contents", []) if item["Key"].endswith(".json")]
        for key in keys:
            client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        return len(keys)

    def store() -> int:
        return len(registry.runs(reg)) + len(registry.versions(reg)) + len(registry.promotions(reg))

    figures = {"bare": [], "store": []}
    for _ in range(ROUNDS):
        for name, read in (("bare", bare), ("store", store)):
            began = time.perf_counter()
            count = read()
            figures[name].append(count / (time.perf_counter() - began))
    print_row("registry", figures, f"   ({count} records: runs, cards, promotions; up to {registry.READ_CONCURRENCY} "
                                   "at once vs one by one)")


def main() -> None:
    host, port = "127.0.0.1", free_port()
    moto = [str(Path(sys.executable).parent / "moto_server"), "-H", host, "-p", str(port)]
    with tempfile.TemporaryDirectory() as tmp, serve(moto, ready_url=f"http://{host}:{port}/moto-api/", env={},
                                                     cwd=tmp, log_path=Path(tmp) / "moto.log"):
        os.environ.update(AWS_ENDPOINT_URL_S3=f"http://{host}:{port}", AWS_ACCESS_KEY_ID="bench",
                          AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
        import boto3

        from retrain_steps import artifacts

        client = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL_S3"])
        client.create_bucket(Bucket=BUCKET)
        keys = [f"records/{k:05d}.json" for k in range(OBJECTS)]
        for key in keys:
            client.put_object(Bucket=BUCKET, Key=key, Body=os.urandom(SIZE))
        pairs = {
            "read": (lambda key: client.get_object(Bucket=BUCKET, Key=key)["Body"].read(),
                     lambda key: artifacts.read_bytes(f"s3://{BUCKET}/{key}")),
            "exists": (lambda key: client.head_object(Bucket=BUCKET, Key=key),
                       lambda key: artifacts.exists(f"s3://{BUCKET}/{key}")),
        }
        print(f"moto server on 127.0.0.1, {OBJECTS} objects of {SIZE} bytes, {ROUNDS} interleaved rounds, medians")
        print(f"{'operation':<10}{'store /s':>10}{'bare boto3 /s':>15}{'ratio':>8}   (goal >= 0.9x)")
        for name, (bare, store) in pairs.items():
            bare(keys[0]), store(keys[0])  # warm: connections, the store's client
            figures = {"bare": [], "store": []}
            for _ in range(ROUNDS):
                figures["bare"].append(per_second(bare, keys))
                figures["store"].append(per_second(store, keys))
            print_row(name, figures)
        registry_reads(client)


if __name__ == "__main__":
    main()
