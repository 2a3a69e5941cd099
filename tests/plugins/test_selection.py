"""select_best and gate as pure functions."""

from __future__ import annotations

import pytest
from retraining.selection import SelectionError, gate, select_best, why_not_best


def cand(index, val, loss=0.1, test=0.97, version=None):
    return {"index": index, "val_accuracy": val, "val_loss": loss, "test_accuracy": test, "version": version or f"v{index}"}


def test_highest_validation_accuracy_wins():
    assert select_best([cand(0, 0.95), cand(1, 0.99), cand(2, 0.97)])["index"] == 1


def test_ties_go_to_lower_loss_then_earlier_candidate():
    assert select_best([cand(0, 0.98, loss=0.2), cand(1, 0.98, loss=0.1)])["index"] == 1
    assert select_best([cand(0, 0.98), cand(1, 0.98)])["index"] == 0


def test_the_reason_names_what_decided():
    """Validation accuracy when it differs; validation loss when it broke the tie; the order when both tie."""
    lower = [cand(0, 0.97), cand(1, 0.98)]
    assert why_not_best(lower[0], select_best(lower)) == "lower validation accuracy (0.9700 < 0.9800 of candidate #1)"
    tied = [cand(0, 0.98, loss=0.2), cand(1, 0.98, loss=0.1)]
    reason = why_not_best(tied[0], select_best(tied))
    assert reason == ("same validation accuracy (0.9800) as candidate #1, which has the lower validation loss "
                      "(0.1000 < 0.2000)") and "lower validation accuracy" not in reason
    both = [cand(0, 0.98), cand(1, 0.98)]
    assert why_not_best(both[1], select_best(both)) == "same validation accuracy and loss as candidate #0, which comes first"
    assert why_not_best({"index": 2}, both[0]) == "it has no validation accuracy"
    no_loss = [cand(0, 0.98, loss=None), cand(1, 0.98)]
    assert select_best(no_loss)["index"] == 1, "a candidate without a loss loses a tie"
    assert "lower validation loss (0.1000 < none)" in why_not_best(no_loss[0], select_best(no_loss))
    unknown = why_not_best(cand(0, 0.9), {"index": 1})
    assert unknown == "candidate #1 was selected (its validation accuracy is not recorded)"


def test_selection_ignores_test_accuracy():
    assert select_best([cand(0, 0.99, test=0.90), cand(1, 0.98, test=0.99)])["index"] == 0


def test_candidates_without_metrics_are_skipped():
    assert select_best([{"index": 0}, cand(1, 0.5)])["index"] == 1
    with pytest.raises(SelectionError, match="no candidate has a val_accuracy"):
        select_best([{"index": 0}, {"index": 1, "val_accuracy": None}])
    with pytest.raises(SelectionError):
        select_best([])


def test_first_model_deploys_when_it_meets_the_minimum():
    decision = gate(cand(0, 0.99, test=0.96), None, min_accuracy=0.95, margin=0.0)
    assert decision.deploy and "no model in production" in decision.reason


def test_below_minimum_never_deploys():
    decision = gate(cand(0, 0.99, test=0.90), None, min_accuracy=0.95, margin=0.0)
    assert not decision.deploy and "below the minimum" in decision.reason


def test_must_beat_production_by_more_than_the_margin():
    production = {"version": "old", "test_accuracy": 0.97}
    assert gate(cand(0, 0.99, test=0.98), production, min_accuracy=0.9, margin=0.0).deploy
    assert not gate(cand(0, 0.99, test=0.97), production, min_accuracy=0.9, margin=0.0).deploy, "a tie does not deploy"
    worse = gate(cand(0, 0.99, test=0.96), production, min_accuracy=0.9, margin=0.0)
    assert not worse.deploy and "does not beat production" in worse.reason
    assert not gate(cand(0, 0.99, test=0.975), production, min_accuracy=0.9, margin=0.01).deploy
    assert gate(cand(0, 0.99, test=0.99), production, min_accuracy=0.9, margin=0.01).deploy


def test_same_version_is_not_redeployed():
    production = {"version": "v0", "test_accuracy": 0.5}
    decision = gate(cand(0, 0.99, test=0.99), production, min_accuracy=0.9, margin=0.0)
    assert not decision.deploy and "already in production" in decision.reason


def test_missing_metrics():
    assert not gate({"index": 0}, None, min_accuracy=0.5, margin=0).deploy
    unmeasured = gate(cand(0, 0.9, test=0.99), {"version": "x"}, min_accuracy=0.5, margin=0)
    assert not unmeasured.deploy and "not evaluated on this run's test split" in unmeasured.reason


def test_the_production_card_number_is_not_used():
    """Only production's accuracy on this run's split counts, not the figure on its card (another split)."""
    production = {"version": "old", "test_accuracy": 0.99, "metrics": {"test_accuracy": 0.90}}
    assert not gate(cand(0, 0.99, test=0.95), production, min_accuracy=0.5, margin=0).deploy


def test_a_production_model_of_other_classes_is_replaced_on_the_minimum_alone():
    production = {"version": "old", "test_accuracy": None, "incomparable": "it predicts classes ['0', '1']"}
    decision = gate({"test_accuracy": 0.9, "version": "new"}, production, min_accuracy=0.8, margin=0.0)
    assert decision.deploy and "cannot be compared" in decision.reason and "['0', '1']" in decision.reason
    assert not gate({"test_accuracy": 0.7, "version": "new"}, production, min_accuracy=0.8, margin=0.0).deploy
