"""``train --augment`` for standard architectures (retrain_steps.augmentation): random resized crops, flips only with
``--flip``, colour jitter for RGB, random erasing; per image, on the device, without host reads; in-process on small
tensors (seconds)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from retrain_steps import augmentation, recipe  # noqa: E402
from retrain_steps.augmentation import StandardPolicy  # noqa: E402
from retrain_steps.input_spec import InputSpec  # noqa: E402
from retrain_steps.train import shift_batch  # noqa: E402
from tests.images.test_train_recipe import count_host_reads  # noqa: E402


def generator(seed: int = 0):
    return torch.Generator().manual_seed(seed)


def ramps(n: int, channels: int = 1, side: int = 16):
    """``n`` copies of one image whose pixels brighten from left to right (normalised around 0)."""
    ramp = torch.linspace(-1, 1, side).expand(side, side)
    return ramp.expand(n, channels, side, side).clone()


def rises_left_to_right(batch, border: int = 0) -> torch.Tensor:
    """Per image: whether its column means (but ``border`` columns each side) never fall from left to right (what
    no flip can keep)."""
    columns = batch.mean(dim=(1, 2))[:, border : batch.shape[-1] - border]
    return (columns[:, 1:] >= columns[:, :-1] - 1e-5).all(dim=1)


def all_distinct(batch) -> bool:
    flat = batch.flatten(1)
    differences = (flat[:, None] - flat[None]).abs().amax(dim=-1) + torch.eye(len(batch)) * 1e9
    return bool(differences.min() > 1e-3)


def test_each_image_gets_its_own_augmentation():
    x = torch.randn(1, 3, 24, 24).expand(48, -1, -1, -1).contiguous()
    out = StandardPolicy(3, (0.5,) * 3, (0.25,) * 3, flip=True)(x, generator())
    assert out.shape == x.shape and out.dtype == x.dtype
    assert all_distinct(out), "no two images of the batch augmented alike"
    again = StandardPolicy(3, (0.5,) * 3, (0.25,) * 3, flip=True)(x, generator())
    assert torch.equal(out, again), "the trainer's seeded generator decides everything"


@pytest.mark.parametrize("part", ["crop_and_flip", "color_jitter", "erase"])
def test_each_part_draws_per_image(monkeypatch, part):
    """One part at a time (the others the identity): its own draw for every image."""
    monkeypatch.setattr(augmentation, "ERASE_P", 1.0)
    for other in {"crop_and_flip", "color_jitter", "erase"} - {part}:
        monkeypatch.setattr(StandardPolicy, other, lambda self, x, u: x)
    pixels = torch.rand(1, 3, 24, 24).expand(48, -1, -1, -1)
    out = StandardPolicy(3, (0.5,) * 3, (0.25,) * 3)((pixels - 0.5) / 0.25, generator())
    assert all_distinct(out)


def test_the_whole_image_at_its_own_aspect_is_the_identity_and_the_flip_mirrors():
    x = torch.randn(4, 3, 12, 16)
    u = torch.tensor([[1.0, 1.0, 0.3, 0.7, 0.0]]).repeat(4, 1)  # the whole area, ratio 4/3 (the image's), flip drawn
    plain = StandardPolicy(3).crop_and_flip(x, u)
    torch.testing.assert_close(plain, x, atol=1e-5, rtol=0)
    torch.testing.assert_close(StandardPolicy(3, flip=True).crop_and_flip(x, u), x.flip(-1), atol=1e-5, rtol=0)


@pytest.mark.parametrize("channels", [1, 3])
def test_never_a_flip_without_flip_and_about_half_with_it(monkeypatch, channels):
    monkeypatch.setattr(augmentation, "ERASE_P", 0.0)  # an erased rectangle can break a ramp without a flip
    x = ramps(400, channels)
    assert rises_left_to_right(StandardPolicy(channels, flip=False)(x, generator())).all()
    rising = rises_left_to_right(StandardPolicy(channels, flip=True)(x, generator())).float().mean()
    assert 0.4 < rising < 0.6
    shifted = recipe.shift_images(x, recipe.random_offsets(400, generator(), "cpu"))
    assert rises_left_to_right(shifted, border=1).all(), "(zeros shifted in at the sides)"
    flipped = rises_left_to_right(augmentation.shift_and_flip(x, generator()), border=1).float().mean()
    assert 0.4 < flipped < 0.6, "the CNN's shift flips half with --flip"


def test_colour_jitter_for_rgb_only():
    grey = torch.rand(64, 1, 16, 16)
    assert not StandardPolicy(1).jitter and StandardPolicy(3).jitter
    policy = StandardPolicy(3, (0.4, 0.5, 0.6), (0.2, 0.2, 0.2))
    mean = torch.tensor([0.4, 0.5, 0.6]).view(1, 3, 1, 1)
    rgb = (torch.rand(1, 3, 16, 16).expand(64, -1, -1, -1) - mean) / 0.2  # pixels in 0..1, normalised
    jittered = policy.color_jitter(rgb, torch.rand(64, 3, generator=generator()))
    brightness = jittered.mean(dim=(1, 2, 3))
    assert brightness.std() > 0.05, "brightness varies per image"
    pixels = jittered * 0.2 + mean
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5, "jitter in pixel space, clamped to 0..1"
    u = torch.full((64, 3), 0.5)
    torch.testing.assert_close(policy.color_jitter(rgb, u), rgb, atol=1e-5, rtol=0), "factor 1: unchanged"
    assert grey.shape == StandardPolicy(1)(grey, generator()).shape


def test_random_erasing_zeroes_one_rectangle_in_about_a_quarter_of_the_images():
    x = torch.ones(2000, 1, 20, 20)
    u = torch.rand(2000, 5, generator=generator())
    erased = StandardPolicy(1).erase(x, u)
    zeros = (erased == 0).float().sum(dim=(1, 2, 3))
    share = (zeros > 0).float().mean()
    assert abs(share - augmentation.ERASE_P) < 0.04
    hit = zeros[zeros > 0]
    assert hit.min() >= 1 and hit.max() <= 400 * augmentation.ERASE_SCALE[1] * 1.3
    first = torch.nonzero(erased[(zeros > 0).nonzero()[0, 0], 0] == 0)
    rows, cols = first[:, 0], first[:, 1]
    assert len(first) == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1), "one solid rectangle"


@pytest.mark.parametrize("augment", [False, True])
def test_the_trainer_runs_the_policy_on_each_batch_without_host_reads(monkeypatch, augment):
    from torch import nn

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 4))
    plan = recipe.plan(64, 1, 16, 1e-3)
    seen = []
    model.register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()) if module.training else None)
    fit = recipe.Trainer(model, plan, "cpu", 0, augment=StandardPolicy(3, flip=True) if augment else False)
    x, y = torch.randn(64, 3, 16, 16), torch.arange(64) % 4
    calls = count_host_reads(monkeypatch)
    fit.epoch(x, y, x[:16], y[:16])
    monkeypatch.undo()
    assert calls == ["tolist"], "one host read per epoch, the policy included"
    batches = torch.cat(seen)
    same = sorted(batches.sum(dim=(1, 2, 3)).tolist()) == sorted(x.sum(dim=(1, 2, 3)).tolist())
    assert same is not augment


def test_for_training_picks_the_policy_by_architecture_and_size():
    spec = InputSpec(height=32, width=32, channels=3, class_names=("a", "b"), mean=(0.5,) * 3, std=(0.2,) * 3)
    assert augmentation.for_training("cnn", spec, False) is True
    assert augmentation.for_training("cnn", spec, True) is augmentation.shift_and_flip
    policy = augmentation.for_training("resnet18", spec, True)
    assert isinstance(policy, StandardPolicy) and policy.flip and policy.mean == (0.5,) * 3
    assert policy.shift_only, "32x32: shifts, not resized crops"
    large = InputSpec(height=64, width=96, channels=3, class_names=("a", "b"), mean=(0.5,) * 3, std=(0.2,) * 3)
    assert not augmentation.for_training("resnet18", large, False).shift_only


def test_small_inputs_shift_by_whole_pixels_up_to_an_eighth_of_the_side():
    """Below 64 px the crop is a shift (RandomCrop with padding, the edge repeated): every output pixel is an input
    pixel (no resampling blur), each image its own shift, at most 3 pixels at 28 and every shift in -3..3 drawn."""
    side = 28
    x = torch.arange(side * side, dtype=torch.float32).view(1, 1, side, side).expand(500, -1, -1, -1)
    out = StandardPolicy(1, shift_only=True).crop_and_flip(x, torch.rand(500, 5, generator=generator()))
    centre = out[:, 0, side // 2, side // 2]
    torch.testing.assert_close(centre, centre.round(), atol=1e-3, rtol=0), "whole pixels: another pixel's value"
    centre = centre.round()
    dy, dx = (centre // side - side // 2).long(), (centre % side - side // 2).long()
    assert set(dy.tolist()) == set(dx.tolist()) == set(range(-3, 4))
    for i in range(20):
        torch.testing.assert_close(out[i, 0, 4:-4, 4:-4], torch.roll(x[i, 0], (-dy[i].item(), -dx[i].item()),
                                                                     (0, 1))[4:-4, 4:-4], atol=1e-3, rtol=0)
    u = torch.rand(400, 5, generator=generator(1))
    u[:, 4] = 0.0  # the flip drawn for every image
    flipped = StandardPolicy(1, flip=True, shift_only=True).crop_and_flip(ramps(400, side=28), u)
    assert not rises_left_to_right(flipped, border=3).any(), "shifted and mirrored"


def test_the_keras_shift_flips_only_with_flip():
    x = np.broadcast_to(np.linspace(0, 1, 10, dtype=np.float32), (200, 1, 10, 10)).copy()
    rng = np.random.default_rng(0)

    def rising(batch):
        columns = batch[:, 0, 5, 1:-1]  # inside the shifted-in border
        return np.all(np.diff(columns, axis=1) >= 0, axis=1)

    assert rising(shift_batch(x, rng)).all()
    assert 0.4 < rising(shift_batch(x, rng, flip=True)).mean() < 0.6
