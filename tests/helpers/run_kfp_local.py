"""Run the retraining pipeline for real with kfp.local, in the kfp environment.

Usage: .venv-kfp/bin/python tests/helpers/run_kfp_local.py ARGS.json PIPELINE_ROOT [DOCKER.json]
ARGS.json holds the pipeline arguments (download_argv, preprocess_argv, candidates, gpus).
Without DOCKER.json the components run as subprocesses here (SubprocessRunner); with it, in
their images through the Docker API (DockerRunner; DOCKER_HOST may name podman's socket), with
DOCKER.json's ``environment`` (what the Secret gives them on a cluster).
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "images" / "steps"))

from kfp import local  # noqa: E402

from pipelines.retrain import retrain_pipeline  # noqa: E402

arguments = json.loads(Path(sys.argv[1]).read_text())
if len(sys.argv) > 3:
    docker = json.loads(Path(sys.argv[3]).read_text())
    # the kubelet runs a container's `command` in place of the image's ENTRYPOINT; Docker's API
    # appends it to the ENTRYPOINT instead, so reset that to a plain exec
    runner = local.DockerRunner(environment=docker["environment"], entrypoint=["/usr/bin/env"])
else:
    runner = local.SubprocessRunner(use_venv=False)
local.init(runner=runner, pipeline_root=sys.argv[2], raise_on_error=True)
retrain_pipeline(**arguments)
print("KFP_LOCAL_OK")
