"""Standard image classifiers from torchvision, built by name for an input ``(channels, height, width)``
and a number of classes.

:func:`build` returns the torchvision model with its head sized for the classes; for grayscale input its
first convolution takes one channel (its weights, when it has any from a checkpoint, are the sum of the RGB
weights over the input channels, so an RGB checkpoint adapted with :func:`adapt_first_conv` sees a grey
image as it saw the same image in RGB). Every architecture here ends in adaptive average pooling, so one
model takes any input from its :data:`MIN_SIDE` up (224x224 is torchvision's training size).

Below :data:`SMALL_STEM_BELOW` pixels a side a standard architecture trained from scratch gets the small-input stem
(:func:`small_stem`, ``stem="small"``, recorded in ``model.json``): the ResNets' ImageNet stem (a 7x7 stride-2
convolution and a max-pool: stride 4) leaves a 28x28 image 7x7 after the stem and 1x1 after the last stage; the
published small-image ResNets (CIFAR's, Fashion-MNIST's ResNet18) use a 3x3 stride-1 first convolution and no
max-pool. MobileNetV3 and EfficientNet get their stride-2 first convolution at stride 1; ConvNeXt keeps its stem.
Fine-tuning keeps the checkpoint's stem (:func:`retrain_steps.pretrained.checkpoint_stem`).

Beside them the train step knows :data:`CNN`, the project's own small CNN family
(:func:`retrain_steps.models.torch_cnn`), and ``auto`` (:func:`resolve`): the CNN below :data:`AUTO_FROM`
pixels a side, ResNet-18 from there up; Keras trains the CNN only.

torch and torchvision are imported only inside the functions: ``import torchvision`` imports
``torch._dynamo`` (several seconds on these machines), which the small-CNN path never needs.
"""

from __future__ import annotations

from retrain_steps.errors import InputError

# torchvision.models builders (each takes ``weights`` and ``num_classes``)
ARCHITECTURES = ("resnet18", "resnet50", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0",
                 "convnext_tiny")
CNN, AUTO = "cnn", "auto"
CHOICES = (AUTO, CNN, *ARCHITECTURES)  #: what ``train --architecture`` takes
AUTO_FROM = 64  #: ``auto``: the shorter image side from which a standard architecture (ResNet-18) is trained
AUTO_STANDARD = "resnet18"
# The classifier head of each (the module a pretrained checkpoint's head is re-initialised in when its shape
# differs, and the part trained alone in the head-only epochs of fine-tuning).
HEADS = {"resnet18": "fc", "resnet50": "fc", "mobilenet_v3_small": "classifier", "mobilenet_v3_large": "classifier",
         "efficientnet_b0": "classifier", "convnext_tiny": "classifier"}
# The smallest side each one runs at (measured): ConvNeXt's 4x4 patchify stem and three 2x2 merges need
# 32 pixels; the others pool whatever is left after their stride-32 stages (1x1 from 8 pixels up).
MIN_SIDE = {**dict.fromkeys(ARCHITECTURES, 8), "convnext_tiny": 32}
IMAGENET_STEM, SMALL_STEM = "imagenet", "small"
STEMS = (IMAGENET_STEM, SMALL_STEM)
SMALL_STEM_BELOW = 64  #: the shorter side below which a from-scratch standard architecture gets the small stem
# ConvNeXt's 4x4 patchify stem has no small-input variant here: it keeps its own stem at every size.
HAS_SMALL_STEM = tuple(name for name in ARCHITECTURES if name != "convnext_tiny")


def resolve(requested: str, height: int, width: int, framework: str = "torch",
            warm_start: str | None = None) -> str:
    """The architecture a run trains: ``requested`` unless it is ``auto``, which is the warm-start model's
    architecture when there is one (``warm_start``), else :data:`CNN` below :data:`AUTO_FROM` pixels (the
    shorter side) and :data:`AUTO_STANDARD` from there up; always the CNN for Keras (``framework`` tensorflow).
    Keras with a standard architecture is an :class:`InputError` (exit 2) naming it."""
    if requested not in CHOICES:
        raise InputError(f"unknown architecture {requested!r}; expected one of {list(CHOICES)}")
    if requested == AUTO:
        if framework == "tensorflow":
            return CNN
        if warm_start:
            return warm_start
        return CNN if min(height, width) < AUTO_FROM else AUTO_STANDARD
    if framework == "tensorflow" and requested != CNN:
        raise InputError(f"Keras trains the CNN family only, not {requested}: choose the PyTorch framework "
                         f"(--framework torch) for {requested}, or the architecture cnn (or auto) for Keras")
    return requested


