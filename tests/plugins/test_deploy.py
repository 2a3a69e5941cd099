"""One deploy path for both backends: roll out, then (only on success) promote in the registry."""

from __future__ import annotations

import json
import os
import stat
import sys

import pytest
from retrain_steps import registry
from retraining import commands, deploy
from retraining.config import settings
from tests.helpers.kube import helm_binary

# Stands in for `helm upgrade` (no cluster here): records its argv, then renders the chart with the
# same values through the real helm binary (`helm template`), failing the way helm would on bad values.
FAKE_HELM = """#!{python}
import json, subprocess, sys
argv = sys.argv[1:]
with open({log!r}, "a") as f:
    f.write(json.dumps(argv) + "\\n")
if {fail}:
    sys.stderr.write("Error: UPGRADE FAILED: context deadline exceeded\\n")
    sys.exit(1)
assert argv[:2] == ["upgrade", "--install"], argv
release, chart = argv[2], argv[3]
sets = [a for i, a in enumerate(argv) if i and argv[i - 1] in ("--set-string", "--namespace")]
args = [{helm!r}, "template", release, chart, "--namespace", sets[0]]
for value in sets[1:]:
    args += ["--set-string", value]
sys.exit(subprocess.run(args).returncode)
"""


def registered(reg: str, version: str = "0123456789ab") -> str:
    registry.write_card(reg, {"version": version, "metrics": {"test_accuracy": 0.97},
                              "bento": {"uri": f"{reg}/versions/{version}/digits_classifier.bento", "sha256": "a" * 64}})
    return version


@pytest.fixture
def fake_helm(tmp_path, monkeypatch):
    def make(fail: bool = False):
        path, log = tmp_path / "helm", tmp_path / "helm.log"
        path.write_text(FAKE_HELM.format(python=sys.executable, log=str(log), fail=fail, helm=helm_binary()))
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
        monkeypatch.setenv("HELM", str(path))
        return log
    return make


def k8s_settings(reg):
    """Kubernetes-backend settings; ``HELM`` as ``fake_helm`` set it."""
    return settings({"RETRAIN_BACKEND": "kubernetes", "RETRAIN_ARTIFACT_STORE": reg.rsplit("/", 1)[0],
                     "RETRAIN_REGISTRY": reg, "HELM": os.environ.get("HELM", "helm")})


def test_kubernetes_deploy_rolls_out_then_records_production(tmp_path, fake_helm):
    log = fake_helm()
    reg = f"file://{tmp_path}/store/registry"
    version = registered(reg)
    result = deploy.deploy(k8s_settings(reg), version)
    argv = json.loads(log.read_text().splitlines()[0])
    assert "--reset-then-reuse-values" in argv and f"model.version={version}" in argv
    assert result["backend"] == "kubernetes" and registry.production_version(reg) == version
    # the next run's gate reads that pointer: it evaluates this version on its own test split
    baseline = commands.production_baseline(run_id="r2", artifact_store=f"file://{tmp_path}/store", registry=reg,
                                            production_version=registry.production_version(reg))
    assert baseline[0]["version"] == version and baseline[0]["model"] == f"{reg}/versions/{version}"


def test_a_failed_rollout_leaves_production_unchanged(tmp_path, fake_helm):
    fake_helm(fail=True)
    reg = f"file://{tmp_path}/store/registry"
    old, new = registered(reg, "aaaaaaaaaaaa"), registered(reg, "bbbbbbbbbbbb")
    registry.promote(reg, old)
    with pytest.raises(RuntimeError, match="previous release keeps serving and production was not changed"):
        deploy.deploy(k8s_settings(reg), new)
    assert registry.production_version(reg) == old


def test_local_deploy_is_the_same_path(tmp_path):
    reg = f"file://{tmp_path}/store/registry"
    version = registered(reg)
    result = deploy.deploy(settings({"RETRAIN_ARTIFACT_STORE": f"file://{tmp_path}/store"}), version)
    assert result["backend"] == "local" and result["version"] == version
    assert registry.production_version(reg) == version


def test_a_version_without_a_bento_is_not_deployed(tmp_path):
    reg = f"file://{tmp_path}/store/registry"
    registry.write_card(reg, {"version": "cccccccccccc"})
    with pytest.raises(ValueError, match="has no bento"):
        deploy.deploy(settings({"RETRAIN_ARTIFACT_STORE": f"file://{tmp_path}/store"}), "cccccccccccc")
    assert registry.production_version(reg) is None


