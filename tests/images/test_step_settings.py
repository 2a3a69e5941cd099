"""The steps' settings (retrain_steps.settings): read once by the step CLI, checked, a bad variable named (exit 2);
no module of the step or serving code reads the environment at import."""

from __future__ import annotations

import pytest
from retrain_steps import settings
from retrain_steps.settings import SettingError, StepSettings

from tests.conftest import ROOT, run_cli
from tests.plugins.test_config import _module_level_environ_reads


def test_defaults_and_values_from_the_environment():
    assert StepSettings.from_environment({}) == StepSettings()
    read = StepSettings.from_environment({"RETRAIN_MAX_IMAGES": " 3 ", "RETRAIN_MAX_READ_BYTES": "10000",
                                          "RETRAIN_MAX_STORED_SIDE": ""})
    assert (read.max_images, read.max_read_bytes, read.max_stored_side) == (3, 10000, 224)


@pytest.mark.parametrize(("environ", "message"), [
    ({"RETRAIN_MAX_IMAGES": "lots"}, "RETRAIN_MAX_IMAGES='lots' is not a whole number"),
    ({"RETRAIN_MAX_READ_BYTES": "1.5e9"}, "RETRAIN_MAX_READ_BYTES='1.5e9' is not a whole number"),
    ({"RETRAIN_MAX_DATASET_BYTES": "0"}, "RETRAIN_MAX_DATASET_BYTES='0' is out of range"),
    ({"RETRAIN_MAX_IMAGE_PIXELS": "-5"}, "RETRAIN_MAX_IMAGE_PIXELS='-5' is out of range"),
])
def test_a_bad_value_names_its_variable(environ, message):
    with pytest.raises(SettingError, match=message.replace(".", r"\.")):
        StepSettings.from_environment(environ)


def test_the_step_cli_refuses_a_bad_setting_with_exit_2_naming_it(tmp_path):
    done = run_cli("retrain_steps", "export-default", "--output", f"file://{tmp_path}/d.npz",
                   env={"RETRAIN_MAX_IMAGES": "lots"}, check=False)
    assert done.returncode == 2 and "RETRAIN_MAX_IMAGES='lots' is not a whole number" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "d.npz").exists()


def test_the_limits_in_force_are_the_configured_ones():
    import io

    from PIL import Image
    from retrain_steps import images
    from retrain_steps.errors import InputError

    buffer = io.BytesIO()
    Image.new("L", (10, 10)).save(buffer, format="PNG")
    try:
        settings.configure(StepSettings(max_image_pixels=99))
        with pytest.raises(InputError, match="10x10 pixels, over the pixel limit of 99"):
            images.open_image(buffer.getvalue())
    finally:
        settings.configure(StepSettings())
    assert images.open_image(buffer.getvalue()).size == (10, 10)


def test_no_step_or_serving_module_reads_the_environment_at_import():
    sources = sorted([*(ROOT / "images" / "steps" / "src").rglob("*.py"), *(ROOT / "serving").glob("*.py")])
    reads = {str(p.relative_to(ROOT)): _module_level_environ_reads(p) for p in sources}
    assert {path: lines for path, lines in reads.items() if lines} == {}
