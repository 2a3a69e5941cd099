"""Bare forward pass of the registered model (load_predictor, as the server calls it): cpu vs FAST_DEVICE, ms per call."""
import json, os, sys, time
from pathlib import Path
import numpy as np
from retrain_steps.models import load_predictor, read_model_info
from retrain_steps.input_spec import from_instances, prepare

folder = next(Path("/tmp/gpu-store/registry/versions").iterdir())
framework, spec = read_model_info(folder)
inst = json.loads(Path(".gpu/instances.json").read_text())["instances"]
rows = prepare(from_instances(inst, spec), spec)
out = {}
for device in ("cpu", os.environ.get("FAST_DEVICE", "cuda")):
    predict = load_predictor(folder, framework, spec, device)
    for n in (1, 8, 64, 1024):
        x = np.concatenate([rows] * (n // len(rows) + 1))[:n]
        for _ in range(3):
            predict(x)
        reps, t = 0, time.perf_counter()
        while reps < 3 or (time.perf_counter() - t < 0.5 and reps < 500):
            predict(x)
            reps += 1
        ms = (time.perf_counter() - t) / reps * 1e3
        out[(device, n)] = ms
        print(f"bare forward {device:4} batch {n:5d}: {ms:7.3f} ms/call, {n / ms * 1e3:10.0f} rows/s", flush=True)
    out[(device, "p")] = predict(rows)
print("bare max |dp| cpu vs fast on 200 rows:", float(np.abs(out[("cpu", "p")] - out[(os.environ.get("FAST_DEVICE", "cuda"), "p")]).max()))
