"""The Params of the retraining DAGs: the form shown by "Trigger DAG" in the Airflow UI."""

from __future__ import annotations

from airflow.sdk import Param
from retrain_steps import layout
from retrain_steps.architectures import ARCHITECTURES

FRAMEWORKS = ["torch", "tensorflow"]
# the train step's --architecture: "auto" picks by input size, "cnn" is the small CNN family (Keras trains only it)
AUTO_ARCHITECTURE, CNN = "auto", "cnn"
_DISPLAY = {
    AUTO_ARCHITECTURE: "Automatic: small CNN under 64 px a side, ResNet-18 from 64 px",
    CNN: "Small CNN (PyTorch or Keras)",
    "resnet18": "ResNet-18",
    "resnet50": "ResNet-50",
    "mobilenet_v3_small": "MobileNetV3 Small",
    "mobilenet_v3_large": "MobileNetV3 Large",
    "efficientnet_b0": "EfficientNet-B0",
    "convnext_tiny": "ConvNeXt-Tiny (32 px a side or more)",
}
ARCHITECTURE_NAMES = {name: _DISPLAY.get(name, name) for name in (AUTO_ARCHITECTURE, CNN, *ARCHITECTURES)}
SHA256 = "^[0-9a-f]{64}$"
# a path inside the artifact store (no leading '/', no scheme) or a full file:// or s3:// URI; plan checks it lies in
# the store (commands.pretrained_uri)
WEIGHTS_LOCATION = r"^((file|s3)://\S+|[A-Za-z0-9_][^\s:]*)$"
# a number in (0, 1] as typed: 1, a fraction (.5, 0.001, 0.5e-3) or d[.ddd]e-N with N in 1..99; nothing a
# float parses as 0 or above 1 ("9e-0", "0e-5", "1e-400" were accepted by the form and refused by the run)
LEARNING_RATE = (r"^[ \t\r\n]*(1(\.0*)?|0?\.0{0,15}[1-9][0-9]*([eE]-0*[1-9][0-9]?)?"
                 r"|[1-9](\.[0-9]*)?[eE]-0*[1-9][0-9]?)[ \t\r\n]*$")


def learning_rates(values: list) -> list[float]:
    """The form's learning rates (numbers, or strings typed one per line) as floats in (0, 1]."""
    rates = [float(v) for v in values]
    bad = [v for v in rates if not 0 < v <= 1]
    if bad:
        raise ValueError(f"learning rates must be in (0, 1]: {bad}")
    return rates


MODEL_NAME = f"^{layout.MODEL_NAME.pattern}$"  # the registry's rule, as a JSON-schema pattern


def model_param(default: str, *, description: str) -> Param:
    """The form's model name (a registered model, MLflow's word): a DNS label, as the registry takes it."""
    return Param(default, type="string", pattern=MODEL_NAME, minLength=1, maxLength=40, title="Model",
                 description=description, section="Model")


