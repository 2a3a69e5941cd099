"""The torch path's training recipe, and its loop on the device (used by :mod:`retrain_steps.train`).

Recipe: AdamW (peak rate ``--learning-rate``, betas 0.9/0.999, decoupled weight decay on the
conv and dense weights, none on biases), a per-step schedule (linear warm-up, then, in a run long
enough, cosine down to 0 at the last planned step: ``epochs x ceil(n / batch)``; early stopping may
end the run before),
cross-entropy with label smoothing for training (validation loss and accuracy are the plain ones),
early stopping as before. The Keras path keeps Adam at a constant rate.

Defaults, from the run's size (n training images, batch b, E epochs; S = E x ceil(n / b) planned
steps), so the form's defaults give a good model without tuning:

- cosine annealing from S = 2,000 planned steps up; a shorter run keeps the peak rate after its
  warm-up: it is still learning when a cosine would already have slowed it (measured here, mean test
  accuracy of 3 seeds, digits set with ``--augment``, 12 epochs, S = 240: 0.985 constant, 0.962
  cosine, 0.968 cosine to a 10 % floor, 0.981 the previous constant-rate Adam).
- warm-up ``min(2000, ceil(S / 20))`` steps: 5 % of the run (the usual 1 epoch in 20), never more
  than Ma & Yarats' untuned rule for Adam, 2 / (1 - beta2) = 2,000 steps.
- label smoothing 0.1 (Szegedy et al.) from 1,000 training images up; none below, where a few hundred
  steps are all the model gets and smoothing cost accuracy (measured here, mean test accuracy of 3
  seeds: 4-class 28x28 shapes, 420 images, 20 epochs at 0.003: 0.97 without, 0.94 with; the digits
  set, 1,257 images, 15 epochs at 0.001: 0.98 with, 0.97 without; small test splits, 88 and 269 images).
- weight decay 0.05 (the AdamW default of timm and ConvNeXt), whatever the size: a decay normalised by
  the steps (Loshchilov & Hutter, 0.35-0.5 on these small sets) did no better on them.

Precision: ``auto`` is bf16 autocast with channels_last tensors on a CUDA GPU that computes in bf16,
fp32 elsewhere. ``bf16`` on the CPU runs the same code path (for tests; slow without AMX).
On CUDA the optimizer is the fused AdamW, the loss is summed on the device (the host reads the
epoch's figures once, after validation), batches are gathered from tensors kept on the device, and
the augmentation (:func:`shift_images`, or :mod:`retrain_steps.augmentation`'s policies) runs there, batch-wise.

Fine-tuning a pretrained model (:class:`Trainer` with its ``head``): the backbone's parameter groups learn at
``backbone_lr_scale`` x the rate, the head's at the rate, under the same schedule; :meth:`Trainer.freeze_backbone`
trains the head alone (the first epochs, ``train --head-epochs``).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass

PRECISIONS = ("auto", "fp32", "bf16")
LABEL_SMOOTHING = 0.1
BETAS = (0.9, 0.999)
WEIGHT_DECAY = 0.05
SMOOTHING_FROM = 1000  #: training images from which the labels are smoothed by default
ANNEAL_FROM = 2000  #: planned steps from which the rate follows a cosine after the warm-up
WARMUP_FRACTION, MAX_WARMUP = 0.05, round(2 / (1 - BETAS[1]))
EVAL_BATCH = 2048
PRECISE_BN_BATCHES = 32  #: training batches BatchNorm's statistics are recomputed from after each epoch


@dataclass(frozen=True)
class Recipe:
    """One run's recipe, every value resolved (what ``metrics.json`` records under ``recipe``)."""

    learning_rate: float
    weight_decay: float
    label_smoothing: float
    warmup_steps: int
    total_steps: int
    steps_per_epoch: int
    batch_size: int
    precision: str  #: "fp32" or "bf16" (bf16 autocast and channels_last)
    anneal: bool  #: cosine to 0 after the warm-up (else the peak rate to the end)
    optimizer: str = "AdamW"

    def to_dict(self) -> dict:
        return asdict(self)


def default_label_smoothing(n_train: int) -> float:
    return LABEL_SMOOTHING if n_train >= SMOOTHING_FROM else 0.0


def default_warmup_steps(total_steps: int) -> int:
    return min(MAX_WARMUP, math.ceil(total_steps * WARMUP_FRACTION))


