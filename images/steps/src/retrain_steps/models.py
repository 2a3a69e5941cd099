"""Model definitions and the framework-neutral predictor used by ``evaluate`` and serving.

A trained model is a folder with ``model.json`` (``framework``, ``file``) and the weights:
``model.pt`` (a torch ``state_dict`` of :func:`torch_cnn`, loaded with ``weights_only=True``) or
``model.keras`` (Keras 3; served on Keras' torch backend, so the serving image needs no
TensorFlow). torch and keras are imported only inside the functions that use them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from retrain_steps.features import N_CLASSES, SIDE

FRAMEWORKS = ("torch", "tensorflow")
MODEL_FILES = {"torch": "model.pt", "tensorflow": "model.keras"}

Predictor = Callable[[np.ndarray], np.ndarray]


def torch_cnn():
    """The CNN for 8x8 digits: two 3x3 conv layers, max-pool, dropout, two dense layers."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Dropout(0.25),
        nn.Flatten(),
        nn.Linear(64 * (SIDE // 2) ** 2, 128),
        nn.ReLU(),
        nn.Dropout(0.25),
        nn.Linear(128, N_CLASSES),
    )


def keras_cnn(learning_rate: float):
    """The same architecture in Keras 3 (channels-last input ``(8, 8, 1)``), compiled."""
    import keras

    model = keras.Sequential(
        [
            keras.Input((SIDE, SIDE, 1)),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Dropout(0.25),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dropout(0.25),
            keras.layers.Dense(N_CLASSES),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def load_predictor(folder: Path, framework: str) -> Predictor:
    """Load a model folder; return ``f(x: (n, 1, 8, 8) float32) -> probabilities (n, 10)``."""
    if framework not in FRAMEWORKS:
        raise ValueError(f"unknown framework {framework!r}; expected one of {FRAMEWORKS}")
    path = folder / MODEL_FILES[framework]
    if not path.is_file():
        raise FileNotFoundError(f"model file missing: {path}")
    if framework == "torch":
        import torch

        module = torch_cnn()
        module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        module.eval()

        def predict_torch(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return _softmax(module(torch.from_numpy(np.ascontiguousarray(x, np.float32))).numpy())

        return predict_torch

    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    model = keras.saving.load_model(str(path), compile=False)

    def predict_keras(x: np.ndarray) -> np.ndarray:
        logits = model.predict(np.transpose(x, (0, 2, 3, 1)), verbose=0)
        return _softmax(np.asarray(logits, dtype=np.float32))

    return predict_keras
