"""``train``: fit one candidate CNN (torch, or Keras with ``--framework tensorflow``).

Logs one progress line per epoch (epoch, loss, val accuracy, samples/s). Writes under
``--output``: the model (``model.pt`` or ``model.keras``), ``model.json``, ``metrics.json``
(the best epoch's validation accuracy, whose weights are kept), ``curve.png`` and ``ood.json``
(:mod:`retrain_steps.ood`: how unlike the training images a served image may be).
``--device auto`` trains on CUDA when present, else on the CPU. ``--patience N`` stops after N
epochs without a lower validation loss; ``--init-from`` fine-tunes a model folder of the same
framework and shape (a registry version: warm start from production) instead of starting fresh;
``--augment`` shifts training images by up to one pixel.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from retrain_steps import artifacts, layout, manifest, ood, plots
from retrain_steps.input_spec import InputSpec, prepare, spec_of_model
from retrain_steps.models import DEVICES, FRAMEWORKS, MODEL_FILES, resolve_device
from retrain_steps.preprocess import load_spec, load_splits

log = logging.getLogger(__name__)


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, help="preprocess output folder URI")
    parser.add_argument("--output", required=True, help="output folder URI")
    parser.add_argument("--framework", choices=FRAMEWORKS, default="torch")
    parser.add_argument("--learning-rate", type=positive_float, default=1e-3)
    parser.add_argument("--epochs", type=positive_int, default=20)
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=DEVICES, default="auto")
    parser.add_argument("--patience", type=int, default=0,
                        help="stop after this many epochs without a lower validation loss (0: train every epoch)")
    parser.add_argument("--init-from", default=None, help="model folder URI to fine-tune (warm start)")
    parser.add_argument("--augment", action="store_true",
                        help="shift each training image by up to one pixel at random (both frameworks)")


class WarmStartError(ValueError):
    """The model to start from does not fit this candidate; the message says why (bad input, exit 2)."""


def shift_batch(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Augmentation: each ``(c, h, w)`` image moved by -1, 0 or +1 pixel on each axis, zeros shifted in."""
    out = np.zeros_like(x)
    h, w = x.shape[2:]
    for i, (dy, dx) in enumerate(rng.integers(-1, 2, size=(len(x), 2))):
        src_y, dst_y = slice(max(0, -dy), h - max(0, dy)), slice(max(0, dy), h - max(0, -dy))
        src_x, dst_x = slice(max(0, -dx), w - max(0, dx)), slice(max(0, dx), w - max(0, -dx))
        out[i, :, dst_y, dst_x] = x[i, :, src_y, src_x]
    return out


def should_stop(history: list[dict], patience: int) -> bool:
    """Early stopping: the last ``patience`` epochs did not lower the best validation loss before them."""
    if patience <= 0 or len(history) <= patience:
        return False
    best_before = min(h["val_loss"] for h in history[:-patience])
    return min(h["val_loss"] for h in history[-patience:]) >= best_before


def fetch_initial_model(args: argparse.Namespace, spec: InputSpec, folder: Path) -> Path | None:
    """Copy the ``--init-from`` model into ``folder`` (verified); refuse another framework, input or classes."""
    if not args.init_from:
        return None
    from retrain_steps.evaluate import fetch_model, model_fingerprint

    folder.mkdir(parents=True, exist_ok=True)
    info = fetch_model(args.init_from, folder, model_fingerprint(args.init_from))
    framework = info["framework"]
    if framework != args.framework:
        raise WarmStartError(f"cannot warm-start a {args.framework} candidate from the {framework} model "
                             f"at {args.init_from}; choose the framework {framework} or turn warm start off")
    if reason := spec.compatible(spec_of_model(info)):
        raise WarmStartError(f"cannot warm-start from the model at {args.init_from}: {reason}; "
                             "turn warm start off to train from scratch")
    return folder / MODEL_FILES[framework]


