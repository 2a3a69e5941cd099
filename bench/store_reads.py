"""Small S3 reads through the artifact store against a bare boto3 loop, in the same run.

The registry's records, the Models view's pages and an image-folder dataset on S3 are many small objects: what the
store adds to each read (parsing and checking the URI, the bounded read, the client) is what they pay. A real S3
endpoint (moto's server on 127.0.0.1) holds OBJECTS objects of SIZE bytes; the bare loop reads them with one boto3
client (``get_object`` + ``read``), the store with ``artifacts.read_bytes``, then ``artifacts.exists`` against
``head_object``; rounds interleaved, medians. Goal: the store at >= 0.9x of the bare loop's reads/s.

    .venv/bin/python bench/store_reads.py      (env: BENCH_OBJECTS (300), BENCH_SIZE (1024), BENCH_ROUNDS (3))
"""

from __future__ import annotations

import logging
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "images" / "steps" / "src"))

OBJECTS = int(os.environ.get("BENCH_OBJECTS", "300"))
SIZE = int(os.environ.get("BENCH_SIZE", "1024"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
BUCKET = "bench-store-reads"


def per_second(read, keys) -> float:
    began = time.perf_counter()
    for key in keys:
        read(key)
    return len(keys) / (time.perf_counter() - began)


def main() -> None:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the server's line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
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
            b, s = statistics.median(figures["bare"]), statistics.median(figures["store"])
            print(f"{name:<10}{s:>10.0f}{b:>15.0f}{s / b:>7.2f}x")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
