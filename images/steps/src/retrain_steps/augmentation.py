"""``train --augment``: the training images' augmentation, batch-wise on the training device, different per image.

The CNN family keeps its one-pixel shift (:func:`retrain_steps.recipe.shift_images`), plus a horizontal flip of
half the images with ``--flip``. The standard architectures (:class:`StandardPolicy`) get the usual ImageNet-style
policy, with the parameters of ``torchvision.transforms.v2``'s transforms of the same names:

* ``RandomResizedCrop``: a crop of :data:`CROP_SCALE` of the area, aspect ratio log-uniform in :data:`CROP_RATIO`,
  resized back to the input size (bilinear); below :data:`SMALL_INPUT_BELOW` pixels a side instead the small-image
  recipes' ``RandomCrop(padding=...)`` (CIFAR's 4 pixels at 32): a shift by a whole number of pixels, up to
  :data:`SHIFT_FRACTION` of the side, the edge repeated (a crop of a few hundred pixels resized back loses the
  detail a 28x28 image has);
* ``RandomHorizontalFlip`` (half the images) only with ``--flip`` (off for digits and text-like data);
* ``ColorJitter`` (brightness, contrast, saturation each by a factor in ``1 +- JITTER``) for RGB data only, in
  pixel space (the normalisation undone and redone); hue is left out (its HSV round trip costs more than the
  rest of the policy together);
* ``RandomErasing``: with probability :data:`ERASE_P` a rectangle of :data:`ERASE_SCALE` of the area, aspect
  ratio log-uniform in :data:`ERASE_RATIO`, set to 0 (the training mean, in the normalised input).

Why not ``transforms.v2`` itself: given a batch tensor, a v2 transform draws ONE set of random parameters and
applies it to every image of the batch (and draws them on the host, from torch's global generator, reading them
back with ``.item()``). Here every image draws its own parameters from the trainer's generator on the device, in
one ``rand`` per batch, and the batch is transformed at once: the crops and flips as one affine
``grid_sample`` (``affine_grid`` with a per-image matrix), the jitter as per-image factors broadcast over the
pixels, the erasing as a per-image mask. No host read, no Python loop over images.
"""

from __future__ import annotations

import math

from retrain_steps.architectures import CNN, SMALL_STEM_BELOW

CROP_SCALE = (0.25, 1.0)  #: v2.RandomResizedCrop's scale is (0.08, 1); small, short runs do better with less
CROP_RATIO = (3 / 4, 4 / 3)
SMALL_INPUT_BELOW = SMALL_STEM_BELOW  #: the shorter side below which crops are shifts (the small-input stem's)
SHIFT_FRACTION = 1 / 8  #: small inputs: the largest shift, as a fraction of the side (4 pixels at 32, 3 at 28)
JITTER = 0.4  #: v2.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4), as in the torchvision recipes
ERASE_P, ERASE_SCALE, ERASE_RATIO = 0.25, (0.02, 1 / 3), (0.3, 3.3)
LUMA = (0.299, 0.587, 0.114)  #: ITU-R 601-2, as torchvision's rgb_to_grayscale


def for_training(architecture: str, spec, flip: bool):
    """The trainer's ``augment`` (:class:`retrain_steps.recipe.Trainer`) for ``train --augment``: the CNN's shift
    (True), with flips :func:`shift_and_flip`; a standard architecture's :class:`StandardPolicy` for ``spec``."""
    if architecture == CNN:
        return shift_and_flip if flip else True
    small = min(spec.height, spec.width) < SMALL_INPUT_BELOW
    return StandardPolicy(spec.channels, spec.mean, spec.std, flip, shift_only=small)


def shift_and_flip(x, generator):
    """The CNN's one-pixel shift, then :func:`flip_half`."""
    from retrain_steps.recipe import random_offsets, shift_images

    return flip_half(shift_images(x, random_offsets(len(x), generator, x.device)), generator)


def flip_half(x, generator):
    """Each image of ``x`` ``(n, c, h, w)`` mirrored left-right with probability 1/2 (on ``x``'s device)."""
    import torch

    flip = torch.rand(len(x), generator=generator, device=x.device) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)


def _whole_shift(u, side: int):
    """Uniform ``u`` in [0, 1) -> whole pixels in ``-m..m``, ``m`` = :data:`SHIFT_FRACTION` of ``side`` rounded down."""
    most = max(1, int(side * SHIFT_FRACTION))
    return (u * (2 * most + 1)).floor().clamp(max=2 * most) - most


def _log_uniform(u, bounds):
    low, high = math.log(bounds[0]), math.log(bounds[1])
    return (low + u * (high - low)).exp()


