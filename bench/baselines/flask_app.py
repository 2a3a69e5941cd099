"""The seed tutorial's Flask ``/predict``, as it shipped: dev server, one thread, upload saved to a file.

Same model and preprocessing as our server (``MODEL_DIR``: a model folder), so the benchmark
compares the serving stacks only. ``python bench/baselines/flask_app.py PORT``.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from flask import Flask, jsonify, request

from retrain_steps.input_spec import decode_upload, prepare
from retrain_steps.models import load_predictor, read_model_info

FOLDER = Path(os.environ["MODEL_DIR"])
FRAMEWORK, SPEC = read_model_info(FOLDER)
PREDICT = load_predictor(FOLDER, FRAMEWORK, SPEC)
app = Flask(__name__)


@app.post("/predict")
def predict():
    upload = request.files["file"]
    with tempfile.NamedTemporaryFile(suffix=".png") as saved:  # the seed saved every upload to disk
        upload.save(saved.name)
        data = Path(saved.name).read_bytes()
    probabilities = PREDICT(prepare(decode_upload(data, SPEC), SPEC))[0]
    return jsonify({"prediction": int(probabilities.argmax()), "probabilities": probabilities.tolist()})


@app.get("/readyz")
def ready():
    return "ok"


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[1]), threaded=False)
