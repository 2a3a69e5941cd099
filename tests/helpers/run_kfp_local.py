"""Run the retraining pipeline for real with kfp.local (SubprocessRunner), in the kfp environment.

Usage: .venv-kfp/bin/python tests/helpers/run_kfp_local.py ARGS.json PIPELINE_ROOT
ARGS.json holds the pipeline arguments (download_argv, preprocess_argv, candidates).
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "images" / "steps"))

from kfp import local  # noqa: E402

from pipelines.retrain import retrain_pipeline  # noqa: E402

arguments = json.loads(Path(sys.argv[1]).read_text())
local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=sys.argv[2], raise_on_error=True)
retrain_pipeline(**arguments)
print("KFP_LOCAL_OK")
