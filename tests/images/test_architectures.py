"""Standard architectures from torchvision: built by name for any input (grayscale or RGB) and class count."""

from __future__ import annotations

import pytest

from retrain_steps import architectures
from retrain_steps.errors import InputError


@pytest.mark.parametrize("name", architectures.ARCHITECTURES)
def test_each_architecture_takes_grayscale_at_its_smallest_size(name):
    import torch

    side = architectures.MIN_SIDE[name]
    model = architectures.build(name, 1, side, side + 8, 7).eval()
    assert architectures.first_conv(model)[2].in_channels == 1
    with torch.inference_mode():
        assert model(torch.rand(2, 1, side, side + 8)).shape == (2, 7)


def test_resnet18_classifies_224_pixel_rgb_images():
    import torch

    model = architectures.build("resnet18", 3, 224, 224, 10).eval()
    with torch.inference_mode():
        assert model(torch.rand(1, 3, 224, 224)).shape == (1, 10)


def test_a_grayscale_stem_sees_a_grey_image_as_the_rgb_stem_saw_it():
    import torch

    model = architectures.build("resnet18", 3, 64, 64, 4).eval()
    grey = torch.rand(2, 1, 64, 64)
    with torch.inference_mode():
        rgb_logits = model(grey.expand(-1, 3, -1, -1))
        architectures.adapt_first_conv(model, 1)
        assert torch.allclose(model(grey), rgb_logits, atol=1e-5)


@pytest.mark.parametrize(("args", "message"), [
    (("vgg16", 3, 64, 64, 10), r"unknown architecture 'vgg16'; expected one of \['resnet18'"),
    (("resnet18", 4, 64, 64, 10), "1 \\(grayscale\\) or 3 \\(RGB\\) channels, got 4"),
    (("convnext_tiny", 1, 28, 28, 10), "convnext_tiny needs images of at least 32x32 pixels, got 28x28"),
    (("resnet18", 1, 28, 7, 10), "at least 8x8 pixels, got 28x7"),
    (("resnet50", 3, 64, 64, 1), "at least 2 classes, got 1"),
])
def test_bad_requests_are_input_errors_naming_the_value(args, message):
    with pytest.raises(InputError, match=message):
        architectures.build(*args)