def retrain_params(default_model: str = layout.DEFAULT_MODEL) -> dict[str, Param]:
    """Params shared by ``retrain`` and ``retrain_kubeflow``; each validated on trigger."""
    return {
        "model": model_param(
            default_model,
            description="The model this run trains: its versions, production and runs are its own (Browse → Models). "
            "A run's classes and input (size, channels, preprocessing) must be those of the model's production; "
            "for other data, name another model (lower case, digits and '-') and tick 'New model'.",
        ),
        "new_model": Param(
            False,
            type="boolean",
            title="New model",
            description="This run starts a model: refused if the model has a production version already "
            "(so a typo cannot fork a model).",
            section="Model",
        ),
        "dataset_uri": Param(
            None,
            type=["null", "string"],
            title="Dataset URI",
            description="An image folder (<class>/<images>: a file:// folder or an s3://bucket/prefix/ ending in /), "
            "a .zip or .tar.gz of one, an .npz with 'images' and 'target', or a Label Studio JSON export "
            "(file://, s3:// or https://). Empty: the configured default dataset. A run reads only the artifact "
            "store and the locations allowed (a Label Studio export's images too); to allow another, with no "
            "restart, set the Airflow Variable retrain_dataset_allowed to a JSON list of URI prefixes "
            "(Admin → Variables, or: airflow variables set retrain_dataset_allowed '[\"http://127.0.0.1:8000/\"]').",
            pattern=r"^(file|s3|https?)://\S+$",
            section="Data",
        ),
        "dataset_sha256": Param(
            None,
            type=["null", "string"],
            title="Dataset sha256",
            description="Expected sha256 of the dataset object; the run fails if it differs. Empty: not checked.",
            pattern=SHA256,
            section="Data",
        ),
        "image_size": Param(
            0,
            type="integer",
            minimum=0,
            maximum=256,
            title="Image size",
            description="Train on images resized to this many pixels a side (square); 0 keeps the dataset's own size. "
            "The model's input spec records it; the server resizes uploads to it.",
            section="Data",
        ),
        "channels": Param(
            "auto",
            type="string",
            enum=["auto", "1", "3"],
            values_display={"auto": "As the dataset", "1": "Grayscale", "3": "RGB"},
            title="Colour channels",
            description="Convert every image to grayscale or RGB; 'As the dataset' keeps its mode.",
            section="Data",
        ),
        "preprocessing": Param(
            "auto",
            type="string",
            enum=["auto", "image", "digits"],
            values_display={"auto": "As the dataset declares (else image)", "image": "Image: resize + normalise",
                            "digits": "Digits: crop and centre (8x8)"},
            title="Preprocessing profile",
            description="How images become model inputs: 'image' resizes and normalises with the train split's "
            "statistics; 'digits' crops and centres handwritten digits (the embedded default declares it).",
            section="Data",
        ),
        "learning_rates": Param(
            [0.001, 0.003],
            type="array",
            # items without a "type": the UI shows a plain text area, one value per line (with a typed
            # items schema it shows a JSON editor that rewrites the text while you type); the CLI and the
            # REST API may still send numbers
            items={"anyOf": [{"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                             {"type": "string", "pattern": LEARNING_RATE}]},
            minItems=1,
            maxItems=8,
            title="Candidate learning rates",
            description="One per line, each in (0, 1], e.g. 0.001. One candidate model is trained per learning rate; "
            "the best on validation accuracy is kept.",
            section="Training",
        ),
        "epochs": Param(20, type="integer", minimum=1, maximum=500, title="Epochs",
                        description="Passes over the training split per candidate (fewer with early stopping).",
                        section="Training"),
        "batch_size": Param(64, type="integer", minimum=1, maximum=4096, title="Batch size",
                            description="Training images per optimisation step.", section="Training"),
        "framework": Param(
            "torch",
            type="string",
            enum=FRAMEWORKS,
            values_display={"torch": "PyTorch", "tensorflow": "TensorFlow / Keras"},
            title="Framework",
            description="What trains the candidates; the model server loads either.",
            section="Training",
        ),
        "architecture": Param(
            AUTO_ARCHITECTURE,
            type="string",
            enum=list(ARCHITECTURE_NAMES),
            values_display=ARCHITECTURE_NAMES,
            title="Architecture",
            description="The network every candidate trains. Automatic: the small CNN for images under 64 px a "
            "side, ResNet-18 from 64 px. The standard ones are torchvision's (PyTorch only; Keras trains the small "
            "CNN); each takes grayscale or RGB images of any size from 8 px a side (ConvNeXt-Tiny from 32 px).",
            section="Training",
        ),
        "pretrained_weights": Param(
            "",
            type=["null", "string"],
            pattern=f"^$|{WEIGHTS_LOCATION}",
            maxLength=1024,
            title="Pretrained weights",
            description="Start every candidate from a weights file in the artifact store: a torchvision "
            "state_dict of the chosen architecture, as a path inside the store (weights/resnet18-imagenet.pth) or "
            "its full URI. The classifier head is re-initialised for this run's classes, then trained alone for a "
            "few epochs before the whole network is fine-tuned. Needs the file's sha256 below. Empty: random "
            "initial weights.",
            section="Training",
        ),
        "pretrained_sha256": Param(
            "",
            type=["null", "string"],
            pattern=f"^$|{SHA256}",
            title="Pretrained weights sha256",
            description="sha256 of the pretrained weights file (64 lower-case hex digits, e.g. from "
            "`sha256sum resnet18-imagenet.pth`); the run refuses a file that differs. Required with pretrained "
            "weights.",
            section="Training",
        ),
        "seed": Param(0, type="integer", minimum=0, title="Random seed",
                      description="Seeds the split, initial weights and shuffling: the same seed and data give the "
                      "same model.", section="Training"),
        "patience": Param(
            0,
            type="integer",
            minimum=0,
            maximum=100,
            title="Early stopping patience",
            description="Stop a candidate after this many epochs without a lower validation loss; 0 trains every epoch. "
            "The weights of the best validation epoch are kept either way.",
            section="Training",
        ),
        "augment": Param(
            True,
            type="boolean",
            title="Augment training images",
            description="Vary the training images at random, every epoch: the small CNN shifts each by up to one "
            "pixel; the standard architectures crop and rescale part of it (under 64 px a side: shift it by up to "
            "1/8 of a side instead), jitter its colours (RGB) and erase a patch (validation and test images are "
            "left as they are). On by default: it is what lets a model reach published accuracy (Fashion-MNIST: "
            "0.938 without, 0.943 with); untick to train on the images as they are.",
            section="Training",
        ),
        "flip": Param(
            False,
            type="boolean",
            title="Horizontal flips",
            description="Part of 'Augment training images' (tick both): also mirror half the training images "
            "left-right at random, every epoch. For photos of objects; never for digits or text (a mirrored 2 is "
            "no 2).",
            section="Training",
        ),
        "warm_start": Param(
            False,
            type="boolean",
            title="Warm start from production",
            description="Fine-tune every candidate from the model in production instead of starting fresh. "
            "Refused when nothing is in production, or its framework, input spec or classes differ from this run's.",
            section="Training",
        ),
        "gpus": Param(
            1,
            type="integer",
            minimum=0,
            maximum=1,
            title="GPUs per train pod",
            description="nvidia.com/gpu limit of each train pod (kubernetes and Kubeflow); 0 trains on CPU. "
            "A candidate trains on one GPU; candidates train in parallel, one pod each.",
            section="Training",
        ),
        "min_accuracy": Param(
            0.95,
            type="number",
            minimum=0,
            maximum=1,
            title="Minimum test accuracy to deploy",
            description="The best candidate is deployed only if its test accuracy reaches this, whatever production is.",
            section="Deployment",
        ),
        "margin": Param(
            0.0,
            type="number",
            minimum=0,
            maximum=1,
            title="Margin over production",
            description="Deploy only if the new model's test accuracy beats production by more than this.",
            section="Deployment",
        ),
    }