def head(model, name: str):
    """The classifier head of a :func:`build` model (:data:`HEADS`)."""
    return getattr(model, HEADS[name])


def check(name: str, channels: int, height: int, width: int, classes: int) -> None:
    """Raise :class:`InputError` (exit 2) naming the bad value, before anything is imported or built."""
    if name not in ARCHITECTURES:
        raise InputError(f"unknown architecture {name!r}; expected one of {list(ARCHITECTURES)}")
    if channels not in (1, 3):
        raise InputError(f"{name} takes 1 (grayscale) or 3 (RGB) channels, got {channels}")
    if min(height, width) < MIN_SIDE[name]:
        side = MIN_SIDE[name]
        raise InputError(f"{name} needs images of at least {side}x{side} pixels, got {height}x{width}")
    if classes < 2:
        raise InputError(f"{name} needs at least 2 classes, got {classes}")


def stem_for(name: str, height: int, width: int) -> str:
    """The stem a ``name`` model trains with from scratch: :data:`SMALL_STEM` below :data:`SMALL_STEM_BELOW` pixels
    (the shorter side) where the architecture has one, else :data:`IMAGENET_STEM`."""
    return SMALL_STEM if name in HAS_SMALL_STEM and min(height, width) < SMALL_STEM_BELOW else IMAGENET_STEM


def build(name: str, channels: int, height: int, width: int, classes: int, stem: str = IMAGENET_STEM):
    """The torchvision classifier ``name`` (random weights) for ``channels`` x ``height`` x ``width`` inputs,
    with the ``stem`` :func:`stem_for` chose."""
    check(name, channels, height, width, classes)
    if stem not in STEMS:
        raise ValueError(f"unknown stem {stem!r}; expected one of {list(STEMS)}")
    from torchvision import models

    model = getattr(models, name)(weights=None, num_classes=classes)
    if stem == SMALL_STEM:
        small_stem(model, name)
    if channels == 1:
        adapt_first_conv(model, 1)
    return model


def small_stem(model, name: str) -> None:
    """Replace ``model``'s ImageNet stem by the small-input one: for the ResNets a 3x3 stride-1 first convolution
    and no max-pool; for MobileNetV3 and EfficientNet their first convolution at stride 1 (freshly initialised)."""
    from torch import nn

    if name not in HAS_SMALL_STEM:
        raise ValueError(f"{name} has no small-input stem")
    parent, attribute, conv = first_conv(model)
    if name.startswith("resnet"):
        small = nn.Conv2d(conv.in_channels, conv.out_channels, 3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    else:
        small = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=1, padding=conv.padding,
                          bias=conv.bias is not None)
    nn.init.kaiming_normal_(small.weight, mode="fan_out", nonlinearity="relu")  # torchvision's conv init
    setattr(parent, attribute, small)


def first_conv(model):
    """``(parent module, attribute name, conv)`` of the model's first ``Conv2d`` (its stem)."""
    from torch import nn

    for path, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            parent_path, _, attribute = path.rpartition(".")
            return model.get_submodule(parent_path), attribute, module
    raise ValueError(f"{type(model).__name__} has no Conv2d")


def adapt_first_conv(model, channels: int) -> None:
    """Give ``model``'s stem ``channels`` input channels; 1 from 3: the RGB kernels summed over colour."""
    import torch
    from torch import nn

    parent, attribute, conv = first_conv(model)
    if conv.in_channels == channels:
        return
    if (conv.in_channels, channels) != (3, 1) or conv.groups != 1:
        raise ValueError(f"cannot adapt a stem of {conv.in_channels} input channels to {channels}")
    adapted = nn.Conv2d(1, conv.out_channels, conv.kernel_size, stride=conv.stride, padding=conv.padding,
                        dilation=conv.dilation, bias=conv.bias is not None, padding_mode=conv.padding_mode)
    with torch.no_grad():
        adapted.weight.copy_(conv.weight.sum(dim=1, keepdim=True))
        if conv.bias is not None:
            adapted.bias.copy_(conv.bias)
    setattr(parent, attribute, adapted)