def plan(n_train: int, epochs: int, batch_size: int, learning_rate: float, *, precision: str = "fp32",
         weight_decay: float | None = None, label_smoothing: float | None = None,
         warmup_epochs: float | None = None) -> Recipe:
    """The recipe for ``n_train`` images; ``None`` takes the size-based default (module docstring).

    A warm-up as long as the run or longer is bad input (ValueError naming it)."""
    steps_per_epoch = math.ceil(n_train / batch_size)
    total = epochs * steps_per_epoch
    if warmup_epochs is None:
        warmup = default_warmup_steps(total)
    elif warmup_epochs >= epochs:
        raise ValueError(f"--warmup-epochs {warmup_epochs:g} must be below --epochs {epochs}: "
                         "the rate would never leave its warm-up")
    else:
        warmup = round(warmup_epochs * steps_per_epoch)
    return Recipe(
        learning_rate=learning_rate,
        weight_decay=WEIGHT_DECAY if weight_decay is None else weight_decay,
        label_smoothing=default_label_smoothing(n_train) if label_smoothing is None else label_smoothing,
        warmup_steps=warmup,
        total_steps=total,
        steps_per_epoch=steps_per_epoch,
        batch_size=batch_size,
        precision=precision,
        anneal=total >= ANNEAL_FROM,
    )


def lr_factor(step: int, warmup: int, total: int, anneal: bool = True) -> float:
    """The rate at optimizer step ``step`` (0: the first batch) as a fraction of the peak.

    Linear warm-up ``1/warmup, 2/warmup, ... 1`` over the first ``warmup`` steps, then (``anneal``) cosine
    from 1 to 0 at step ``total`` (the last step, ``total - 1``, still moves the weights a little), or 1."""
    if step < warmup:
        return (step + 1) / warmup
    if not anneal:
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def resolve_precision(requested: str, device: str) -> str:
    """``auto``: bf16 on a CUDA device that computes in bf16 natively, else fp32."""
    if requested not in PRECISIONS:
        raise ValueError(f"unknown precision {requested!r}; expected one of {PRECISIONS}")
    if requested != "auto":
        return requested
    if device != "cuda":
        return "fp32"
    import torch

    return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp32"


def shift_images(x, offsets):
    """Move each image of ``x`` ``(n, c, h, w)`` by ``offsets[i] = (dy, dx)`` pixels, each in {-1, 0, 1}
    (down and right for +1), zeros shifted in; on ``x``'s device, no loop over images. The torch twin of
    :func:`retrain_steps.train.shift_by` (the Keras path's numpy version)."""
    import torch
    from torch.nn import functional

    n, _, h, w = x.shape
    padded = functional.pad(x, (1, 1, 1, 1))
    dy, dx = offsets[:, 0].view(n, 1, 1, 1), offsets[:, 1].view(n, 1, 1, 1)
    rows = torch.where(dy > 0, padded[:, :, :h], torch.where(dy == 0, padded[:, :, 1 : h + 1], padded[:, :, 2:]))
    return torch.where(dx > 0, rows[..., :w], torch.where(dx == 0, rows[..., 1 : w + 1], rows[..., 2:]))


def random_offsets(n: int, generator, device: str):
    """``(n, 2)`` shifts drawn uniformly from {-1, 0, 1} on ``device`` (no host round trip)."""
    import torch

    return torch.randint(-1, 2, (n, 2), generator=generator, device=device)