def _train_torch(splits: dict, spec: InputSpec, args: argparse.Namespace, folder: Path) -> list[dict]:
    import torch
    from torch import nn

    from retrain_steps.models import torch_cnn

    device = resolve_device(args.device)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    log.info("train: torch %s on %s", torch.__version__, device)
    model = torch_cnn(spec)
    if initial := fetch_initial_model(args, spec, folder / "init"):
        try:
            model.load_state_dict(torch.load(initial, map_location="cpu", weights_only=True))
        except RuntimeError as err:
            raise WarmStartError(f"the model at {args.init_from} does not fit this candidate: "
                                 f"{str(err).splitlines()[0]}") from None
        log.info("train: warm start from %s", args.init_from)
    model = model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate)
    loss_fn = nn.CrossEntropyLoss()
    x_train = torch.from_numpy(splits["x_train"]).to(device)
    y_train = torch.from_numpy(splits["y_train"]).to(device)
    x_val = torch.from_numpy(splits["x_val"]).to(device)
    y_val = torch.from_numpy(splits["y_val"]).to(device)
    generator = torch.Generator().manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    history, best_state, best_acc = [], None, -1.0
    for epoch in range(1, args.epochs + 1):
        model.train()
        start, total = time.perf_counter(), 0.0
        order = torch.randperm(len(x_train), generator=generator).to(device)
        for begin in range(0, len(order), args.batch_size):
            idx = order[begin : begin + args.batch_size]
            batch = x_train[idx]
            if args.augment:
                batch = torch.from_numpy(shift_batch(batch.cpu().numpy(), rng)).to(device)
            optimizer.zero_grad()
            loss = loss_fn(model(batch), y_train[idx])
            loss.backward()
            optimizer.step()
            total += float(loss) * len(idx)
        if device == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        model.eval()
        with torch.inference_mode():
            val_logits = model(x_val)
            val_loss = float(loss_fn(val_logits, y_val))
            val_acc = float((val_logits.argmax(1) == y_val).float().mean())
        history.append(_epoch_line(epoch, args.epochs, total / len(order), val_loss, val_acc, len(order) / elapsed))
        if val_acc > best_acc:
            best_acc, best_state = val_acc, {k: v.detach().clone() for k, v in model.state_dict().items()}
        if should_stop(history, args.patience):
            log.info("train: early stop after epoch %d (no lower val_loss for %d epochs)", epoch, args.patience)
            break
    torch.save({k: v.to("cpu") for k, v in best_state.items()}, folder / MODEL_FILES["torch"])
    return history


def keras_backend() -> str:
    """``KERAS_BACKEND`` when set (the CUDA train image sets ``torch``), else TensorFlow if installed, else torch."""
    import importlib.util

    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    return "tensorflow" if importlib.util.find_spec("tensorflow") else "torch"


def _train_keras(splits: dict, spec: InputSpec, args: argparse.Namespace, folder: Path) -> list[dict]:
    backend = os.environ["KERAS_BACKEND"] = keras_backend()
    if backend == "torch":  # Keras places every tensor on this torch device: the GPU when there is one
        os.environ["KERAS_TORCH_DEVICE"] = resolve_device(args.device)
    import keras

    from retrain_steps.models import compile_keras, keras_cnn

    keras.utils.set_random_seed(args.seed)
    log.info("train: keras %s on the %s backend (%s)", keras.__version__, keras.backend.backend(),
             os.environ.get("KERAS_TORCH_DEVICE", "its default device"))
    if initial := fetch_initial_model(args, spec, folder / "init"):
        model = keras.saving.load_model(str(initial), compile=False)
        expected = (spec.height, spec.width, spec.channels)
        if tuple(model.input_shape[1:]) != expected or model.output_shape[-1] != len(spec.class_names):
            raise WarmStartError(f"the model at {args.init_from} does not fit this candidate: input "
                                 f"{model.input_shape[1:]}, {model.output_shape[-1]} classes")
        compile_keras(model, args.learning_rate)
        log.info("train: warm start from %s", args.init_from)
    else:
        model = keras_cnn(args.learning_rate, spec)
    x_train = np.transpose(splits["x_train"], (0, 2, 3, 1))
    x_val = np.transpose(splits["x_val"], (0, 2, 3, 1))
    rng = np.random.default_rng(args.seed)
    history, best_weights, best_acc = [], None, -1.0
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        inputs = np.transpose(shift_batch(splits["x_train"], rng), (0, 2, 3, 1)) if args.augment else x_train
        fit = model.fit(inputs, splits["y_train"], batch_size=args.batch_size, epochs=1, verbose=0, shuffle=True)
        elapsed = time.perf_counter() - start
        val_loss, val_acc = model.evaluate(x_val, splits["y_val"], verbose=0)
        history.append(
            _epoch_line(epoch, args.epochs, fit.history["loss"][0], val_loss, val_acc, len(x_train) / elapsed)
        )
        if val_acc > best_acc:
            best_acc, best_weights = val_acc, model.get_weights()
        if should_stop(history, args.patience):
            log.info("train: early stop after epoch %d (no lower val_loss for %d epochs)", epoch, args.patience)
            break
    model.set_weights(best_weights)
    model.save(folder / MODEL_FILES["tensorflow"])
    return history


