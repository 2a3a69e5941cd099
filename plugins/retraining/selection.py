"""Picking the best candidate and deciding whether it replaces production: pure functions."""

from __future__ import annotations

from dataclasses import dataclass


class SelectionError(ValueError):
    """No candidate can be selected; the message says why."""


def select_best(candidates: list[dict]) -> dict:
    """Return the candidate with the highest validation accuracy.

    Ties go to the lower validation loss, then to the earlier candidate (stable). Candidates
    missing ``val_accuracy`` are skipped; if none is left, :class:`SelectionError` is raised.
    Selection uses validation metrics only, so the test set stays an unbiased estimate.
    """
    usable = [c for c in candidates if _measured(c.get("val_accuracy"))]
    if not usable:
        raise SelectionError(f"no candidate has a val_accuracy metric ({len(candidates)} candidates)")
    order = sorted(range(len(usable)), key=lambda i: (-usable[i]["val_accuracy"], _loss(usable[i]), i))
    return usable[order[0]]


def _measured(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _loss(candidate: dict) -> float:
    loss = candidate.get("val_loss")
    return loss if _measured(loss) else float("inf")


def why_not_best(candidate: dict, best: dict) -> str:
    """Why :func:`select_best` preferred ``best`` to ``candidate``, naming what decided: the validation
    accuracy, the validation loss (a tie on accuracy), or the order (a tie on both)."""
    winner = f"candidate #{best.get('index', '?')}"
    accuracy, best_accuracy = candidate.get("val_accuracy"), best.get("val_accuracy")
    if not _measured(accuracy):
        return "it has no validation accuracy"
    if not _measured(best_accuracy):
        return f"{winner} was selected (its validation accuracy is not recorded)"
    if accuracy != best_accuracy:
        return f"lower validation accuracy ({accuracy:.4f} < {best_accuracy:.4f} of {winner})"
    loss, best_loss = _loss(candidate), _loss(best)
    if loss != best_loss:
        shown = "none" if loss == float("inf") else f"{loss:.4f}"
        return (f"same validation accuracy ({accuracy:.4f}) as {winner}, which has the lower validation loss "
                f"({best_loss:.4f} < {shown})")
    return f"same validation accuracy and loss as {winner}, which comes first"


@dataclass(frozen=True)
class GateDecision:
    deploy: bool
    reason: str


def gate(candidate: dict, production: dict | None, *, min_accuracy: float, margin: float) -> GateDecision:
    """Deploy ``candidate`` only if it meets ``min_accuracy`` and beats production by more than ``margin``.

    ``production`` is ``{"version", "test_accuracy"}`` with the production model's accuracy measured
    on the candidate's own test split (the ``evaluate_production`` step), so both numbers come from
    the same data. With nothing in production, or a production model that predicts other classes
    (``incomparable``: the dataset's classes changed), meeting the minimum is enough.
    """
    accuracy = candidate.get("test_accuracy")
    if not isinstance(accuracy, (int, float)):
        return GateDecision(False, "the candidate has no test_accuracy metric")
    if accuracy < min_accuracy:
        return GateDecision(False, f"test accuracy {accuracy:.4f} is below the minimum {min_accuracy:.4f}")
    if production is None:
        return GateDecision(True, f"no model in production; test accuracy {accuracy:.4f} meets the minimum")
    if candidate.get("version") and candidate.get("version") == production.get("version"):
        return GateDecision(False, f"version {production['version']} is already in production")
    if production.get("incomparable"):
        return GateDecision(True, f"production {production.get('version')} cannot be compared "
                                  f"({production['incomparable']}); test accuracy {accuracy:.4f} meets the minimum")
    current = production.get("test_accuracy")
    if not isinstance(current, (int, float)):
        return GateDecision(False, f"production {production.get('version')} was not evaluated on this run's test split")
    if accuracy - current > margin:
        return GateDecision(
            True, f"test accuracy {accuracy:.4f} beats production {current:.4f} (same test split) by more than {margin}"
        )
    return GateDecision(
        False, f"test accuracy {accuracy:.4f} does not beat production {current:.4f} (same test split) by more than {margin}"
    )
