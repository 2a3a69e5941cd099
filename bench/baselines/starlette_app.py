"""A minimal Starlette ``/predict`` doing the same parse, decode and inference: the bare-ASGI yardstick.

``MODEL_DIR=... uvicorn bench.baselines.starlette_app:app --port PORT --workers 1``.
"""

from __future__ import annotations

import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from retrain_steps.input_spec import decode_upload, prepare
from retrain_steps.models import load_predictor, read_model_info

FOLDER = Path(os.environ["MODEL_DIR"])
FRAMEWORK, SPEC = read_model_info(FOLDER)
PREDICT = load_predictor(FOLDER, FRAMEWORK, SPEC)


def infer(data: bytes) -> dict:
    probabilities = PREDICT(prepare(decode_upload(data, SPEC), SPEC))[0]
    return {"prediction": int(probabilities.argmax()), "probabilities": probabilities.tolist()}


async def predict(request):
    form = await request.form()
    data = await form["file"].read()
    return JSONResponse(await run_in_threadpool(infer, data))


async def ready(request):
    return PlainTextResponse("ok")


app = Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/readyz", ready)])
