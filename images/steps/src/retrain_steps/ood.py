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

Bounded for large inputs: a flattened image longer than :data:`MAX_FEATURES` is averaged over runs of
``pool`` consecutive values first (stored with the statistics, so serving pools the same way), and at
most :data:`MAX_FIT_ROWS` training images fit the subspace: at 224x224x3 the statistics stay ~1 MB.

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
MAX_FEATURES = 3072  #: longer flattened images are averaged down to at most this many values (32x32x3)
MAX_FIT_ROWS = 4000  #: training images the subspace is fitted on, at most (a seeded sample)
CHUNK_ROWS = 256  #: rows flattened and pooled at a time (a 224x224x3 batch in float64 is 300 MB)


def pool_for(features: int) -> int:
    """How many consecutive flattened values one feature averages for an image of ``features`` values."""
    return max(1, -(-features // MAX_FEATURES))


def _flat(x: np.ndarray, pool: int = 1) -> np.ndarray:
    """Rows flattened to float64, each run of ``pool`` consecutive values averaged (zero-padded at the end)."""
    rows = []
    for start in range(0, len(x), CHUNK_ROWS):
        chunk = np.asarray(x[start:start + CHUNK_ROWS], np.float64).reshape(min(CHUNK_ROWS, len(x) - start), -1)
        if pool > 1:
            chunk = np.pad(chunk, ((0, 0), (0, -chunk.shape[1] % pool))).reshape(len(chunk), -1, pool).mean(axis=2)
        rows.append(chunk)
    return np.concatenate(rows) if rows else np.zeros((0, 0))


def _residuals(x: np.ndarray, mean: np.ndarray, components: np.ndarray, pool: int = 1) -> np.ndarray:
    centred = _flat(x, pool) - mean
    return ((centred - (centred @ components.T) @ components) ** 2).sum(axis=1)


def fit(x_train: np.ndarray, x_held_out: np.ndarray) -> layout.OodStatistics:
    """Statistics of prepared images: the subspace of ``x_train``, the threshold from ``x_held_out``."""
    if len(x_train) < 2 or len(x_held_out) < 1:
        raise ValueError(f"too few images to fit the OOD statistics: {len(x_train)} training, "
                         f"{len(x_held_out)} held out")
    pool = pool_for(int(np.prod(np.shape(x_train)[1:])))
    if len(x_train) > MAX_FIT_ROWS:
        x_train = x_train[np.sort(np.random.default_rng(0).choice(len(x_train), MAX_FIT_ROWS, replace=False))]
    flat = _flat(x_train, pool)
    mean = flat.mean(axis=0)
    _, singular, vt = np.linalg.svd(flat - mean, full_matrices=False)
    explained = np.cumsum(singular**2) / max(float((singular**2).sum()), 1e-12)
    k = min(int(np.searchsorted(explained, EXPLAINED_VARIANCE)) + 1, MAX_COMPONENTS, len(vt))
    components = vt[:k]
    residuals = _residuals(x_held_out, mean, components, pool)
    threshold = max(float(np.quantile(residuals, THRESHOLD_QUANTILE)), 1e-12)
    return {
        "score": SCORE,
        "threshold_quantile": THRESHOLD_QUANTILE,
        "threshold": threshold,
        "held_out_samples": int(len(x_held_out)),
        "held_out_quantiles": {str(q): float(np.quantile(residuals, q)) / threshold for q in QUANTILES},
        "explained_variance": float(explained[k - 1]),
        "pool": pool,
        "mean": _compact(mean),
        "components": [_compact(row) for row in components],
    }


def _compact(values: np.ndarray) -> list[float]:
    """Values at float32's precision (7 significant digits): the JSON is a third of full doubles."""
    return [float(f"{v:.7g}") for v in values.tolist()]


class Scorer:
    """Scores prepared rows against stored statistics (arrays built once, at model load)."""

    def __init__(self, statistics: layout.OodStatistics) -> None:
        if statistics.get("score") != SCORE:
            raise ValueError(f"unknown OOD score {statistics.get('score')!r}; expected {SCORE!r}")
        self.mean = np.asarray(statistics["mean"], np.float64)
        self.components = np.asarray(statistics["components"], np.float64)
        self.threshold = float(statistics["threshold"])
        self.pool = statistics.get("pool", 1)  # statistics from before pooling: 1
        if (self.components.ndim != 2 or self.components.shape[1] != self.mean.size or not self.threshold > 0
                or not isinstance(self.pool, int) or self.pool < 1 or self.mean.size > MAX_FEATURES):
            raise ValueError(f"malformed OOD statistics: components {list(self.components.shape)}, mean "
                             f"{self.mean.size} (at most {MAX_FEATURES}), pool {self.pool!r}, threshold {self.threshold}")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Per row: reconstruction error / threshold (above 1: out of distribution)."""
        return _residuals(x, self.mean, self.components, self.pool) / self.threshold