def test_promoting_production_onto_itself_is_refused(tmp_path, fake_helm):
    """No entry recording a version as replacing itself (a later rollback would "succeed" and change nothing)."""
    log = fake_helm()
    reg = f"file://{tmp_path}/store/registry"
    old, current = registered(reg, "aaaaaaaaaaaa"), registered(reg, "bbbbbbbbbbbb")
    registry.promote(reg, old)
    registry.promote(reg, current, expected=old)
    with pytest.raises(registry.NoOpPromotion, match="bbbbbbbbbbbb is in production already.*nothing to promote"):
        registry.promote(reg, current, expected=current, actor="ui:ceo")
    with pytest.raises(registry.NoOpPromotion, match="in production already: nothing to promote, nothing was rolled"):
        deploy.deploy(k8s_settings(reg), current, expected=current)
    assert not log.exists(), "nothing rolled out"
    assert [(e["version"], e["previous"]) for e in registry.promotions(reg)] == [(old, None), (current, old)]
    assert deploy.rollback(k8s_settings(reg))["version"] == old, "a rollback still changes production"


def test_an_over_long_reason_is_refused_before_the_rollout(tmp_path, fake_helm):
    log = fake_helm()
    reg = f"file://{tmp_path}/store/registry"
    version = registered(reg, "aaaaaaaaaaaa")
    with pytest.raises(ValueError, match=f"at most {registry.MAX_REASON_CHARS} are recorded"):
        deploy.deploy(k8s_settings(reg), version, reason="x" * (registry.MAX_REASON_CHARS + 1))
    assert not log.exists(), "nothing rolled out"
    assert registry.promotions(reg) == []


def test_a_worse_model_that_finishes_last_does_not_replace_a_better_one(tmp_path, fake_helm):
    """Two runs gated against the same production: the first to deploy wins, the second is refused unrolled."""
    log = fake_helm()
    reg = f"file://{tmp_path}/store/registry"
    prod, better, worse = (registered(reg, v) for v in ("aaaaaaaaaaaa", "bbbbbbbbbbbb", "cccccccccccc"))
    registry.promote(reg, prod)
    deploy.deploy(k8s_settings(reg), better, expected=prod, actor="airflow:retrain", run_id="run-better")
    rollouts = len(log.read_text().splitlines())
    with pytest.raises(registry.StalePromotion, match=f"production is {better}, not {prod}.*nothing was rolled out"):
        deploy.deploy(k8s_settings(reg), worse, expected=prod, run_id="run-worse")
    assert registry.production_version(reg) == better
    assert len(log.read_text().splitlines()) == rollouts, "the refused version was never rolled out"


def test_production_changing_during_a_rollout_puts_the_release_back_on_the_winner(tmp_path, fake_helm, monkeypatch):
    log = fake_helm()
    reg = f"file://{tmp_path}/store/registry"
    prod, mine, theirs = (registered(reg, v) for v in ("aaaaaaaaaaaa", "bbbbbbbbbbbb", "cccccccccccc"))
    registry.promote(reg, prod)
    roll_out = deploy.roll_out

    def racing_roll_out(conf, card):
        result = roll_out(conf, card)
        if card["version"] == mine:  # someone else promotes while our helm upgrade runs
            registry.promote(reg, theirs, expected=prod, actor="bob")
        return result

    monkeypatch.setattr(deploy, "roll_out", racing_roll_out)
    with pytest.raises(registry.StalePromotion, match=f"promote of {theirs} by bob"):
        deploy.deploy(k8s_settings(reg), mine, expected=prod)
    versions = [next(a for a in json.loads(line) if a.startswith("model.version=")) for line in log.read_text().splitlines()]
    assert versions == [f"model.version={mine}", f"model.version={theirs}"]
    assert registry.production_version(reg) == theirs


def test_rollback_deploys_the_version_production_replaced(tmp_path):
    reg = f"file://{tmp_path}/store/registry"
    conf = settings({"RETRAIN_ARTIFACT_STORE": f"file://{tmp_path}/store"})
    with pytest.raises(ValueError, match="nothing to roll back to"):
        deploy.rollback(conf)
    old, new = registered(reg, "aaaaaaaaaaaa"), registered(reg, "bbbbbbbbbbbb")
    deploy.deploy(conf, old)
    deploy.deploy(conf, new)
    entry = deploy.rollback(conf, actor="alice")
    assert entry["version"] == old and entry["action"] == "rollback" and entry["reason"] == f"rollback from {new}"
    assert registry.promotion_history(reg) == [old, new]
