"""The code a bento carries (``serving.package``: the serving modules and the ``retrain_steps`` modules they import)
is enough for its service to import and to load a model of every architecture, with nothing else on the path
first: the chart's pod runs the bento's copy, not the image's package (a module left out broke it once)."""

from __future__ import annotations

import shutil
import subprocess

from serving import package
from tests.conftest import env_python

LOAD_EVERY_ARCHITECTURE = """
import json, sys, tempfile
from pathlib import Path
import retrain_steps, serving.service  # noqa: F401 (the service module imports as the server does)
assert retrain_steps.__file__.startswith(sys.argv[1]), retrain_steps.__file__
import numpy as np, torch
from retrain_steps import architectures, models
from retrain_steps.input_spec import InputSpec
spec = InputSpec(height=8, width=8, channels=1, class_names=("a", "b", "c"), mean=(0.0,), std=(1.0,))
for name, stem in (("cnn", None), ("resnet18", None), ("resnet18", "small")):  # None: a model.json from before stems
    folder = Path(tempfile.mkdtemp())
    module = models.torch_cnn(spec) if name == "cnn" else architectures.build(name, 1, 8, 8, 3, stem or "imagenet")
    torch.save(module.state_dict(), folder / "model.pt")
    (folder / "model.json").write_text(json.dumps({"framework": "torch", "file": "model.pt", "architecture": name,
                                                   "input_spec": spec.to_dict(), **({"stem": stem} if stem else {})}))
    predict = models.load_predictor(folder, "torch", spec)
    assert predict(np.zeros((2, 1, 8, 8), np.float32)).shape == (2, 3), (name, stem)
print("ok")
"""


def test_a_bentos_code_imports_the_service_and_loads_every_architecture(tmp_path):
    assert {"architectures.py", "models.py", "registry.py"} <= set(package.STEPS_MODULES)
    for name, source, modules in (("serving", package.SERVING_DIR, package.SERVING_MODULES),
                                  ("retrain_steps", package.STEPS_DIR, package.STEPS_MODULES)):
        (tmp_path / name).mkdir()
        for module in modules:
            shutil.copy2(source / module, tmp_path / name / module)
    result = subprocess.run([env_python(".venv-serving"), "-c", LOAD_EVERY_ARCHITECTURE, str(tmp_path)],
                            cwd=tmp_path, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stdout + result.stderr
