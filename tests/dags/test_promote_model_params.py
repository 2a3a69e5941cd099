"""promote_model's trigger form refuses what the registry would refuse: an over-long reason."""

from __future__ import annotations

import pytest
from retrain_steps import registry

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def reason():
    from airflow.models import DagBag

    dagbag = DagBag(dag_folder=str(ROOT / "dags" / "promote_model.py"))
    assert dagbag.import_errors == {}
    return dagbag.dags["promote_model"].params.get_param("reason")


def test_a_reason_over_the_registry_limit_is_refused_by_the_form(reason):
    from airflow.sdk.exceptions import ParamValidationError

    assert reason.resolve("x" * registry.MAX_REASON_CHARS) == "x" * registry.MAX_REASON_CHARS
    with pytest.raises(ParamValidationError, match="is too long"):
        reason.resolve("x" * (registry.MAX_REASON_CHARS + 1))
