"""The trigger form of the retraining DAGs: what each field accepts and refuses, as the API validates a trigger."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from retraining.params import LEARNING_RATE, learning_rates, retrain_params

SHA256 = "ab" * 32

ACCEPTED = [
    ("dataset_uri", None), ("dataset_uri", "file:///srv/digits.npz"), ("dataset_uri", "s3://bucket/prefix/"),
    ("dataset_uri", "https://example.com/d.zip"), ("dataset_uri", "http://example.com/export.json"),
    ("dataset_sha256", None), ("dataset_sha256", SHA256),
    ("image_size", 0), ("image_size", 28), ("image_size", 256),
    ("channels", "auto"), ("channels", "1"), ("channels", "3"),
    ("preprocessing", "auto"), ("preprocessing", "image"), ("preprocessing", "digits"),
    ("learning_rates", [0.001]), ("learning_rates", [1]), ("learning_rates", ["0.002", "0.02"]),
    ("learning_rates", [" 1e-3 ", "5E-04", ".5", "1", "1.0"]), ("learning_rates", [0.01, "0.1"]),
    ("learning_rates", [0.1] * 8),
    ("epochs", 1), ("epochs", 500), ("batch_size", 1), ("batch_size", 4096),
    ("framework", "torch"), ("framework", "tensorflow"),
    ("seed", 0), ("seed", 2**31), ("patience", 0), ("patience", 100),
    ("augment", True), ("warm_start", True), ("gpus", 0), ("gpus", 1),
    ("min_accuracy", 0), ("min_accuracy", 1), ("margin", 0.5),
]
REFUSED = [
    ("dataset_uri", "ftp://example.com/d.npz"), ("dataset_uri", "/srv/digits.npz"), ("dataset_uri", ""),
    ("dataset_uri", "s3://bucket/with space/"),
    ("dataset_sha256", "xyz"), ("dataset_sha256", SHA256.upper()), ("dataset_sha256", SHA256[:-1]),
    ("image_size", -1), ("image_size", 257), ("image_size", 1.5), ("image_size", "28"),
    ("channels", 1), ("channels", "2"), ("preprocessing", "resize"),
    ("learning_rates", []), ("learning_rates", [-0.1]), ("learning_rates", [0]), ("learning_rates", [1.5]),
    ("learning_rates", ["0"]), ("learning_rates", ["2"]), ("learning_rates", ["0.01", "fast"]),
    ("learning_rates", ["0.01 0.02"]), ("learning_rates", ["1e3"]), ("learning_rates", [0.1] * 9),
    ("learning_rates", ["9e-0"]), ("learning_rates", ["20e-1"]), ("learning_rates", ["0e-5"]),
    ("learning_rates", ["1.2.3e-4"]),
    ("epochs", 0), ("epochs", 501), ("batch_size", 0), ("batch_size", 4097), ("framework", "jax"),
    ("seed", -1), ("patience", 101), ("augment", "yes"), ("warm_start", 1), ("gpus", 2), ("gpus", -1),
    ("min_accuracy", 1.5), ("min_accuracy", -0.1), ("margin", 2),
]


@pytest.fixture(scope="module")
def form():
    """The form as the API server holds it: the serialized DAG's params (what a trigger's conf is merged into)."""
    from airflow.serialization.serialized_objects import DagSerialization

    from airflow.sdk import DAG

    dag = DAG("form", schedule=None, params=retrain_params())
    return DagSerialization.from_dict(DagSerialization.to_dict(dag)).params


def trigger(form, conf: dict) -> dict:
    """Validate a trigger's conf the way ``create_dagrun`` does; return the run's params."""
    return form.deep_merge(conf).validate()


def test_the_defaults_are_a_valid_run(form):
    defaults = trigger(form, {})
    assert defaults["learning_rates"] == [0.001, 0.003] and defaults["framework"] == "torch"
    assert defaults["dataset_uri"] is None and defaults["gpus"] == 1 and defaults["min_accuracy"] == 0.95
    assert learning_rates(defaults["learning_rates"]) == [0.001, 0.003]


@pytest.mark.parametrize(("field", "value"), ACCEPTED, ids=lambda v: repr(v)[:40])
def test_the_form_accepts(form, field, value):
    assert trigger(form, {field: value})[field] == value


@pytest.mark.parametrize(("field", "value"), REFUSED, ids=lambda v: repr(v)[:40])
def test_the_form_refuses_naming_the_field(form, field, value):
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError, match=f"^Invalid input for param {field}: "):
        trigger(form, {field: value})


def test_every_field_is_titled_described_and_in_a_section():
    params = retrain_params()
    assert [name for name, p in params.items() if not p.schema.get("title")] == []
    assert [name for name, p in params.items() if not p.description] == [], "every field says what it does"
    assert {p.schema.get("section") for p in params.values()} == {"Model", "Data", "Training", "Deployment"}


def test_the_dataset_uri_help_says_how_to_allow_a_location_the_plan_accepts():
    """The form tells how to allow a location outside the store, with the command the plan then honours."""
    import json
    import re
    import shlex

    from retraining.config import uri_prefixes

    help_text = retrain_params()["dataset_uri"].description
    command = re.search(r"airflow variables set retrain_dataset_allowed '[^']*'", help_text)
    assert command and "no restart" in help_text, help_text
    prefixes = json.loads(shlex.split(command[0])[-1])
    assert uri_prefixes(json.dumps(prefixes), "Variable") == ("http://127.0.0.1:8000/",)


def test_learning_rates_are_a_text_area_one_per_line():
    """No "type" in items: the UI renders a one-per-line text area, not the JSON editor that garbles typing."""
    assert "type" not in retrain_params()["learning_rates"].schema["items"]


def test_learning_rates_parses_numbers_and_typed_strings():
    assert learning_rates([0.001, "0.002", " 1e-2 ", "5E-04", ".5", "1", 1]) == [0.001, 0.002, 0.01, 0.0005, 0.5, 1, 1]


@pytest.mark.parametrize("values", [[0], ["0"], [-0.1], ["2"], [1.5], [0.01, "1e3"]])
def test_learning_rates_refuses_what_is_outside_0_1(values):
    with pytest.raises(ValueError, match=r"learning rates must be in \(0, 1\]"):
        learning_rates(values)


@settings(max_examples=300, deadline=None, database=None)
@given(st.from_regex(LEARNING_RATE, fullmatch=True))
def test_every_string_the_form_accepts_is_a_learning_rate_the_run_accepts(typed):
    """The form is the only place a bad rate is refused before the run: what it lets through must plan."""
    (rate,) = learning_rates([typed])
    assert 0 < rate <= 1
