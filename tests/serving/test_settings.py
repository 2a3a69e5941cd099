"""The server's settings: defaults, and a bad value refused with its variable named."""

from __future__ import annotations

import pytest

from serving.settings import ServerSettings, SettingError


def test_defaults_and_values_from_the_environment():
    assert ServerSettings.from_environment({}) == ServerSettings()
    settings = ServerSettings.from_environment({"DIGITS_MAX_BATCH_ROWS": "8", "DIGITS_BATCH_WAIT_MS": "2.5",
                                                "DIGITS_DEVICE": "cpu", "DIGITS_WORKERS": " 2 ",
                                                "DIGITS_REGISTRY_URI": "s3://b/registry"})
    assert (settings.max_batch_rows, settings.batch_wait_ms, settings.device, settings.workers) == (8, 2.5, "cpu", 2)
    assert settings.registry_uri == "s3://b/registry" and settings.model == "digits"
    assert ServerSettings.from_environment({"DIGITS_MODEL": "shapes"}).model == "shapes"
    assert ServerSettings.from_environment({"DIGITS_CONFIDENCE_FLOOR": "0.9"}).confidence_floor == 0.9


@pytest.mark.parametrize(("environ", "message"), [
    ({"DIGITS_MAX_BATCH_ROWS": "lots"}, "DIGITS_MAX_BATCH_ROWS='lots' is not a whole number"),
    ({"DIGITS_MAX_BATCH_ROWS": "0"}, "DIGITS_MAX_BATCH_ROWS='0' is out of range"),
    ({"DIGITS_BATCH_WAIT_MS": "-1"}, "DIGITS_BATCH_WAIT_MS='-1' is out of range"),
    ({"DIGITS_WORKERS": "1.5"}, "DIGITS_WORKERS='1.5' is not a whole number"),
    ({"DIGITS_MAX_REQUEST_BYTES": "10"}, "DIGITS_MAX_REQUEST_BYTES='10' is out of range"),
    ({"DIGITS_CAPTURE_QUEUE": "0"}, "DIGITS_CAPTURE_QUEUE='0' is out of range"),
    ({"DIGITS_DEVICE": "gpu"}, "DIGITS_DEVICE='gpu': expected one of auto, cpu, cuda"),
    ({"DIGITS_CONFIDENCE_FLOOR": "1.5"}, "DIGITS_CONFIDENCE_FLOOR='1.5' is out of range"),
    ({"DIGITS_CONFIDENCE_FLOOR": "high"}, "DIGITS_CONFIDENCE_FLOOR='high' is not a number"),
    ({"DIGITS_MODEL": "../shapes"}, "DIGITS_MODEL='../shapes' is not a model name"),
])
def test_a_bad_value_names_its_variable(environ, message):
    with pytest.raises(SettingError, match=message.replace("(", r"\(").replace(".", r"\.")):
        ServerSettings.from_environment(environ)