def _epoch_line(epoch: int, epochs: int, loss: float, val_loss: float, val_acc: float, rate: float) -> dict:
    log.info(
        "epoch %d/%d loss %.4f val_loss %.4f val_accuracy %.4f samples/s %.0f",
        epoch, epochs, loss, val_loss, val_acc, rate,
    )
    return {"epoch": epoch, "loss": float(loss), "val_loss": float(val_loss), "val_accuracy": float(val_acc),
            "samples_per_s": float(rate)}


def _init_fingerprint(init_from: str | None) -> dict | None:
    if not init_from:
        return None
    from retrain_steps.evaluate import model_fingerprint

    return model_fingerprint(init_from)


def run(args: argparse.Namespace) -> dict:
    splits_raw = manifest.read_verified(args.input, layout.SPLITS)
    spec = load_spec(args.input)
    key = manifest.input_key(
        "train",
        splits=artifacts.sha256(splits_raw),
        spec=spec.to_dict(),
        framework=args.framework,
        learning_rate=args.learning_rate,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        patience=args.patience,
        init_from=_init_fingerprint(args.init_from),
        augment=args.augment,
    )
    if done := manifest.up_to_date(args.output, key):
        log.info("train: %s is up to date", args.output)
        return done
    raw = load_splits(args.input, spec, splits_raw)
    splits = {name: prepare(x, spec) if name.startswith("x_") else x for name, x in raw.items()}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        trainer = _train_torch if args.framework == "torch" else _train_keras
        history = trainer(splits, spec, args, folder)
        best = max(history, key=lambda h: h["val_accuracy"])
        metrics: layout.TrainMetrics = {
            "framework": args.framework,
            "learning_rate": args.learning_rate,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "seed": args.seed,
            "best_epoch": best["epoch"],
            "epochs_run": len(history),
            "patience": args.patience,
            "augment": args.augment,
            "warm_start_from": args.init_from,
            "val_accuracy": best["val_accuracy"],
            "val_loss": best["val_loss"],
            "samples_per_s": float(np.median([h["samples_per_s"] for h in history])),
            "history": history,
        }
        model_file = MODEL_FILES[args.framework]
        outputs = {
            model_file: artifacts.write_bytes(
                layout.file_in(args.output, model_file), (folder / model_file).read_bytes()
            ),
            layout.MODEL_INFO: artifacts.write_json(
                layout.file_in(args.output, layout.MODEL_INFO),
                {"framework": args.framework, "file": model_file, "input_spec": spec.to_dict()},
            ),
            layout.METRICS: artifacts.write_json(layout.file_in(args.output, layout.METRICS), metrics),
            layout.OOD_STATS: artifacts.write_json(layout.file_in(args.output, layout.OOD_STATS),
                                                   ood.fit(splits["x_train"], splits["x_val"])),
            layout.CURVE_PLOT: artifacts.write_bytes(
                layout.file_in(args.output, layout.CURVE_PLOT), plots.training_curve(history)
            ),
        }
    log.info("train: best epoch %d, val_accuracy %.4f", best["epoch"], best["val_accuracy"])
    return manifest.write(args.output, "train", key, outputs, metrics={k: v for k, v in metrics.items() if k != "history"})
