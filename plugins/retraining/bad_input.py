"""Bad input fails a task at once, with one readable message and no traceback.

Airflow 3.3's task runner logs every exception a task raises with its traceback
(``AirflowFailException`` included: ``log.exception("Task failed with exception")``), except
``SystemExit``: that one is logged as one line, ``Task exited exit_code=...``, and handed to the
task's retry policy. So a task that refuses its input logs the message itself (:func:`fail`),
raises :class:`BadInput` (a ``SystemExit`` with the step protocol's exit code 2), and
:data:`RETRY_POLICY`, set on every task that can raise it, fails the task without retries.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import NoReturn

from airflow.sdk import ExceptionRetryPolicy, RetryAction, RetryRule
from retrain_steps import protocol

# the line a step CLI prints on bad input (retrain_steps.protocol.run_step): "retrain_steps download: error: ..."
STEP_ERROR = re.compile(r"^[\w.-]+( [\w-]+)?: error: ")


class BadInput(SystemExit):
    """The task's input is wrong and a retry cannot fix it; ``str()`` is the message, ``code`` is 2."""

    def __init__(self, message: str) -> None:
        super().__init__(protocol.BAD_INPUT)
        self.message = message

    def __str__(self) -> str:
        return self.message


RETRY_POLICY = ExceptionRetryPolicy(
    rules=[RetryRule(exception=BadInput, action=RetryAction.FAIL, reason="bad input: a retry cannot fix it")]
)


def fail(message: str, log: logging.Logger | None = None) -> NoReturn:
    """Log ``message`` (one error entry, its lines as they are) and raise :class:`BadInput` with it."""
    (log or logging.getLogger(__name__)).error("%s", message)
    raise BadInput(message)


def step_error(output: Sequence[str]) -> str:
    """The error a step printed last: from its last ``<step>: error:`` line to the end (a message may span
    lines), else its last line."""
    lines = [line.rstrip() for line in output]
    starts = [index for index, line in enumerate(lines) if STEP_ERROR.match(line)]
    if starts:
        return "\n".join(lines[starts[-1]:]).strip()
    return next((line for line in reversed(lines) if line.strip()), "")


def step_rejected(error: str) -> str:
    """The message of a step that exited 2: what happened, then the step's own error, indented."""
    detail = "\n".join(f"  {line}" for line in error.splitlines()) or "  (the step printed no error; see above)"
    return f"step rejected its input (exit {protocol.BAD_INPUT}), not retried:\n{detail}"
