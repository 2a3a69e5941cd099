"""``scripts/models <command>``: the model registry from a shell (the Models view's twin).

    scripts/models list                     every model: production, classes, dataset, versions (a table)
    scripts/models list --model NAME        the model's versions: status, accuracy, dataset, run (a table)
    scripts/models show VERSION             the version's row as JSON (card, metrics, promotions, reproductions)
    scripts/models lineage VERSION          what ``X-Model-Version`` names: dataset, params, commit, metrics, the
                                            run that registered it and the later runs that reproduced it (JSON)
    scripts/models history                  the promotion history, newest first (a table)
    scripts/models promote VERSION --reason "…"
    scripts/models rollback --reason "…"

Every command but a plain ``list`` is about one model: ``--model NAME`` (default: ``RETRAIN_MODEL``, digits).

``promote`` and ``rollback`` take the DAG's deploy path (local: the model server follows;
kubernetes: ``helm upgrade``) and are compare-and-swap: refused, exit 3, when production
changed meanwhile. Exit 2 on a bad value (an unknown or impossible version, a reason over
``registry.MAX_REASON_CHARS``), with a message naming it; exit 1 when the registry cannot be read
(the message names the file). ``list`` and ``history`` show what can be read and warn about the rest.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys

from retrain_steps import artifacts, registry

from retraining import catalog, config, deploy, store_connection


SUBCOMMANDS = {  #: what each subcommand prints or does (its help, and its description under ``--help``)
    "list": "every model with its production version, classes and dataset; with --model, that model's versions "
            "with status, accuracy, dataset and run (tables)",
    "history": "every promotion and rollback of a model, newest first (a table)",
    "show": "one version's row as JSON: card, metrics, status, promotions, reproductions",
    "lineage": "where one version comes from: dataset, params, commit, metrics, the run that registered it and the "
               "runs that reproduced it (JSON)",
    "promote": "deploy a registered version of a model (refused if its production changes meanwhile)",
    "rollback": "deploy again the version a model's production replaced (refused if it changes meanwhile)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="models", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    commands = {name: sub.add_parser(name, help=text, description=text) for name, text in SUBCOMMANDS.items()}
    for name in ("show", "lineage", "promote"):
        commands[name].add_argument("version", help="a version id (12 hex digits)")
    reason_help = f"recorded in the promotion history (at most {registry.MAX_REASON_CHARS} characters)"
    for name in ("promote", "rollback"):
        commands[name].add_argument("--reason", default="", help=reason_help)
    for name, command in commands.items():
        command.add_argument("--model", default=None,
                             help="the model (default: RETRAIN_MODEL, digits)" if name != "list" else
                             "list this model's versions instead of the models")
    return parser


def format_models(rows: list[dict]) -> str:
    """The models (:func:`catalog.overview`) as a table, one model a line."""
    lines = [f"{'model':20}  {'production':12}  {'test acc':>8}  {'versions':>8}  {'classes':30}  dataset"]
    for row in rows:
        accuracy = row["test_accuracy"]
        classes = ",".join(row["classes"])
        lines.append(f"{row['name']:20}  {row['production'] or '-':12}  "
                     f"{'-' if accuracy is None else f'{accuracy:.4f}':>8}  {row['versions']:>8}  "
                     f"{classes if len(classes) <= 30 else classes[:29] + '…':30}  {row['dataset']}")
    return "\n".join(lines)


def format_table(rows: list[dict]) -> str:
    lines = [f"{'version':12}  {'status':10}  {'test acc':>8}  {'dataset':12}  {'created':25}  run"]
    for row in rows:
        accuracy = row["metrics"].get("test_accuracy")
        dataset = ((row.get("card") or {}).get("dataset") or {}).get("version", "")
        lines.append(f"{row['version']:12}  {row['status']:10}  {accuracy if accuracy is None else f'{accuracy:.4f}':>8}  "
                     f"{dataset:12}  {row['created_at']:25}  {row['run_id']}")
    return "\n".join(lines)


def format_history(entries: list[dict]) -> str:
    """The promotion history (newest first) as a table, one entry a line."""
    lines = [f"{'#':>4}  {'version':12}  {'replaced':12}  {'action':8}  {'by':20}  {'at':25}  {'run':30}  reason"]
    for entry in entries:
        shown = {key: str(entry.get(key) or "-") for key in ("previous", "action", "actor", "at", "run_id")}
        lines.append(f"{entry['seq']:>4}  {entry['version']:12}  {shown['previous']:12}  {shown['action']:8}  "
                     f"{shown['actor']:20}  {shown['at']:25}  {shown['run_id']:30}  {entry.get('reason') or ''}")
    return "\n".join(lines)


def _warn(command: str, problems: list) -> None:
    for problem in problems:
        print(f"models {command}: warning: left out, cannot be read: {problem}", file=sys.stderr)


def run(args: argparse.Namespace, settings: config.Settings) -> str:
    reg = settings.registry
    if args.command == "list" and args.model is None:
        rows = catalog.overview(reg)
        _warn(args.command, [f"model {row['name']}: {p['error']}" for row in rows for p in row["problems"]])
        return format_models(rows)
    model = registry.check_model_name(args.model or settings.model)
    if args.command == "list":
        models = catalog.model_catalog(reg, model)
        _warn(args.command, [p["error"] for p in models["problems"]])
        return format_table(models["versions"])
    if args.command == "history":
        unreadable: list = []
        entries = registry.promotions(reg, unreadable, model=model)
        _warn(args.command, unreadable)
        return format_history(entries[::-1])
    if args.command in ("show", "lineage", "promote"):
        registry.check_version(args.version)
    if args.command in ("promote", "rollback"):
        registry.check_reason(args.reason)  # before anything is rolled out
    if args.command in ("show", "lineage"):
        try:
            row = catalog.version(reg, args.version, model)
        except KeyError:
            raise ValueError(f"unknown version {args.version!r} of model {model} in {reg}") from None
        return json.dumps(row if args.command == "show" else catalog.lineage(row), indent=2, default=str)
    actor = f"cli:{getpass.getuser()}"
    if args.command == "promote":
        check_registered(reg, args.version, model)
        result = deploy.deploy(settings, args.version, model=model, actor=actor,
                               reason=args.reason or "promoted from the CLI")
    else:
        result = deploy.rollback(settings, model=model, actor=actor, reason=args.reason)
    return json.dumps(result, indent=2)


def check_registered(reg: str, version: str, model: str) -> None:
    """``version`` is a registered version of ``model``, or a ``ValueError`` naming both. One card is read: another
    version's unreadable card does not stop a promotion of this one."""
    card = registry.card_if_registered(reg, version)
    if card is None or registry.model_of(card) != model:
        raise ValueError(f"unknown version {version!r}: not a registered version of model {model} in {reg} "
                         f"(see `models list --model {model}`)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = config.settings()  # a bad variable is named (exit 2), not a traceback
        store_connection.apply_to_process(settings.artifact_conn_id)
        print(run(args, settings))
    except registry.StalePromotion as err:
        print(f"models {args.command}: refused: {err}", file=sys.stderr)
        return 3
    except ValueError as err:
        print(f"models {args.command}: error: {err}", file=sys.stderr)
        return 2
    except artifacts.ArtifactError as err:
        print(f"models {args.command}: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
