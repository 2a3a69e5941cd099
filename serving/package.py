"""``python -m serving.package``: register the selected model and pack it as a BentoML bento.

Copies the model into the registry (:mod:`retrain_steps.registry`), builds a bento of
:class:`serving.service.DigitsClassifier` with the model inside, exports it to
``versions/<version>/digits_classifier.bento`` in the registry, and writes the version's card
(dataset, params, metrics, code commit, sha256 of every file) last. Runs in the serving
image; the same model gives the same version, and a version with a card is not rebuilt: its card
is written once, and a later run that trained the same weights is recorded as a reproduction of it.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

from retrain_steps import artifacts, layout, manifest, protocol, registry

log = logging.getLogger(__name__)

BENTO_FILE = layout.BENTO
MODEL_NAME = "digits-classifier"  # the model each bento packs (serving.service.load_bento loads it)
SERVICE = "serving.service:DigitsClassifier"
SERVING_DIR = Path(__file__).resolve().parent
STEPS_DIR = Path(artifacts.__file__).resolve().parent
def imported_step_modules(sources: list[Path]) -> tuple[str, ...]:
    """The ``retrain_steps`` modules ``sources`` import, directly or through each other (at any depth, lazy
    imports inside functions included): what a bento must carry for its service to import and load a model."""
    import ast

    found, queue = {"__init__.py"}, list(sources)
    while queue:
        tree = ast.parse(queue.pop().read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "retrain_steps":
                parts = node.module.split(".")
                names = [parts[1]] if len(parts) > 1 else [alias.name for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name.split(".")[1] for alias in node.names
                         if alias.name.startswith("retrain_steps.")]
            else:
                continue
            for name in names:
                module = STEPS_DIR / f"{name}.py"
                if module.is_file() and module.name not in found:
                    found.add(module.name)
                    queue.append(module)
    return tuple(sorted(found))


# Every module of the serving package but this build tool; of the steps package, what the service imports.
SERVING_MODULES = tuple(sorted(p.name for p in SERVING_DIR.glob("*.py") if p.name != Path(__file__).name))
STEPS_MODULES = imported_step_modules([SERVING_DIR / module for module in SERVING_MODULES])


def model_name(text: str) -> str:
    """``--model-name``: a model name the registry takes, else an argparse error naming it."""
    try:
        return registry.check_model_name(text)
    except registry.InvalidId as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="serving.package", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="train output folder URI of the selected candidate")
    parser.add_argument("--evaluation", required=True, help="evaluate output folder URI of that candidate")
    parser.add_argument("--dataset", required=True, help="download output folder URI")
    parser.add_argument("--registry", required=True, help="model registry URI")
    parser.add_argument("--run-id", default="", help="the pipeline run that produced the model")
    parser.add_argument("--model-name", type=model_name, default=layout.DEFAULT_MODEL,
                        help="the registered model this version belongs to (default: %(default)s)")
    parser.add_argument("--code-commit", default=os.environ.get("GIT_COMMIT", ""), help="source commit")
    parser.add_argument(
        "--requirements", default=os.environ.get("SERVING_REQUIREMENTS", ""),
        help="lock file the bento installs (default: requirements/serving.txt beside the source)",
    )
    return parser


def _requirements(path: str) -> Path:
    candidate = Path(path) if path else SERVING_DIR.parent / "requirements" / "serving.txt"
    if not candidate.is_file():
        raise FileNotFoundError(f"serving lock file not found: {candidate}")
    return candidate


def build_bento(model_dir: Path, card: dict, requirements: Path, work: Path) -> Path:
    """Build the bento in a private BentoML home under ``work``; return the exported file."""
    os.environ["BENTOML_HOME"] = str(work / "bentoml")  # a private store: nothing of the caller's is touched
    # bentoml build calls the uv binary; the serving lock installs it beside this interpreter.
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    import bentoml

    context = work / "context"
    for package, source, modules in (("serving", SERVING_DIR, SERVING_MODULES), ("retrain_steps", STEPS_DIR, STEPS_MODULES)):
        (context / package).mkdir(parents=True)
        for module in modules:
            shutil.copy2(source / module, context / package / module)
    shutil.copy2(requirements, context / "requirements.txt")
    with bentoml.models.create(
        MODEL_NAME,
        labels={"framework": card["framework"]},
        metadata={"version": card["version"], "framework": card["framework"]},
    ) as model:
        for name in model_files(card):
            shutil.copy2(model_dir / name, Path(model.path) / name)
    sys.path.insert(0, str(context))
    bento = bentoml.bentos.build(
        SERVICE,
        version=card["version"],
        labels={"model-version": card["version"], "framework": card["framework"]},
        include=["serving/*.py", "retrain_steps/*.py"],
        models=[str(model.tag)],  # the service declares no model: whichever bento it serves brings its own
        python={"requirements_txt": "requirements.txt", "lock_packages": False},
        docker={"python_version": "3.11"},
        build_ctx=str(context),
    )
    return Path(bentoml.bentos.export_bento(bento.tag, str(work / BENTO_FILE)))


def model_files(card: dict) -> tuple[str, ...]:
    """The registered files a bento's model holds: weights, ``model.json`` and, when trained with them, the OOD
    statistics (a model trained before them serves without: its answers say ``in_distribution: null``)."""
    return (card["file"], layout.MODEL_INFO, *([layout.OOD_STATS] if layout.OOD_STATS in card["files"] else []))


def register_ood_statistics(args: argparse.Namespace, card: dict) -> None:
    """Copy the train output's OOD statistics, verified against its manifest, into the version's folder."""
    if not artifacts.exists(layout.file_in(args.model, layout.OOD_STATS)):
        log.warning("package: %s has no %s (trained before them): served without an OOD score", args.model,
                    layout.OOD_STATS)
        return
    data = manifest.read_verified(args.model, layout.OOD_STATS)
    card["files"][layout.OOD_STATS] = registry.keep_first(
        layout.version_file(args.registry, card["version"], layout.OOD_STATS), data)


def run(args: argparse.Namespace) -> dict:
    requirements = _requirements(args.requirements)
    evaluation: layout.Evaluation = artifacts.read_json(layout.file_in(args.evaluation, layout.METRICS))
    train_metrics: layout.TrainMetrics = artifacts.read_json(layout.file_in(args.model, layout.METRICS))
    dataset: layout.DatasetCard = artifacts.read_json(layout.file_in(args.dataset, layout.DATASET_CARD))
    card = registry.register(
        args.registry,
        args.model,
        {
            "created_at": registry.now(),
            "model": args.model_name,
            "run_id": args.run_id,
            "code_commit": args.code_commit,
            "dataset": {"uri": args.dataset, "sha256": dataset["sha256"], "version": dataset["version"],
                        "source": dataset.get("source"), "format": dataset.get("format"),
                        "class_names": dataset.get("class_names")},
            "params": layout.card_params(train_metrics),
            "metrics": layout.card_metrics(evaluation, train_metrics),
            "source": {"model": args.model, "evaluation": args.evaluation},
        },
    )
    if artifacts.exists(layout.card(args.registry, card["version"])):
        return _already_registered(args.registry, card)
    register_ood_statistics(args, card)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_dir = work / "model"
        model_dir.mkdir()
        for name in model_files(card):
            (model_dir / name).write_bytes(artifacts.read_bytes(layout.version_file(args.registry, card["version"], name)))
        bento_file = build_bento(model_dir, card, requirements, work)
        bento_uri = layout.bento(args.registry, card["version"])
        card["bento"] = {"uri": bento_uri, "sha256": registry.keep_first(bento_uri, bento_file.read_bytes())}
    try:
        registry.write_card(args.registry, card)
    except registry.VersionRegistered:  # another run registered the same weights meanwhile
        return _already_registered(args.registry, card)
    log.info("package: registered version %s (test accuracy %.4f)", card["version"], card["metrics"]["test_accuracy"])
    return card


def _already_registered(registry_uri: str, card: dict) -> dict:
    """The version's card as its first run wrote it; this run is recorded as a reproduction of it. The same weights
    registered for another model are bad input: a version belongs to one model."""
    existing = registry.card(registry_uri, card["version"])
    if registry.model_of(existing) != registry.model_of(card):
        raise ValueError(f"version {card['version']} (these weights) is registered for model "
                         f"{registry.model_of(existing)!r} already, not {registry.model_of(card)!r}: a version belongs "
                         "to one model; train this model with another seed or learning rate")
    existing = registry.reproduced(registry_uri, card)
    bento_uri = existing.get("bento", {}).get("uri", "")
    if not bento_uri or not artifacts.exists(bento_uri):
        raise artifacts.ArtifactError(f"version {card['version']} is registered, but its bento {bento_uri or '(none)'} "
                                      "is missing: restore it, or remove the version's folder to register it again")
    log.info("package: version %s is already registered with its bento by run %s; run %s reproduced it",
             card["version"], existing.get("run_id") or "(none)", card.get("run_id") or "(none)")
    return existing


def main(argv: list[str] | None = None) -> int:
    """The step protocol of every step CLI (:mod:`retrain_steps.protocol`): exit 0/1/2, the card as the result."""
    args = build_parser().parse_args(argv)
    return protocol.run_step("serving.package", lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
