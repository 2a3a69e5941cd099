"""The trigger form's architecture and pretrained-weights fields (section Training): what each accepts and refuses
as the API validates a trigger, and that every architecture it offers is one the train step takes."""

from __future__ import annotations

import pytest
from retraining.params import ARCHITECTURE_NAMES, retrain_params

from tests.plugins.test_params import form, trigger  # noqa: F401 (form: the serialized form, a fixture)

SHA256 = "0123456789abcdef" * 4
ARCHITECTURES = ["auto", "cnn", "resnet18", "resnet50", "mobilenet_v3_small", "mobilenet_v3_large",
                 "efficientnet_b0", "convnext_tiny"]  # the contract's list (build/notes/contract18.md)

ACCEPTED = [
    *(("architecture", name) for name in ARCHITECTURES),
    ("pretrained_weights", ""), ("pretrained_weights", None), ("pretrained_weights", "weights/resnet18-imagenet.pth"),
    ("pretrained_weights", "resnet18.pth"), ("pretrained_weights", "s3://bucket/artifacts/weights/r18.pth"),
    ("pretrained_weights", "file:///srv/store/weights/r18.pth"),
    ("pretrained_sha256", ""), ("pretrained_sha256", None), ("pretrained_sha256", SHA256),
    ("flip", True), ("flip", False),
]
REFUSED = [
    ("architecture", "vgg16"), ("architecture", "ResNet18"), ("architecture", ""), ("architecture", None),
    ("pretrained_weights", "/etc/passwd"), ("pretrained_weights", "../weights.pth"),
    ("pretrained_weights", "https://download.pytorch.org/models/resnet18.pth"),  # never a hub
    ("pretrained_weights", "weights/resnet 18.pth"), ("pretrained_weights", "hf://timm/resnet18"),
    ("pretrained_weights", 5),
    ("pretrained_sha256", SHA256.upper()), ("pretrained_sha256", SHA256[:-1]), ("pretrained_sha256", "xyz"),
    ("flip", "yes"), ("flip", 1),
]


def test_the_defaults_train_as_before(form):
    """Automatic architecture, no pretrained weights, no flips (never right for digits)."""
    defaults = trigger(form, {})
    assert (defaults["architecture"], defaults["pretrained_weights"], defaults["pretrained_sha256"],
            defaults["flip"]) == ("auto", "", "", False)


def test_the_forms_defaults_augment_and_unticking_trains_on_the_images_as_they_are(form):
    """*Augment* is on by default (the README's Fashion-MNIST figures): a default trigger's candidates train with
    ``--augment`` (no flips); unticked, without it. Both parse with the real train CLI."""
    from retrain_steps.__main__ import build_parser
    from retraining import commands

    defaults = trigger(form, {})
    for params, augmented in ((defaults, True), (trigger(form, {"augment": False}), False)):
        for candidate in commands.candidates(params=params, run_id="r", artifact_store="s3://bucket/artifacts"):
            parsed = build_parser().parse_args(candidate["train"])
            assert (parsed.augment, parsed.flip) == (augmented, False), params


def test_the_form_accepts_and_refuses_naming_the_field(form):
    from airflow.sdk.exceptions import ParamValidationError

    for field, value in ACCEPTED:
        assert trigger(form, {field: value})[field] == value, (field, value)
    for field, value in REFUSED:
        with pytest.raises(ParamValidationError, match=f"^Invalid input for param {field}: "):
            trigger(form, {field: value})
            pytest.fail(f"the form accepted {field}={value!r}")


def test_the_architectures_are_the_contracts_each_with_a_name_in_the_training_section():
    params = retrain_params()
    schema = params["architecture"].schema
    assert schema["enum"] == ARCHITECTURES and list(schema["values_display"]) == ARCHITECTURES
    assert ARCHITECTURE_NAMES["resnet18"] == "ResNet-18" and "64 px" in ARCHITECTURE_NAMES["auto"]
    assert all(schema["values_display"][name] != name for name in ARCHITECTURES), "a human name for each"
    for name in ("architecture", "pretrained_weights", "pretrained_sha256", "flip"):
        assert params[name].schema["section"] == "Training", name
    names = list(params)
    assert names.index("framework") < names.index("architecture") < names.index("pretrained_weights") \
        < names.index("pretrained_sha256"), "the form reads: framework, architecture, its weights, their sha256"
    assert names.index("augment") + 1 == names.index("flip"), "flips next to the augmentation they belong to"


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_every_architecture_the_form_offers_parses_with_the_train_step(architecture):
    """The form's choices are the train CLI's: a run of each plans a train command the step accepts."""
    from retrain_steps.__main__ import build_parser
    from retraining import commands
    from retraining.pod_manifests import default_params

    params = default_params(architecture=architecture, learning_rates=[0.01])
    if architecture not in ("auto", "cnn"):
        params |= {"pretrained_weights": "weights/w.pth", "pretrained_sha256": SHA256, "augment": True, "flip": True}
    (candidate,) = commands.candidates(params=params, run_id="r", artifact_store="s3://bucket/artifacts")
    parsed = build_parser().parse_args(candidate["train"])
    assert parsed.architecture == architecture
    if architecture not in ("auto", "cnn"):
        assert (parsed.pretrained, parsed.pretrained_sha256, parsed.flip) == (
            "s3://bucket/artifacts/weights/w.pth", SHA256, True)