class StandardPolicy:
    """The policy above for inputs of ``channels`` normalised with ``mean``/``std`` (per channel; empty: none);
    ``shift_only``: the small inputs' whole-pixel shifts instead of resized crops.

    ``policy(x, generator)`` returns the augmented batch, a new tensor on ``x``'s device."""

    def __init__(self, channels: int, mean=(), std=(), flip: bool = False, shift_only: bool = False):
        self.channels, self.flip, self.shift_only = channels, flip, shift_only
        self.mean, self.std = tuple(mean) or (0.0,) * channels, tuple(std) or (1.0,) * channels
        self.jitter = channels == 3
        self._constants: dict = {}  # (device, dtype) -> mean, std, luma: copied to the device once, not per batch

    def constants(self, x):
        """The normalisation and luma weights as ``(1, c, 1, 1)`` tensors on ``x``'s device (a copy to a GPU
        waits for it: made once per device)."""
        import torch

        key = (x.device, x.dtype)
        if key not in self._constants:
            self._constants[key] = tuple(torch.tensor(values, dtype=x.dtype).view(1, -1, 1, 1).to(x.device)
                                         for values in (self.mean, self.std, LUMA))
        return self._constants[key]

    def __call__(self, x, generator):
        import torch

        n = len(x)
        u = torch.rand(n, 13, generator=generator, device=x.device)  # every image's draws at once
        x = self.crop_and_flip(x, u[:, :5])
        if self.jitter:
            x = self.color_jitter(x, u[:, 5:8])
        return self.erase(x, u[:, 8:13])

    def crop_and_flip(self, x, u):
        """Random resized crop (``u[:, 0]`` scale, ``u[:, 1]`` ratio, ``u[:, 2:4]`` centre) and the flip (``u[:, 4]``
        below 1/2, with ``flip``), as one affine resampling. The crop's sides are clamped to the image (v2 retries
        10 draws, then falls back to a centre crop). ``shift_only``: whole-pixel shifts (``u[:, 2:4]``) instead."""
        import torch
        from torch.nn import functional

        n, _, h, w = x.shape
        if self.shift_only:  # whole pixels: -m..m each way, 2 / side per pixel in affine_grid's [-1, 1]
            crop_w = crop_h = torch.ones(n, device=x.device)
            centre_x, centre_y = (2 * (_whole_shift(u[:, i], side) / side) for i, side in ((2, w), (3, h)))
        else:
            scale = CROP_SCALE[0] + u[:, 0] * (CROP_SCALE[1] - CROP_SCALE[0])
            ratio = _log_uniform(u[:, 1], CROP_RATIO)
            # the crop's width and height as fractions of the image's: w_c * h_c = scale, (w_c * w) / (h_c * h) = ratio
            crop_w = (scale * ratio * h / w).sqrt().clamp(max=1.0)
            crop_h = (scale / ratio * w / h).sqrt().clamp(max=1.0)
            centre_x = (2 * u[:, 2] - 1) * (1 - crop_w)
            centre_y = (2 * u[:, 3] - 1) * (1 - crop_h)
        sign = torch.where(u[:, 4] < 0.5, -1.0, 1.0) if self.flip else torch.ones_like(u[:, 4])
        zero = torch.zeros(n, device=x.device)
        theta = torch.stack([torch.stack([crop_w * sign, zero, centre_x], 1),
                             torch.stack([zero, crop_h, centre_y], 1)], 1).to(x.dtype)
        grid = functional.affine_grid(theta, list(x.shape), align_corners=False)
        return functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def color_jitter(self, x, u):
        """Brightness, contrast, saturation by per-image factors ``1 + JITTER * (2u - 1)`` in pixel space."""
        mean, std, luma = self.constants(x)
        factors = (1 + JITTER * (2 * u - 1)).to(x.dtype)
        brightness, contrast, saturation = (factors[:, i].view(-1, 1, 1, 1) for i in range(3))
        pixels = (x * std + mean) * brightness
        pixels = pixels.clamp(0, 1)
        grey_mean = (pixels * luma).sum(1, keepdim=True).mean((2, 3), keepdim=True)
        pixels = ((pixels - grey_mean) * contrast + grey_mean).clamp(0, 1)
        grey = (pixels * luma).sum(1, keepdim=True)
        pixels = ((pixels - grey) * saturation + grey).clamp(0, 1)
        return (pixels - mean) / std

    def erase(self, x, u):
        """With probability :data:`ERASE_P` (``u[:, 0]``) a rectangle set to 0: area ``u[:, 1]``, ratio ``u[:, 2]``,
        top ``u[:, 3]``, left ``u[:, 4]``."""
        import torch

        n, _, h, w = x.shape
        area = (ERASE_SCALE[0] + u[:, 1] * (ERASE_SCALE[1] - ERASE_SCALE[0])) * h * w
        ratio = _log_uniform(u[:, 2], ERASE_RATIO)
        eh = (area * ratio).sqrt().clamp(1, h)
        ew = (area / ratio).sqrt().clamp(1, w)
        eh, ew = eh.round(), ew.round()
        top = (u[:, 3] * (h - eh + 1)).floor()
        left = (u[:, 4] * (w - ew + 1)).floor()
        rows = torch.arange(h, device=x.device, dtype=top.dtype).view(1, h, 1)
        cols = torch.arange(w, device=x.device, dtype=left.dtype).view(1, 1, w)
        inside = ((rows >= top.view(-1, 1, 1)) & (rows < (top + eh).view(-1, 1, 1))
                  & (cols >= left.view(-1, 1, 1)) & (cols < (left + ew).view(-1, 1, 1)))
        mask = inside & (u[:, 0] < ERASE_P).view(-1, 1, 1)
        return x.masked_fill(mask.unsqueeze(1), 0.0)
