"""``python -m retrain_steps <step> [options]``: the one entry point of every step image.

Steps: ``download``, ``preprocess``, ``train``, ``evaluate``, and ``export-default`` (writes
the embedded digits set to the artifact store). Exit status 0 on success, 2 with a message
naming the bad value on bad input, 1 on any other failure.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from retrain_steps import artifacts, data, download, evaluate, preprocess, train
from retrain_steps.features import InputError

STEPS = {"download": download, "preprocess": preprocess, "train": train, "evaluate": evaluate}


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
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    try:
        if args.step == "export-default":
            result = {"output": args.output, "sha256": data.export_default(args.output)}
        else:
            result = STEPS[args.step].run(args)
    except (artifacts.ArtifactError, data.DataError, InputError, ValueError, FileNotFoundError) as err:
        print(f"retrain_steps {args.step}: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps({"step": args.step, "result": result}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
