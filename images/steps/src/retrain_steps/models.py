"""Model definitions and the framework-neutral predictor used by ``evaluate`` and serving.

A trained model is a folder with ``model.json`` (``framework``, ``file``, ``input_spec``: see
:mod:`retrain_steps.input_spec`; ``architecture``: ``cnn``, the CNN family whose layers the spec decides
(:func:`conv_stages`), or a standard architecture of :mod:`retrain_steps.architectures`; absent in models trained
before architectures existed: ``cnn``) and the weights: ``model.pt`` (a torch ``state_dict`` of
:func:`torch_model`, loaded with ``weights_only=True``) or ``model.keras`` (Keras 3, the CNN only; served on
Keras' torch backend, so the serving image needs no TensorFlow). torch and keras are imported only inside the
functions that use them, torchvision only for a standard architecture.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from retrain_steps import architectures, layout
from retrain_steps.input_spec import DIGITS, InputSpec, spec_of_model

FRAMEWORKS = ("torch", "tensorflow")
MODEL_FILES = layout.WEIGHTS
DEVICES = ("auto", "cpu", "cuda")
log = logging.getLogger(__name__)

Predictor = Callable[[np.ndarray], np.ndarray]


def conv_stages(spec: InputSpec) -> list[list[int]]:
    """The CNN family: output channels of each stage's 3x3 convolutions; a 2x2 max-pool ends each stage.

    One stage (32, 64) for 8x8 inputs (the digits CNN); one more stage per halving while the
    side is still 8 or more after pooling: 28x28 → 2 stages, 32x32 → 3, 64x64 → 4.
    """
    stages, side = [[32, 64]], min(spec.height, spec.width) // 2
    while side >= 8:
        stages.append([min(64 * 2 ** (len(stages) - 1) * 2, 256)])
        side //= 2
    return stages


def flat_features(spec: InputSpec) -> int:
    height, width = spec.height, spec.width
    for _ in conv_stages(spec):
        height, width = height // 2, width // 2
    return conv_stages(spec)[-1][-1] * height * width


def torch_cnn(spec: InputSpec = DIGITS):
    """The CNN for ``spec``: conv stages, max-pool after each, dropout, two dense layers.

    For the digits spec the layers (and their ``state_dict`` keys) are those of every digits
    model trained before specs existed.
    """
    from torch import nn

    layers, channels = [], spec.channels
    for stage in conv_stages(spec):
        for width in stage:
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU()]
            channels = width
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(
        *layers,
        nn.Dropout(0.25),
        nn.Flatten(),
        nn.Linear(flat_features(spec), 128),
        nn.ReLU(),
        nn.Dropout(0.25),
        nn.Linear(128, len(spec.class_names)),
    )


def torch_model(architecture: str, spec: InputSpec = DIGITS, stem: str = architectures.IMAGENET_STEM):
    """The untrained torch model of ``architecture`` (``cnn`` or a standard one, with ``stem``) for ``spec``."""
    if architecture == architectures.CNN:
        return torch_cnn(spec)
    return architectures.build(architecture, spec.channels, spec.height, spec.width, len(spec.class_names), stem)


def architecture_of(info: dict) -> str:
    """The architecture a ``model.json`` records; ``cnn`` for every model from before architectures."""
    return info.get("architecture") or architectures.CNN


def stem_of(info: dict) -> str:
    """The stem a ``model.json`` records; the ImageNet stem for every model from before small-input stems."""
    return info.get("stem") or architectures.IMAGENET_STEM


def architecture_of_state(state: dict, spec: InputSpec) -> tuple[str, str]:
    """``(architecture, stem)`` (for ``spec``) whose ``state_dict`` has ``state``'s names and shapes: the CNN when
    none does (its load then names the mismatch). Standard architectures are built on torch's meta device (no
    memory, no initialisation), and only when the weights are not a CNN's. Shapes tell the ResNets' stems apart;
    MobileNetV3's and EfficientNet's differ in stride alone, so for them the stem from-scratch training picks."""
    import torch

    def shapes(module) -> dict:
        return {k: tuple(v.shape) for k, v in module.state_dict().items()}

    wanted = {k: tuple(v.shape) for k, v in state.items()}
    imagenet = architectures.IMAGENET_STEM
    with torch.device("meta"):
        if shapes(torch_cnn(spec)) == wanted:
            return architectures.CNN, imagenet
        for name in architectures.ARCHITECTURES:
            if min(spec.height, spec.width) < architectures.MIN_SIDE[name]:
                continue
            # the stem training from scratch picks first: MobileNetV3's and EfficientNet's differ in stride alone
            first = architectures.stem_for(name, spec.height, spec.width)
            stems = (first, *architectures.STEMS) if name in architectures.HAS_SMALL_STEM else (imagenet,)
            for stem in dict.fromkeys(stems):
                if shapes(torch_model(name, spec, stem)) == wanted:
                    return name, stem
    return architectures.CNN, imagenet


def keras_cnn(learning_rate: float, spec: InputSpec = DIGITS):
    """The same architecture in Keras 3 (channels-last input ``(H, W, C)``), compiled."""
    import keras

    layers = [keras.Input((spec.height, spec.width, spec.channels))]
    for stage in conv_stages(spec):
        layers += [keras.layers.Conv2D(width, 3, padding="same", activation="relu") for width in stage]
        layers.append(keras.layers.MaxPooling2D(2))
    model = keras.Sequential(
        [
            *layers,
            keras.layers.Dropout(0.25),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dropout(0.25),
            keras.layers.Dense(len(spec.class_names)),
        ]
    )
    compile_keras(model, learning_rate)
    return model


def compile_keras(model, learning_rate: float) -> None:
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def read_model_info(folder: Path) -> tuple[str, InputSpec]:
    """A model folder's framework and input spec (from ``model.json``)."""
    info = json.loads((folder / layout.MODEL_INFO).read_text())
    return info["framework"], spec_of_model(info)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def resolve_device(requested: str) -> str:
    """``auto`` → ``cuda`` when torch sees a GPU, else ``cpu``; ``cuda`` without a GPU is an error naming it."""
    if requested not in DEVICES:
        raise ValueError(f"unknown device {requested!r}; expected one of {DEVICES}")
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was requested but no CUDA device is available")
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def load_predictor(folder: Path, framework: str, spec: InputSpec = DIGITS, device: str = "cpu") -> Predictor:
    """Load a model folder; return ``f(x: (n, C, H, W) float32 from prepare) -> probabilities (n, classes)``.

    ``device`` (``cpu``, ``cuda``, ``auto``) places a torch model; Keras models follow Keras' own
    device choice (``KERAS_TORCH_DEVICE``). A torch model is built for the architecture and stem its
    ``model.json`` names (:func:`architecture_of`, :func:`stem_of`); in a folder of weights alone (``model.json``
    lost or never copied) the ones whose parameters the weights are, by names and shapes
    (:func:`architecture_of_state`).
    """
    if framework not in FRAMEWORKS:
        raise ValueError(f"unknown framework {framework!r}; expected one of {FRAMEWORKS}")
    path = folder / MODEL_FILES[framework]
    if not path.is_file():
        raise FileNotFoundError(f"model file missing: {path}")
    if framework == "torch":
        import torch

        device = resolve_device(device)
        state = torch.load(path, map_location="cpu", weights_only=True)
        info_path = folder / layout.MODEL_INFO
        if info_path.is_file():
            info = json.loads(info_path.read_text())
            architecture, stem = architecture_of(info), stem_of(info)
        else:
            architecture, stem = architecture_of_state(state, spec)
            log.warning("no %s beside %s: built %s with the %s stem from the weights' names and shapes (a MobileNetV3 "
                        "or EfficientNet stem's stride is not in its weights)", layout.MODEL_INFO, path, architecture,
                        stem)
        module = torch_model(architecture, spec, stem)
        module.load_state_dict(state)
        module.to(device).eval()

        def predict_torch(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                logits = module(torch.from_numpy(np.ascontiguousarray(x, np.float32)).to(device))
                return _softmax(logits.float().cpu().numpy())

        return predict_torch

    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    model = keras.saving.load_model(str(path), compile=False)

    def predict_keras(x: np.ndarray) -> np.ndarray:
        logits = model.predict(np.transpose(x, (0, 2, 3, 1)), verbose=0)
        return _softmax(np.asarray(logits, dtype=np.float32))

    return predict_keras
