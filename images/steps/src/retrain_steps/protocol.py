"""The step protocol: how a step CLI reports to whoever launched it (a local process, a pod, a KFP task).

* exit status: :data:`OK` (0), :data:`FAILED` (1: anything else; a retry may help), :data:`BAD_INPUT`
  (2: the input is wrong and a retry cannot fix it; no backend retries it);
* :data:`BAD_INPUT_ERRORS`: the exceptions that mean bad input;
* the result: one JSON document written to the file named by ``$RETRAIN_STEP_RESULT`` (:data:`RESULT_ENV`).
  The launcher sets it: the local backend to a file of its own, a pod to :data:`POD_RESULT_FILE`, the file
  KubernetesPodOperator's XCom sidecar reads. Either way the task's XCom is that document; the log is
  only for people.

Every step CLI (``python -m retrain_steps``, ``python -m serving.package``) runs its body through
:func:`run_step`; a Kubeflow component calls a step CLI in its own process with :func:`call_step`.
Standard library only: the Airflow side imports this module too.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from retrain_steps.artifacts import ArtifactError, ArtifactUnavailable

OK, FAILED, BAD_INPUT = 0, 1, 2
RESULT_ENV = "RETRAIN_STEP_RESULT"
POD_RESULT_FILE = "/airflow/xcom/return.json"  # KubernetesPodOperator's XCom file (PodDefaults.XCOM_MOUNT_PATH)

# Input a retry cannot fix. ValueError: every input check (InputError, DataError, a bad setting, invalid JSON,
# a bad input spec); KeyError: an input manifest without a field the step needs (metrics without "accuracy");
# FileNotFoundError: a local file named in the arguments (package's lock file); ArtifactError: a store URI that
# is malformed, not allowed, missing, too large or fails its sha256 -- but not ArtifactUnavailable (a store that
# could not be reached or answered 5xx): that is exit 1, and retried.
BAD_INPUT_ERRORS: tuple[type[BaseException], ...] = (ValueError, KeyError, FileNotFoundError, ArtifactError)

log = logging.getLogger(__name__)


def configure_logging() -> None:
    """Every step logs ``time LEVEL message`` lines to stdout (the task log on every backend)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)


def result_file(environ: Mapping[str, str] = os.environ) -> Path | None:
    """Where the launcher wants the result (None: nobody reads it, e.g. a person at a shell)."""
    path = environ.get(RESULT_ENV, "").strip()
    return Path(path) if path else None


def write_result(result: Any, environ: Mapping[str, str] = os.environ) -> Path | None:
    """Write ``result`` as JSON to the result file (atomically: a reader never sees half of it)."""
    path = result_file(environ)
    if path is None:
        return None
    text = json.dumps(result, sort_keys=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    os.replace(partial, path)
    return path


def read_result(path: Path | str) -> Any:
    """The result a step wrote to ``path``; None when it wrote none (an empty or missing file)."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return None
    return json.loads(text) if text.strip() else None


def run_step(name: str, step: Callable[[], Any]) -> int:
    """Run a step's body: log set-up, ``step()``, its result to the result file, the exit status.

    Bad input (:data:`BAD_INPUT_ERRORS`) is one line on stderr naming the bad value and :data:`BAD_INPUT`;
    any other exception is logged with its traceback and :data:`FAILED`.
    """
    configure_logging()
    try:
        result = step()
    except ArtifactUnavailable as err:  # the store's trouble, not the input's: a retry may help
        print(f"{name}: error: {err}", file=sys.stderr)
        return FAILED
    except BAD_INPUT_ERRORS as err:
        print(f"{name}: error: {err}", file=sys.stderr)
        return BAD_INPUT
    except Exception:  # noqa: BLE001 (the protocol's job: any other failure is exit 1, with its traceback)
        traceback.print_exc()
        return FAILED
    write_result(result)
    log.info("%s: done: %s", name, json.dumps(result, sort_keys=True))
    return OK


class StepFailed(RuntimeError):
    """A step called in-process (:func:`call_step`) exited non-zero; ``bad_input`` when it was exit 2."""

    def __init__(self, step: str, exit_code: int) -> None:
        self.exit_code, self.bad_input = exit_code, exit_code == BAD_INPUT
        reason = "rejected its input (exit 2; a retry cannot fix it)" if self.bad_input else "failed"
        super().__init__(f"step {step} {reason}; exit {exit_code}, see the log above")


def call_step(main: Callable[[list[str]], int], argv: list) -> Any:
    """Run a step CLI's ``main(argv)`` in this process (a Kubeflow component's body) and return its result,
    read from a result file of its own; raise :class:`StepFailed` when it exits non-zero."""
    argv = [str(a) for a in argv]
    previous = os.environ.get(RESULT_ENV)
    with tempfile.TemporaryDirectory(prefix="retrain-step-") as folder:
        path = Path(folder) / "result.json"
        os.environ[RESULT_ENV] = str(path)
        try:
            code = main(argv)
        finally:
            if previous is None:
                os.environ.pop(RESULT_ENV, None)
            else:
                os.environ[RESULT_ENV] = previous
        if code != OK:
            raise StepFailed(argv[0] if argv else "?", code)
        return read_result(path)
