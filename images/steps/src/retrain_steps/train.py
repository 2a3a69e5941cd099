"""``train``: fit one candidate model (torch, or Keras with ``--framework tensorflow``).

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
``--augment`` augments the training images on the device (:mod:`retrain_steps.augmentation`: the CNN's
one-pixel shift; random resized crops (whole-pixel shifts below 64 pixels), colour jitter and erasing for a standard
architecture; flips only with ``--flip``). CUDA trains with fast kernels; ``--deterministic`` asks for deterministic
ones there too (the CPU always has them: the same seed trains the same weights).

``--architecture`` (:mod:`retrain_steps.architectures`): ``cnn`` (the CNN family, :func:`retrain_steps.models
.torch_cnn`), a torchvision classifier by name, or ``auto``: the warm-start model's architecture with
``--init-from``, else the CNN below 64 pixels a side and ResNet-18 from 64 up. Keras trains the CNN only (a
standard architecture with ``--framework tensorflow`` is exit 2). ``model.json`` and ``metrics.json`` record it, and
a standard architecture's stem (:func:`retrain_steps.architectures.stem_for`: the small-input one from scratch below
64 pixels; a warm start keeps its model's, fine-tuning the checkpoint's).

``--pretrained URI --pretrained-sha256 HEX`` (:mod:`retrain_steps.pretrained`): a standard architecture starts from
a state_dict in the artifact store, verified by its sha256 (missing, corrupt, wrong sha256, keys of another
architecture: exit 2 naming the file). Fine-tuning: ``--head-epochs`` epochs train the classifier head alone (the
backbone frozen, its BatchNorm statistics the checkpoint's), then the whole network, the backbone at
``--backbone-lr-scale`` x the learning rate (the head at the full rate), under the one warm-up + cosine schedule.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retrain_steps import architectures, artifacts, layout, manifest, ood, plots, recipe
from retrain_steps.errors import InputError
from retrain_steps.input_spec import InputSpec, prepare, spec_of_model
from retrain_steps.models import DEVICES, FRAMEWORKS, MODEL_FILES, architecture_of, resolve_device, stem_of
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


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def sha256_hex(text: str) -> str | None:
    if not text:  # an empty value (a form's unset field) is no value, as an empty --pretrained
        return None
    if not re.fullmatch(r"[0-9a-fA-F]{64}", text):
        raise argparse.ArgumentTypeError(f"must be a sha256: 64 hexadecimal digits, got {text!r}")
    return text.lower()


def lr_scale(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def smoothing(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


BACKBONE_LR_SCALE = 0.1
MAX_HEAD_EPOCHS = 2


def default_head_epochs(epochs: int) -> int:
    """Head-only epochs when ``--head-epochs`` is unset: up to 2, at most a quarter of the run (none below 4
    epochs: the warm-up and the backbone's lower rate then protect the pretrained features alone)."""
    return min(MAX_HEAD_EPOCHS, epochs // 4)


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
                        help="augment the training images: the CNN's one-pixel shift (both frameworks); random "
                             "resized crops (whole-pixel shifts below 64 px), colour jitter (RGB) and erasing for a "
                             "standard architecture")
    parser.add_argument("--flip", action="store_true",
                        help="with --augment: mirror half the training images left-right (not for digits or text)")
    parser.add_argument("--architecture", choices=architectures.CHOICES, default=architectures.AUTO,
                        help="auto: the --init-from model's, else cnn below 64 pixels a side and resnet18 from 64 "
                             "up (cnn for Keras, which trains the CNN only)")
    fine = parser.add_argument_group("fine-tuning", "a standard architecture from pretrained weights in the store")
    fine.add_argument("--pretrained", default=None, metavar="URI",
                      help="a torch state_dict (s3://..., file://... or a path) for the architecture")
    fine.add_argument("--pretrained-sha256", type=sha256_hex, default=None, metavar="HEX",
                      help="the weights file's sha256 (required with --pretrained)")
    fine.add_argument("--head-epochs", type=non_negative_int, default=None,
                      help="with --pretrained: epochs training the head alone first (backbone frozen); "
                           "default min(2, epochs // 4); --epochs trains the head only")
    fine.add_argument("--backbone-lr-scale", type=lr_scale, default=BACKBONE_LR_SCALE,
                      help="with --pretrained: the backbone's rate as a fraction of --learning-rate after the "
                           "head epochs")
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
    recipe_flags.add_argument("--deterministic", action="store_true",
                              help="deterministic kernels on CUDA too (the CPU always has them): the same seed "
                                   "trains the same weights, at about 1.5-2x the time on an H200")


#: the torch path's recipe flags (the manifest key's)
RECIPE_FLAGS = ("weight_decay", "warmup_epochs", "label_smoothing", "precision", "deterministic")


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


def shift_batch(x: np.ndarray, rng: np.random.Generator, flip: bool = False) -> np.ndarray:
    """Augmentation (the Keras path): each image moved by -1, 0 or +1 pixel on each axis at random; with ``flip``
    half of them (at random) mirrored left-right."""
    shifted = shift_by(x, rng.integers(-1, 2, size=(len(x), 2)))
    if flip:
        mirrored = rng.random(len(x)) < 0.5
        shifted[mirrored] = shifted[mirrored, :, :, ::-1]
    return shifted


def should_stop(history: list[dict], patience: int) -> bool:
    """Early stopping: the last ``patience`` epochs did not lower the best validation loss before them."""
    if patience <= 0 or len(history) <= patience:
        return False
    best_before = min(h["val_loss"] for h in history[:-patience])
    return min(h["val_loss"] for h in history[-patience:]) >= best_before


@dataclass(frozen=True)
class ModelChoice:
    """What the run trains, resolved from the command line and the data (:func:`choose_model`)."""

    architecture: str
    stem: str = architectures.IMAGENET_STEM  #: a standard architecture's stem (:func:`architectures.stem_for`)
    pretrained: str | None = None
    pretrained_sha256: str | None = None
    head_epochs: int = 0
    backbone_lr_scale: float = BACKBONE_LR_SCALE

    def fine_tuning(self) -> dict | None:
        """The pretrained weights and the fine-tuning schedule (the manifest key's and metrics.json's), if any."""
        if not self.pretrained:
            return None
        return {"uri": self.pretrained, "sha256": self.pretrained_sha256, "head_epochs": self.head_epochs,
                "backbone_lr_scale": self.backbone_lr_scale}


def choose_model(args: argparse.Namespace, spec: InputSpec) -> ModelChoice:
    """The architecture and fine-tuning of this run; bad combinations are :class:`InputError` naming the flags."""
    warm, warm_info = None, None
    if args.init_from:
        warm_info = artifacts.read_json(layout.file_in(args.init_from, layout.MODEL_INFO))
        warm = architecture_of(warm_info)
    name = architectures.resolve(args.architecture, spec.height, spec.width, args.framework, warm)
    if warm and warm != name:
        raise WarmStartError(f"cannot warm-start a {name} candidate from the {warm} model at {args.init_from}; "
                             f"choose the architecture {warm} (or auto) or turn warm start off")
    if name != architectures.CNN:
        architectures.check(name, spec.channels, spec.height, spec.width, len(spec.class_names))
    if args.pretrained_sha256 and not args.pretrained:
        raise InputError("--pretrained-sha256 is set without --pretrained (the weights file it verifies)")
    if not args.pretrained:
        if warm_info is not None:  # the warm-start model's own stem, whichever this size would pick now
            return ModelChoice(name, stem_of(warm_info))
        if name == architectures.CNN:
            return ModelChoice(name)
        return ModelChoice(name, architectures.stem_for(name, spec.height, spec.width))
    if not args.pretrained_sha256:
        raise InputError(f"--pretrained {args.pretrained} needs --pretrained-sha256 (the weights file's sha256)")
    if name == architectures.CNN:
        chosen = "auto chose cnn" if args.architecture == architectures.AUTO else "cnn has no pretrained weights"
        raise InputError(f"--pretrained {args.pretrained} needs a standard architecture ({chosen} for "
                         f"{spec.height}x{spec.width} images): choose the checkpoint's with --architecture, one of "
                         f"{', '.join(architectures.ARCHITECTURES)}")
    if args.init_from:
        raise InputError(f"--pretrained {args.pretrained} and --init-from {args.init_from}: a warm start already "
                         "starts from trained weights; choose one")
    head_epochs = default_head_epochs(args.epochs) if args.head_epochs is None else args.head_epochs
    if head_epochs > args.epochs:
        raise InputError(f"--head-epochs {head_epochs} must be at most --epochs {args.epochs}")
    # the stem: the checkpoint's, read when it is loaded (pretrained.checkpoint_stem)
    return ModelChoice(name, architectures.IMAGENET_STEM, args.pretrained, args.pretrained_sha256, head_epochs,
                       args.backbone_lr_scale)


def fetch_initial_model(args: argparse.Namespace, spec: InputSpec, folder: Path) -> Path | None:
    """Copy the ``--init-from`` model into ``folder`` (verified); refuse another framework, input or classes
    (another architecture: :func:`choose_model`)."""
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


def _train_torch(splits: dict, spec: InputSpec, args: argparse.Namespace, folder: Path, choice: ModelChoice,
                 checkpoint: bytes | None) -> tuple[list[dict], dict, dict]:
    """Train on the torch path (from the verified ``checkpoint``'s bytes with ``--pretrained``); the history, the
    resolved recipe and what the pretrained load did (or {})."""
    import torch

    from retrain_steps import augmentation
    from retrain_steps.models import torch_model

    device = resolve_device(args.device)
    torch.manual_seed(args.seed)
    deterministic = recipe.make_deterministic(device, args.deterministic)
    log.info("train: torch %s on %s, %s%s%s", torch.__version__, device, choice.architecture,
             " (small-input stem)" if choice.stem == architectures.SMALL_STEM else "",
             "" if deterministic else ", fast kernels (not bit-reproducible; --deterministic for that)")
    plan = torch_recipe(args, len(splits["y_train"]), device)
    log.info("train: recipe %s", ", ".join(f"{k} {v}" for k, v in plan.to_dict().items()))
    loaded, head = {}, None
    if choice.pretrained:
        from retrain_steps import pretrained

        state = pretrained.load_state(checkpoint, choice.pretrained)
        model, done = pretrained.build_pretrained(choice.architecture, spec.channels, spec.height, spec.width,
                                                  len(spec.class_names), state, choice.pretrained)
        del state
        head = architectures.head(model, choice.architecture)
        loaded = {"reinitialised": list(done.reinitialised), "stem_summed": done.stem_summed, "stem": done.stem}
        log.info("train: pretrained weights %s (sha256 %s); head re-initialised: %s; %d head-only epochs, then "
                 "the backbone at %g x the rate", choice.pretrained, choice.pretrained_sha256,
                 ", ".join(done.reinitialised) or "none", choice.head_epochs, choice.backbone_lr_scale)
    else:
        model = torch_model(choice.architecture, spec, choice.stem)
    if initial := fetch_initial_model(args, spec, folder / "init"):
        try:
            model.load_state_dict(torch.load(initial, map_location="cpu", weights_only=True))
        except RuntimeError as err:
            raise WarmStartError(f"the model at {args.init_from} does not fit this candidate: "
                                 f"{str(err).splitlines()[0]}") from None
        log.info("train: warm start from %s", args.init_from)
    augment = augmentation.for_training(choice.architecture, spec, args.flip) if args.augment else False
    trainer = recipe.Trainer(model, plan, device, args.seed, augment=augment, head=head,
                             backbone_lr_scale=choice.backbone_lr_scale if head is not None else 1.0)
    x_train, x_val = (trainer.to_device(torch.from_numpy(splits[name])) for name in ("x_train", "x_val"))
    y_train, y_val = (torch.from_numpy(splits[name]).to(device) for name in ("y_train", "y_val"))
    history, best_state, best_acc = [], None, -1.0
    for epoch in range(1, args.epochs + 1):
        if head is not None and trainer.frozen != (epoch <= choice.head_epochs):
            trainer.freeze_backbone(epoch <= choice.head_epochs)
            log.info("train: epoch %d on: %s", epoch, "the head alone" if trainer.frozen else "the whole network")
        figures = trainer.epoch(x_train, y_train, x_val, y_val)
        history.append(_epoch_line(epoch, args.epochs, figures["loss"], figures["val_loss"],
                                   figures["val_accuracy"], figures["samples_per_s"]))
        if figures["val_accuracy"] > best_acc:
            best_acc, best_state = figures["val_accuracy"], trainer.state()
        if should_stop(history, args.patience):
            log.info("train: early stop after epoch %d (no lower val_loss for %d epochs)", epoch, args.patience)
            break
    torch.save(recipe.cpu_state(best_state), folder / MODEL_FILES["torch"])
    return history, plan.to_dict(), loaded


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


def _train_keras(splits: dict, spec: InputSpec, args: argparse.Namespace, folder: Path, choice: ModelChoice,
                 checkpoint: None = None) -> tuple[list[dict], None, dict]:
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
        inputs = (np.transpose(shift_batch(splits["x_train"], rng, args.flip), (0, 2, 3, 1)) if args.augment
                  else x_train)
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
    return history, None, {}


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
    choice = choose_model(args, spec)
    if args.flip and not args.augment:
        log.warning("train: --flip without --augment flips nothing")
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
        flip=args.flip and args.augment,
        architecture=choice.architecture,
        pretrained=choice.fine_tuning(),
        **({"recipe": {name: getattr(args, name) for name in RECIPE_FLAGS}} if args.framework == "torch" else {}),
    )
    if done := manifest.up_to_date(args.output, key):
        log.info("train: %s is up to date", args.output)
        return done
    checkpoint = None
    if choice.pretrained:  # missing or not the sha256: refused before the data is loaded or torch imported
        from retrain_steps.pretrained import read_verified

        checkpoint = read_verified(choice.pretrained, choice.pretrained_sha256)
    raw = load_splits(args.input, spec, splits_raw)
    splits = {name: prepare(x, spec) if name.startswith("x_") else x for name, x in raw.items()}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        trainer = _train_torch if args.framework == "torch" else _train_keras
        history, recipe_used, loaded = trainer(splits, spec, args, folder, choice, checkpoint)
        del checkpoint
        # a standard architecture's stem (fine-tuned: the checkpoint's); the CNN has none
        stem = {} if choice.architecture == architectures.CNN else {"stem": loaded.pop("stem", choice.stem)}
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
            "flip": args.flip and args.augment,
            "architecture": choice.architecture,
            **stem,
            "warm_start_from": args.init_from,
            "val_accuracy": best["val_accuracy"],
            "val_loss": best["val_loss"],
            "samples_per_s": float(np.median([h["samples_per_s"] for h in history])),
            "history": history,
        }
        if recipe_used:
            metrics["recipe"] = recipe_used
        if fine := choice.fine_tuning():
            metrics["pretrained"] = {**fine, **loaded}
        model_file = MODEL_FILES[args.framework]
        outputs = {
            model_file: artifacts.write_bytes(
                layout.file_in(args.output, model_file), (folder / model_file).read_bytes()
            ),
            layout.MODEL_INFO: artifacts.write_json(
                layout.file_in(args.output, layout.MODEL_INFO),
                {"framework": args.framework, "file": model_file, "input_spec": spec.to_dict(),
                 "architecture": choice.architecture, **stem},
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
