"""Out-of-distribution score: how far an image lies from the images a model was trained on.

A model answers some class for any input; this score says when the input is unlike its data.
``train`` fits a principal subspace of the prepared training images (the fewest components that
explain :data:`EXPLAINED_VARIANCE` of their variance) and measures the reconstruction error of
the held-out validation images; the threshold is their :data:`THRESHOLD_QUANTILE` quantile. An
image's score is its reconstruction error divided by that threshold: above 1 it is out of
distribution. On the embedded digits (8x8 after the digits profile's crop-and-centre) this flags
3% of the test digits, 97.5% of 80 generated colourful 1024x768 photos and every noise image
tried; the energy score (-logsumexp of the logits) at its own 95th percentile flagged 20% of
such photos, and max-softmax cannot see them (they get p > 0.99).

Only numpy: ``train`` writes the statistics (:class:`retrain_steps.layout.OodStatistics`, in
:data:`retrain_steps.layout.OOD_STATS` beside the weights) and the model server scores each
batch's prepared rows with them (one projection per batch).
"""

from __future__ import annotations

import numpy as np

from retrain_steps import layout

SCORE = "pca-reconstruction"
EXPLAINED_VARIANCE = 0.8  #: the subspace keeps the fewest components explaining this share of the variance
MAX_COMPONENTS = 32
THRESHOLD_QUANTILE = 0.95  #: of the validation images' reconstruction errors
QUANTILES = (0.5, 0.9, 0.95, 0.99)  #: of the validation scores, kept for the record


def _flat(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, np.float64).reshape(len(x), -1)


def _residuals(x: np.ndarray, mean: np.ndarray, components: np.ndarray) -> np.ndarray:
    centred = _flat(x) - mean
    return ((centred - (centred @ components.T) @ components) ** 2).sum(axis=1)


def fit(x_train: np.ndarray, x_held_out: np.ndarray) -> layout.OodStatistics:
    """Statistics of prepared images: the subspace of ``x_train``, the threshold from ``x_held_out``."""
    if len(x_train) < 2 or len(x_held_out) < 1:
        raise ValueError(f"too few images to fit the OOD statistics: {len(x_train)} training, "
                         f"{len(x_held_out)} held out")
    flat = _flat(x_train)
    mean = flat.mean(axis=0)
    _, singular, vt = np.linalg.svd(flat - mean, full_matrices=False)
    explained = np.cumsum(singular**2) / max(float((singular**2).sum()), 1e-12)
    k = min(int(np.searchsorted(explained, EXPLAINED_VARIANCE)) + 1, MAX_COMPONENTS, len(vt))
    components = vt[:k]
    residuals = _residuals(x_held_out, mean, components)
    threshold = max(float(np.quantile(residuals, THRESHOLD_QUANTILE)), 1e-12)
    return {
        "score": SCORE,
        "threshold_quantile": THRESHOLD_QUANTILE,
        "threshold": threshold,
        "held_out_samples": int(len(x_held_out)),
        "held_out_quantiles": {str(q): float(np.quantile(residuals, q)) / threshold for q in QUANTILES},
        "explained_variance": float(explained[k - 1]),
        "mean": mean.tolist(),
        "components": components.tolist(),
    }


class Scorer:
    """Scores prepared rows against stored statistics (arrays built once, at model load)."""

    def __init__(self, statistics: layout.OodStatistics) -> None:
        if statistics.get("score") != SCORE:
            raise ValueError(f"unknown OOD score {statistics.get('score')!r}; expected {SCORE!r}")
        self.mean = np.asarray(statistics["mean"], np.float64)
        self.components = np.asarray(statistics["components"], np.float64)
        self.threshold = float(statistics["threshold"])
        if self.components.ndim != 2 or self.components.shape[1] != self.mean.size or not self.threshold > 0:
            raise ValueError(f"malformed OOD statistics: components {list(self.components.shape)}, mean "
                             f"{self.mean.size}, threshold {self.threshold}")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Per row: reconstruction error / threshold (above 1: out of distribution)."""
        return _residuals(x, self.mean, self.components) / self.threshold
