"""Step code of the retraining pipeline: one CLI per step (``python -m retrain_steps --help``).

The package's top level imports nothing heavy: the Airflow control plane and the serving
image import :mod:`retrain_steps.artifacts`, :mod:`retrain_steps.registry` and
:mod:`retrain_steps.digits_profile` without torch.
"""

__version__ = "0.1.0"
