"""KubeflowPipelinesRunTrigger: poll a KFP run asynchronously until it ends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from kubeflow_pipelines.hooks.kubeflow import KubeflowPipelinesError, KubeflowPipelinesHook, KubeflowRunState


class KubeflowPipelinesRunTrigger(BaseTrigger):
    """Yield one event when the run reaches a terminal state, times out, or polling fails.

    Events: ``{"status": "success"|"failed"|"canceled"|"timeout"|"error", "run_id", "state", "message"}``.
    Transient API errors are retried with exponential backoff up to ``max_errors`` in a row.
    """

    def __init__(
        self,
        *,
        run_id: str,
        kfp_conn_id: str,
        end_time: float,
        poll_interval: float = 15.0,
        max_errors: int = 5,
    ) -> None:
        super().__init__()
        self.run_id, self.kfp_conn_id, self.end_time = run_id, kfp_conn_id, end_time
        self.poll_interval, self.max_errors = poll_interval, max_errors

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "kubeflow_pipelines.triggers.kubeflow.KubeflowPipelinesRunTrigger",
            {
                "run_id": self.run_id,
                "kfp_conn_id": self.kfp_conn_id,
                "end_time": self.end_time,
                "poll_interval": self.poll_interval,
                "max_errors": self.max_errors,
            },
        )

    def _event(self, status: str, state: str, message: str) -> TriggerEvent:
        return TriggerEvent({"status": status, "run_id": self.run_id, "state": state, "message": message})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = KubeflowPipelinesHook(kfp_conn_id=self.kfp_conn_id)
        errors = 0
        try:
            while True:
                try:
                    state, message = await asyncio.to_thread(hook.get_run_state, self.run_id)
                    errors = 0
                except KubeflowPipelinesError as err:
                    errors += 1
                    if errors >= self.max_errors:
                        yield self._event("error", "", f"polling run {self.run_id} failed {errors} times: {err}")
                        return
                    await asyncio.sleep(min(self.poll_interval * 2**errors, 300))
                    continue
                if state.is_terminal():
                    status = {KubeflowRunState.FAILED: "failed", KubeflowRunState.CANCELED: "canceled"}.get(
                        state, "success"
                    )
                    yield self._event(status, state.value, message or f"run {self.run_id} is {state.value}")
                    return
                if time.time() >= self.end_time:
                    yield self._event("timeout", state.value, f"run {self.run_id} still {state.value} at the timeout")
                    return
                await asyncio.sleep(self.poll_interval)
        except Exception as err:  # noqa: BLE001 - every failure becomes one error event
            yield self._event("error", "", f"{type(err).__name__}: {err}")
