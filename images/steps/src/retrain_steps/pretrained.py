"""Pretrained weights from the artifact store for a standard architecture (``train --pretrained``).

The weights file is a torch ``state_dict`` (a torchvision or timm checkpoint the platform team put in the store,
never fetched from a hub here), named by URI (``s3://...``, ``file://...`` or a local path: what
:func:`retrain_steps.artifacts.read_bytes` reads) and by its sha256. :func:`read_checkpoint` reads the bytes,
verifies them against the sha256 *before* unpickling anything, then ``torch.load(weights_only=True)``.
(:func:`read_verified` needs no torch: ``train`` checks the file before it loads the data.)
:func:`build_pretrained` builds the architecture and loads the checkpoint into it:

* the keys must be the model's, strictly (a checkpoint of another architecture is refused naming the keys), except
  the classifier head (:data:`retrain_steps.architectures.HEADS`): a head tensor whose shape differs from this
  model's (1,000 ImageNet classes, here 10) is dropped and keeps its fresh initialisation, and a checkpoint without
  its head (a backbone export) loads too;
* a 3-channel stem is summed over its colour kernels for grayscale data
  (:func:`retrain_steps.architectures.adapt_first_conv`);
* the model gets the checkpoint's stem: the ImageNet one, or the small-input one of a ResNet trained here from
  scratch below 64 pixels (its first convolution 3x3, not 7x7; :func:`checkpoint_stem`).

Every bad case is an :class:`~retrain_steps.errors.InputError` or an
:class:`~retrain_steps.artifacts.ArtifactError` naming the file (exit 2, no retry): missing, wrong sha256, not a
torch state_dict, keys or shapes that do not match.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from retrain_steps import architectures, artifacts
from retrain_steps.errors import InputError

SHOWN_KEYS = 5  #: keys a refusal names (then how many more)


@dataclass(frozen=True)
class Loaded:
    """What :func:`build_pretrained` did: the head keys it re-initialised, whether it summed the RGB stem, and the
    stem it built (the checkpoint's)."""

    reinitialised: tuple[str, ...]
    stem_summed: bool
    stem: str = architectures.IMAGENET_STEM


def read_verified(uri: str, sha256: str) -> bytes:
    """The weights file's bytes once they match ``sha256`` (ArtifactError naming ``uri`` otherwise); no torch."""
    if not sha256:
        raise InputError(f"--pretrained {uri} needs --pretrained-sha256 (the weights file's sha256)")
    data = artifacts.read_bytes(uri)
    artifacts.verify_sha256(uri, data, sha256)
    return data


def load_state(data: bytes, uri: str) -> dict:
    """The ``state_dict`` in verified bytes: ``torch.load(weights_only=True)``, a mapping of names to tensors."""
    import torch

    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 (any unpickling failure means the file is not a checkpoint)
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"the pretrained weights {uri} are not a torch checkpoint torch.load can read "
                         f"with weights_only=True: {first}") from None
    if not isinstance(state, dict) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise InputError(f"the pretrained weights {uri} are not a state_dict (a mapping of names to tensors), "
                         f"got {type(state).__name__}")
    return state


def read_checkpoint(uri: str, sha256: str) -> dict:
    """:func:`read_verified` then :func:`load_state`."""
    return load_state(read_verified(uri, sha256), uri)


def _named(keys, what: str) -> str:
    keys = sorted(keys)
    more = f" and {len(keys) - SHOWN_KEYS} more" if len(keys) > SHOWN_KEYS else ""
    return f"{what} {', '.join(keys[:SHOWN_KEYS])}{more}"


def build_pretrained(name: str, channels: int, height: int, width: int, classes: int, state: dict,
                     uri: str = "the checkpoint"):
    """``(model, Loaded)``: the architecture ``name`` for the input, with ``state`` loaded as described above."""
    stem = checkpoint_stem(name, height, width, classes, state)
    model = architectures.build(name, 3, height, width, classes, stem)  # checks the request first
    conv = architectures.first_conv(model)[2]
    stem_weights = state.get(next(k for k, p in model.named_parameters() if p is conv.weight))
    summed = channels == 1 and stem_weights is not None and stem_weights.ndim == 4 and stem_weights.shape[1] == 3
    if channels == 1 and not summed:  # a grayscale checkpoint: its stem loads into a 1-channel stem
        architectures.adapt_first_conv(model, 1)
    expected = model.state_dict()
    head = architectures.HEADS[name] + "."
    unexpected = set(state) - set(expected)
    # BatchNorm fills num_batches_tracked itself when a (torchvision) checkpoint lacks it
    missing = {k for k in set(expected) - set(state)
               if not k.startswith(head) and not k.endswith("num_batches_tracked")}
    if unexpected or missing:
        parts = [_named(unexpected, "unexpected keys") if unexpected else "",
                 _named(missing, "missing keys") if missing else ""]
        raise InputError(f"the pretrained weights {uri} do not fit {name}: "
                         f"{'; '.join(p for p in parts if p)} (a checkpoint of another architecture?)")
    wrong = {k: (tuple(v.shape), tuple(expected[k].shape)) for k, v in state.items() if v.shape != expected[k].shape}
    dropped = tuple(sorted(k for k in wrong if k.startswith(head)))
    body = {k: shapes for k, shapes in wrong.items() if not k.startswith(head)}
    if body:
        shown = ", ".join(f"{k} {list(a)} (model {list(b)})" for k, (a, b) in sorted(body.items())[:SHOWN_KEYS])
        raise InputError(f"the pretrained weights {uri} do not fit {name} for {channels}x{height}x{width} inputs "
                         f"and {classes} classes: shapes differ for {shown}")
    model.load_state_dict({k: v for k, v in state.items() if k not in dropped}, strict=False)
    if summed:
        architectures.adapt_first_conv(model, 1)
    reinitialised = tuple(sorted(set(dropped) | {k for k in set(expected) - set(state) if k.startswith(head)}))
    return model, Loaded(reinitialised=reinitialised, stem_summed=summed, stem=stem)


def checkpoint_stem(name: str, height: int, width: int, classes: int, state: dict) -> str:
    """The stem ``state`` was trained with: the small-input one when its first convolution has that stem's kernel and
    not the ImageNet one's (the ResNets; MobileNetV3's and EfficientNet's stems differ in stride alone, which no
    checkpoint holds, so theirs load with the ImageNet stem), else the ImageNet stem."""
    if name not in architectures.HAS_SMALL_STEM:
        return architectures.IMAGENET_STEM
    import torch

    kernels = {}
    with torch.device("meta"):
        for stem in architectures.STEMS:
            model = architectures.build(name, 3, height, width, classes, stem)
            conv = architectures.first_conv(model)[2]
            key = next(k for k, p in model.named_parameters() if p is conv.weight)
            kernels[stem] = tuple(conv.weight.shape[2:])
    weights, small = state.get(key), kernels[architectures.SMALL_STEM]
    if small != kernels[architectures.IMAGENET_STEM] and weights is not None and weights.ndim == 4 \
            and tuple(weights.shape[2:]) == small:
        return architectures.SMALL_STEM
    return architectures.IMAGENET_STEM