def parameter_groups(model, weight_decay: float, head=None, learning_rate: float | None = None,
                     backbone_lr_scale: float = 1.0) -> list[dict]:
    """Weight decay on the conv and dense weights (2-d and up), none on biases (1-d).

    With ``head`` (fine-tuning a pretrained model: the classifier head, a submodule of ``model``) the backbone's
    groups come first, at ``learning_rate x backbone_lr_scale``, then the head's at ``learning_rate``."""
    def split(params) -> list[dict]:
        params = [p for p in params if p.requires_grad]
        return [{"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay},
                {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]

    if head is None:
        return split(model.parameters())
    in_head = {id(p) for p in head.parameters()}
    backbone = [{**group, "lr": learning_rate * backbone_lr_scale}
                for group in split(p for p in model.parameters() if id(p) not in in_head)]
    heads = [{**group, "lr": learning_rate} for group in split(head.parameters())]
    return [group for group in backbone + heads if group["params"]]


def make_deterministic(device: str, on_cuda: bool = False) -> bool:
    """Same seed, same weights (on one machine): deterministic kernels, always on the CPU, on CUDA only when asked
    (``on_cuda``, ``train --deterministic``), with cuBLAS' fixed workspace, which must be set before its first call
    (without it torch warns on every matmul and cuBLAS may vary). On CUDA they cost the training pass about 1.5x
    (the CNN at 28x28 in fp32; ResNet-18 at 64x64) to 2x (the CNN at 28x28 in bf16), measured on an H200, the train
    step with and without them. Returns whether they are on."""
    import torch

    if device == "cuda" and not on_cuda:
        torch.use_deterministic_algorithms(False)
        return False
    if device == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    return True


def optimizer_options(device: str) -> dict:
    """The fused AdamW (one kernel for every parameter, no host reads) on CUDA; torch's default elsewhere."""
    return {"fused": True} if device == "cuda" else {}


class SmoothedCrossEntropy:
    """The training loss: the value and gradient of torch's ``cross_entropy(logits, target, label_smoothing=s)``
    (mean over the batch; ``target``: class indices in ``[0, classes)``), in fp32, as the sum of the log-softmax
    times each image's row of a table: ``-(smoothed label probabilities) / batch``, one row per class, built once
    per batch length and device. Why not torch's: a small model's step on a GPU is bound by its launches, and
    torch's smoothing path dispatches 77 aten events for a batch's forward and backward, this one 19: 4 more than
    the plain loss (15), and the same kernels but for the row lookup, the product and its sum (torch.profiler, CPU,
    torch 2.14.1)."""

    def __init__(self, label_smoothing: float = 0.0):
        import torch

        self.torch, self.label_smoothing, self.tables = torch, label_smoothing, {}

    def __call__(self, logits, target):
        torch = self.torch
        logits = logits.float()
        if not self.label_smoothing:
            return torch.nn.functional.cross_entropy(logits, target)
        return (torch.log_softmax(logits, 1) * self.table(*logits.shape, logits.device)[target]).sum()

    def table(self, batch: int, classes: int, device):
        """Row ``k``: ``-(s / classes + (1 - s) * [j == k]) / batch`` for each class ``j``."""
        key = (batch, classes, str(device))
        if key not in self.tables:
            off_target = self.label_smoothing / classes
            rows = self.torch.full((classes, classes), off_target, dtype=self.torch.float32, device=device)
            self.tables[key] = rows.fill_diagonal_(1 - self.label_smoothing + off_target).div_(-batch)  # no copy
        return self.tables[key]


class Trainer:
    """The recipe applied to ``model`` on ``device``; the data tensors stay on the device.

    :meth:`epoch` trains one pass and validates; the host waits for the device once per epoch
    (to time it on CUDA) and reads the epoch's figures once (one ``tolist``).

    ``augment``: False, True (the one-pixel shift, :func:`shift_images`) or a function ``(batch, generator) ->
    batch`` run on the device (:mod:`retrain_steps.augmentation`). ``head`` (fine-tuning): the model's classifier
    head; the backbone (every other parameter) learns at ``backbone_lr_scale`` x the rate, and
    :meth:`freeze_backbone` trains the head alone."""

    def __init__(self, model, recipe: Recipe, device: str, seed: int, augment=False, head=None,
                 backbone_lr_scale: float = 1.0):
        import torch
        from torch import nn

        self.torch, self.recipe, self.device = torch, recipe, device
        self.augment = self.shift if augment is True else augment or None
        self.fast = recipe.precision == "bf16"
        self.memory_format = torch.channels_last if self.fast else torch.contiguous_format
        self.model = model.to(device, memory_format=self.memory_format)
        self.head, self.frozen = head, False
        self.batchnorm = [m for m in self.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        groups = parameter_groups(self.model, recipe.weight_decay, head, recipe.learning_rate, backbone_lr_scale)
        self.optimizer = torch.optim.AdamW(groups, lr=recipe.learning_rate, betas=BETAS, **optimizer_options(device))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: lr_factor(step, recipe.warmup_steps, recipe.total_steps, recipe.anneal))
        self.train_loss = SmoothedCrossEntropy(recipe.label_smoothing)
        self.val_loss = nn.CrossEntropyLoss(reduction="sum")
        # One generator on the device for the order and the shifts: drawing them needs no host round trip.
        self.generator = torch.Generator(device=device).manual_seed(seed)

    def shift(self, batch, generator):
        return shift_images(batch, random_offsets(len(batch), generator, self.device))

    def freeze_backbone(self, frozen: bool) -> None:
        """Head-only training (``frozen``): every parameter outside the head stops learning (``requires_grad``
        False: no gradient, so AdamW neither moves nor decays it) and the backbone runs in eval mode (its
        BatchNorm statistics stay the checkpoint's); unfrozen, the whole network trains."""
        if self.head is None:
            raise ValueError("freeze_backbone needs the model's head (fine-tuning)")
        in_head = {id(p) for p in self.head.parameters()}
        for parameter in self.model.parameters():
            if id(parameter) not in in_head:
                parameter.requires_grad_(not frozen)
        self.frozen = frozen

    def train_mode(self) -> None:
        """The model in training mode; with a frozen backbone only the head is (dropout in the head still drops)."""
        if self.frozen:
            self.model.eval()
            self.head.train()
        else:
            self.model.train()

    def to_device(self, x):
        """A float batch laid out as the model wants it (channels_last in bf16)."""
        return x.to(self.device).contiguous(memory_format=self.memory_format)

    def autocast(self):
        return self.torch.autocast(self.device, dtype=self.torch.bfloat16, enabled=self.fast)

    def train_epoch(self, x, y):
        """One pass over ``x`` (on the device) in a random order; the summed training loss, a device tensor."""
        torch = self.torch
        self.train_mode()
        order = torch.randperm(len(x), generator=self.generator, device=self.device)
        total = torch.zeros((), device=self.device)
        for begin in range(0, len(order), self.recipe.batch_size):
            idx = order[begin : begin + self.recipe.batch_size]
            if len(idx) == 1 and self.batchnorm:
                continue  # a last batch of one image: BatchNorm cannot train on it (1x1 maps at small inputs)
            batch = x[idx]
            if self.augment:
                batch = self.augment(batch, self.generator)
            batch = batch.contiguous(memory_format=self.memory_format)
            self.optimizer.zero_grad(set_to_none=True)
            with self.autocast():
                loss = self.train_loss(self.model(batch), y[idx])
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            total.add_(loss.detach(), alpha=len(idx))
        return total

    def recompute_batchnorm(self, x) -> None:
        """Precise BatchNorm statistics (Wu & Johnson, "Rethinking 'Batch' in BatchNorm"): the running mean and
        variance averaged over up to :data:`PRECISE_BN_BATCHES` training batches (not augmented) of the weights as
        they are, instead of the moving average of weights that changed under it. A short run has too few steps for
        the moving average to settle, and validation in eval mode then scores what the network no longer computes
        (seen here: a ResNet-18 at 12 steps with its validation loss flat while its training loss fell 10x). No-op
        for models without BatchNorm (the CNN family)."""
        torch, norms = self.torch, self.batchnorm
        if not norms:
            return
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the batches below
        self.model.train()
        size = self.recipe.batch_size
        # evenly spaced over the training set (a sorted one would give a few classes' statistics); no generator
        # draw, so the training that follows is the same with or without this
        picked = torch.linspace(0, len(x) - 1, min(len(x), PRECISE_BN_BATCHES * size), device=x.device).long()
        with torch.no_grad(), self.autocast():
            for begin in range(0, len(picked), size):
                batch = picked[begin : begin + size]
                if len(batch) > 1:  # BatchNorm in training mode needs 2 values per channel (1x1 maps at 8 px)
                    self.model(x[batch].contiguous(memory_format=self.memory_format))
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum

    def evaluate(self, x, y):
        """Summed plain cross-entropy and correct predictions on ``x`` (device tensors, no host read)."""
        torch = self.torch
        self.model.eval()
        with torch.inference_mode(), self.autocast():
            loss, correct = torch.zeros((), device=self.device), torch.zeros((), device=self.device)
            for begin in range(0, len(x), EVAL_BATCH):
                logits = self.model(x[begin : begin + EVAL_BATCH]).float()
                target = y[begin : begin + EVAL_BATCH]
                loss += self.val_loss(logits, target)
                correct += (logits.argmax(1) == target).sum()
        return loss, correct

    def epoch(self, x_train, y_train, x_val, y_val) -> dict:
        """Train one epoch and validate: ``loss`` (training, smoothed), ``val_loss``, ``val_accuracy``,
        ``samples_per_s`` (the training pass alone)."""
        torch = self.torch
        start = time.perf_counter()
        train_total = self.train_epoch(x_train, y_train)
        if self.device == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        if not self.frozen:
            self.recompute_batchnorm(x_train)
        val_loss, correct = self.evaluate(x_val, y_val)
        train_sum, val_sum, val_correct = torch.stack([train_total, val_loss, correct.float()]).tolist()
        return {"loss": train_sum / len(x_train), "val_loss": val_sum / len(x_val),
                "val_accuracy": val_correct / len(x_val), "samples_per_s": len(x_train) / elapsed}

    def state(self) -> dict:
        """A copy of the weights (on the device; :func:`cpu_state` to save them)."""
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}


def cpu_state(state: dict) -> dict:
    """The weights on the CPU in the standard layout (a channels_last run saves the same bytes as any other)."""
    return {k: v.to("cpu").contiguous() for k, v in state.items()}
