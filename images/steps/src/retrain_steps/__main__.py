"""``python -m retrain_steps <step> [options]``: the one entry point of every step image.

Steps: ``download``, ``preprocess``, ``train``, ``evaluate``, ``track`` (MLflow), and ``export-default`` (writes
the embedded digits set to the artifact store). The step protocol (:mod:`retrain_steps.protocol`):
exit status 0 on success, 2 with a message naming the bad value on bad input, 1 on any other
failure; the result goes to the file ``$RETRAIN_STEP_RESULT`` names. The settings
(:mod:`retrain_steps.settings`) are read here, once.
"""

from __future__ import annotations

import argparse
import sys

from retrain_steps import data, download, evaluate, preprocess, protocol, settings, tracking, train

STEPS = {"download": download, "preprocess": preprocess, "train": train, "evaluate": evaluate, "track": tracking}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="retrain_steps", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True)
    for name, module in STEPS.items():
        module.add_arguments(sub.add_parser(name, help=module.__doc__.splitlines()[0], description=module.__doc__))
    export = sub.add_parser("export-default", help="write the embedded digits dataset to --output")
    export.add_argument("--output", required=True, help="dataset object URI (.npz)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def step():
        settings.configure(settings.StepSettings.from_environment())
        if args.step == "export-default":
            return {"output": args.output, "sha256": data.export_default(args.output)}
        return STEPS[args.step].run(args)

    return protocol.run_step(f"retrain_steps {args.step}", step)


if __name__ == "__main__":
    sys.exit(main())
