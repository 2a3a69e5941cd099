"""The Params of the retraining DAGs: the form shown by "Trigger DAG" in the Airflow UI."""

from __future__ import annotations

from airflow.sdk import Param

FRAMEWORKS = ["torch", "tensorflow"]


def retrain_params() -> dict[str, Param]:
    """Params shared by ``retrain`` and ``retrain_kubeflow``; each validated on trigger."""
    return {
        "dataset_uri": Param(
            None,
            type=["null", "string"],
            title="Dataset URI",
            description="An .npz with 'images' (n, 8, 8) on 0..16 and 'target' (n,): file://, s3:// or https://. "
            "Empty: the configured default dataset.",
            pattern=r"^(file|s3|https?)://\S+$",
            section="Data",
        ),
        "dataset_sha256": Param(
            None,
            type=["null", "string"],
            title="Dataset sha256",
            description="Expected sha256 of the dataset object; the run fails if it differs. Empty: not checked.",
            pattern="^[0-9a-f]{64}$",
            section="Data",
        ),
        "learning_rates": Param(
            [0.001, 0.003],
            type="array",
            items={"type": "number", "exclusiveMinimum": 0, "maximum": 1},
            minItems=1,
            maxItems=8,
            title="Candidate learning rates",
            description="One candidate model is trained per learning rate; the best on validation accuracy is kept.",
            section="Training",
        ),
        "epochs": Param(20, type="integer", minimum=1, maximum=500, title="Epochs", section="Training"),
        "batch_size": Param(64, type="integer", minimum=1, maximum=4096, title="Batch size", section="Training"),
        "framework": Param(
            "torch",
            type="string",
            enum=FRAMEWORKS,
            values_display={"torch": "PyTorch", "tensorflow": "TensorFlow / Keras"},
            title="Framework",
            section="Training",
        ),
        "seed": Param(0, type="integer", minimum=0, title="Random seed", section="Training"),
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
            False,
            type="boolean",
            title="Augment training images",
            description="Shift each training image by up to one pixel at random, every epoch (validation and test "
            "images are left as they are).",
            section="Training",
        ),
        "warm_start": Param(
            False,
            type="boolean",
            title="Warm start from production",
            description="Fine-tune every candidate from the model in production instead of starting fresh. "
            "Refused when nothing is in production or its framework differs from the one chosen here.",
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
