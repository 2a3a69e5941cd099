"""Pretrained weights files the tests write themselves (never fetched from a hub)."""

from __future__ import annotations

from pathlib import Path

from retrain_steps import artifacts


def write_resnet18_checkpoint(store: str, name: str = "resnet18-test.pth") -> tuple[str, str]:
    """A torchvision ResNet-18 state_dict (seeded random weights, ImageNet's 1000-class head, an RGB stem) saved with
    ``torch.save`` under ``weights/`` of a ``file://`` artifact store, as the platform team would put one there;
    ``(its path inside the store, its sha256)``."""
    import torch
    from torchvision.models import resnet18

    path = Path(store.removeprefix("file://")) / "weights" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    partial = path.with_name(f".{name}.partial")
    torch.save(resnet18(weights=None).state_dict(), partial)
    partial.rename(path)
    return f"weights/{name}", artifacts.sha256(path.read_bytes())
