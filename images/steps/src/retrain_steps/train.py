"""``train``: fit one candidate CNN (torch, or Keras with ``--framework tensorflow``).

Logs one progress line per epoch (epoch, loss, val accuracy, samples/s). Writes under
``--output``: the model (``model.pt`` or ``model.keras``), ``model.json``, ``metrics.json``
(the best epoch's validation accuracy, whose weights are kept; the torch path's resolved recipe
under ``recipe``), ``curve.png`` and ``ood.json`` (:mod:`retrain_steps.ood`: how unlike the
training images a served image may be).
The torch path's recipe (:mod:`retrain_steps.recipe`): AdamW with weight decay, linear warm-up and
a cosine schedule per step, label smoothing, with defaults from the dataset's size
(``--weight-decay``, ``--warmup-epochs``, ``--label-smoothing`` override them), bf16 and
channels_last on CUDA (``--precision``). The Keras path trains with Adam at a constant rate.
``--device auto`` trains on CUDA when present, else on the CPU. ``--patience N`` stops after N
epochs without a lower validation loss; ``--init-from`` fine-tunes a model folder of the same
framework and shape (a registry version: warm start from production) instead of starting fresh;
``--augment`` shifts training images by up to one pixel.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from retrain_steps import artifacts, layout, manifest, ood, plots, recipe
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


def non_negative_float(text: str) -> float:
    value = float(text)
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def smoothing(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
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
    recipe_flags = parser.add_argument_group("torch recipe", "unset: the default for the dataset's size "
                                             "(retrain_steps.recipe); the Keras path ignores them")
    recipe_flags.add_argument("--weight-decay", type=non_negative_float, default=None,
                              help="AdamW's decoupled weight decay on the weights")
    recipe_flags.add_argument("--warmup-epochs", type=non_negative_float, default=None,
                              help="epochs of linear warm-up before the cosine schedule (below --epochs)")
    recipe_flags.add_argument("--label-smoothing", type=smoothing, default=None,
                              help="label smoothing of the training loss, in [0, 1)")
    recipe_flags.add_argument("--precision", choices=recipe.PRECISIONS, default="auto",
                              help="auto: bf16 autocast and channels_last on a CUDA GPU, fp32 on the CPU")


RECIPE_FLAGS = ("weight_decay", "warmup_epochs", "label_smoothing", "precision")  #: the torch path's recipe flags


class WarmStartError(ValueError):
    """The model to start from does not fit this candidate; the message says why (bad input, exit 2)."""


def shift_by(x: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Each ``(c, h, w)`` image ``x[i]`` moved by ``offsets[i] = (dy, dx)`` in {-1, 0, 1} pixels, zeros shifted
    in (the numpy twin of :func:`retrain_steps.recipe.shift_images`, which the torch path runs on its device)."""
    out = np.zeros_like(x)
    h, w = x.shape[2:]
    for i, (dy, dx) in enumerate(offsets):
        src_y, dst_y = slice(max(0, -dy), h - max(0, dy)), slice(max(0, dy), h - max(0, -dy))
        src_x, dst_x = slice(max(0, -dx), w - max(0, dx)), slice(max(0, dx), w - max(0, -dx))
        out[i, :, dst_y, dst_x] = x[i, :, src_y, src_x]
    return out


def shift_batch(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Augmentation (the Keras path): each image moved by -1, 0 or +1 pixel on each axis at random."""
    return shift_by(x, rng.integers(-1, 2, size=(len(x), 2)))


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


def _train_torch(splits: dict, spec: InputSpec, args: argparse.Namespace, folder: Path) -> tuple[list[dict], dict]:
    import torch

    from retrain_steps.models import torch_cnn

    device = resolve_device(args.device)
    torch.manual_seed(args.seed)
    recipe.make_deterministic(device)
    log.info("train: torch %s on %s", torch.__version__, device)
    plan = torch_recipe(args, len(splits["y_train"]), device)
    log.info("train: recipe %s", ", ".join(f"{k} {v}" for k, v in plan.to_dict().items()))
    model = torch_cnn(spec)
    if initial := fetch_initial_model(args, spec, folder / "init"):
        try:
            model.load_state_dict(torch.load(initial, map_location="cpu", weights_only=True))
        except RuntimeError as err:
            raise WarmStartError(f"the model at {args.init_from} does not fit this candidate: "
                                 f"{str(err).splitlines()[0]}") from None
        log.info("train: warm start from %s", args.init_from)
    trainer = recipe.Trainer(model, plan, device, args.seed, augment=args.augment)
    x_train, x_val = (trainer.to_device(torch.from_numpy(splits[name])) for name in ("x_train", "x_val"))
    y_train, y_val = (torch.from_numpy(splits[name]).to(device) for name in ("y_train", "y_val"))
    history, best_state, best_acc = [], None, -1.0
    for epoch in range(1, args.epochs + 1):
        figures = trainer.epoch(x_train, y_train, x_val, y_val)
        history.append(_epoch_line(epoch, args.epochs, figures["loss"], figures["val_loss"],
                                   figures["val_accuracy"], figures["samples_per_s"]))
        if figures["val_accuracy"] > best_acc:
            best_acc, best_state = figures["val_accuracy"], trainer.state()
        if should_stop(history, args.patience):
            log.info("train: early stop after epoch %d (no lower val_loss for %d epochs)", epoch, args.patience)
            break
    torch.save(recipe.cpu_state(best_state), folder / MODEL_FILES["torch"])
    return history, plan.to_dict()


def torch_recipe(args: argparse.Namespace, n_train: int, device: str) -> recipe.Recipe:
    """The run's resolved recipe (:func:`retrain_steps.recipe.plan`) from the command line and the data's size."""
    return recipe.plan(n_train, args.epochs, args.batch_size, args.learning_rate,
                       precision=recipe.resolve_precision(args.precision, device), weight_decay=args.weight_decay,
                       label_smoothing=args.label_smoothing, warmup_epochs=args.warmup_epochs)


def keras_backend() -> str:
    """``KERAS_BACKEND`` when set (the CUDA train image sets ``torch``), else TensorFlow if installed, else torch."""
    import importlib.util

    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    return "tensorflow" if importlib.util.find_spec("tensorflow") else "torch"


def _train_keras(splits: dict, spec: InputSpec, args: argparse.Namespace, folder: Path) -> tuple[list[dict], None]:
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
    return history, None


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
        **({"recipe": {name: getattr(args, name) for name in RECIPE_FLAGS}} if args.framework == "torch" else {}),
    )
    if done := manifest.up_to_date(args.output, key):
        log.info("train: %s is up to date", args.output)
        return done
    raw = load_splits(args.input, spec, splits_raw)
    splits = {name: prepare(x, spec) if name.startswith("x_") else x for name, x in raw.items()}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        trainer = _train_torch if args.framework == "torch" else _train_keras
        history, recipe_used = trainer(splits, spec, args, folder)
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
        if recipe_used:
            metrics["recipe"] = recipe_used
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
