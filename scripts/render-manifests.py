"""`make manifests`: write every pod of a kubernetes-backend run and the rendered chart to build/manifests/.

Params come from the DAG's defaults, overridden by environment variables GPUS, EPOCHS,
LEARNING_RATES (comma-separated) and FRAMEWORK (the Makefile passes its variables through);
PRODUCTION_VERSION adds the `evaluate-production` pod of a run with that version in production.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]

from retraining.config import settings  # noqa: E402
from retraining.pod_manifests import default_params, render_pods  # noqa: E402


def main() -> None:
    out = ROOT / "build" / "manifests"
    out.mkdir(parents=True, exist_ok=True)
    overrides = {}
    if os.environ.get("GPUS"):
        overrides["gpus"] = int(os.environ["GPUS"])
    if os.environ.get("EPOCHS"):
        overrides["epochs"] = int(os.environ["EPOCHS"])
    if os.environ.get("LEARNING_RATES"):
        overrides["learning_rates"] = [float(x) for x in os.environ["LEARNING_RATES"].split(",")]
    if os.environ.get("FRAMEWORK"):
        overrides["framework"] = os.environ["FRAMEWORK"]
    env = {**os.environ, "RETRAIN_BACKEND": "kubernetes"}
    deployment = settings(env)
    pods = render_pods(deployment, default_params(model=deployment.model, **overrides),
                       production_version=os.environ.get("PRODUCTION_VERSION") or None)
    for name, manifest in pods.items():
        (out / f"{name}.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    helm = os.environ.get("HELM", "helm")
    chart = subprocess.run([helm, "template", "serving", str(ROOT / "charts" / "serving"), "--namespace", "serving"],
                           check=True, capture_output=True, text=True).stdout
    (out / "serving-chart.yaml").write_text(chart)
    print(f"wrote {len(pods)} pod manifests and the rendered chart to {out.relative_to(ROOT)}/")


if __name__ == "__main__":
    main()
