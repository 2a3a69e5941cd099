"""Adaptive batching (``serving.batching``) and the service's batched ``predict_batch``, without a server."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from retrain_steps.artifacts import local_path
from retrain_steps.digits_profile import InputError, pixels_to_png
from retrain_steps.preprocess import load_spec, load_splits
from serving.batching import AdaptiveBatcher


class Recorder:
    """A ``run_batch`` that records its batches; the first one blocks until released."""

    def __init__(self, fail_on=None, hold_first=True):
        self.batches: list[list] = []
        self.release = threading.Event()
        self.hold_first, self.fail_on = hold_first, fail_on

    def __call__(self, items):
        self.batches.append(list(items))
        if self.hold_first and len(self.batches) == 1:
            assert self.release.wait(10)
        if self.fail_on is not None and self.fail_on in items:
            raise RuntimeError("model crashed")
        return [ValueError(f"bad {item}") if item == "bad" else f"done {item}" for item in items]


async def settle():
    for _ in range(20):
        await asyncio.sleep(0.01)


def test_requests_that_queue_while_the_model_is_busy_share_the_next_batch():
    async def scenario():
        run = Recorder()
        seen = []
        batcher = AdaptiveBatcher(run, max_rows=64, on_batch=lambda rows, requests: seen.append((rows, requests)))
        first = asyncio.ensure_future(batcher.submit("a"))
        await settle()  # the idle model took "a" at once, alone
        rest = [asyncio.ensure_future(batcher.submit(f"r{i}")) for i in range(10)]
        await settle()
        run.release.set()
        results = await asyncio.gather(first, *rest)
        return run.batches, results, seen

    batches, results, seen = asyncio.run(scenario())
    assert batches == [["a"], [f"r{i}" for i in range(10)]]
    assert results == ["done a", *(f"done r{i}" for i in range(10))]
    assert seen == [(1, 1), (10, 10)]


def test_a_batch_holds_at_most_max_rows_and_a_larger_request_runs_alone():
    async def scenario():
        run = Recorder()
        batcher = AdaptiveBatcher(run, max_rows=4)
        first = asyncio.ensure_future(batcher.submit("first"))
        await settle()
        rows = {"a": 1, "b": 2, "c": 2, "big": 9, "d": 1}
        waiting = [asyncio.ensure_future(batcher.submit(item, n)) for item, n in rows.items()]
        await settle()
        run.release.set()
        await asyncio.gather(first, *waiting)
        return run.batches

    assert asyncio.run(scenario()) == [["first"], ["a", "b"], ["c"], ["big"], ["d"]]


def test_bad_input_fails_only_its_own_request_and_a_crash_only_its_batch():
    async def scenario():
        run = Recorder(fail_on="boom")
        batcher = AdaptiveBatcher(run)
        first = asyncio.ensure_future(batcher.submit("x"))
        await settle()
        mixed = [asyncio.ensure_future(batcher.submit(item)) for item in ("ok1", "bad", "ok2")]
        await settle()
        run.release.set()
        await first
        outcomes = await asyncio.gather(*mixed, return_exceptions=True)
        crashed = await asyncio.gather(batcher.submit("boom"), return_exceptions=True)
        after = await batcher.submit("later")  # the batcher survived the crash
        return outcomes, crashed, after

    outcomes, crashed, after = asyncio.run(scenario())
    assert outcomes[0] == "done ok1" and outcomes[2] == "done ok2"
    assert isinstance(outcomes[1], ValueError) and str(outcomes[1]) == "bad bad"
    assert isinstance(crashed[0], RuntimeError) and str(crashed[0]) == "model crashed"
    assert after == "done later"


def test_a_request_cancelled_while_queued_is_not_run():
    async def scenario():
        run = Recorder()
        batcher = AdaptiveBatcher(run)
        first = asyncio.ensure_future(batcher.submit("first"))
        await settle()
        gone = asyncio.ensure_future(batcher.submit("gone"))
        kept = asyncio.ensure_future(batcher.submit("kept"))
        await settle()
        gone.cancel()
        run.release.set()
        return await first, await kept, run.batches

    assert asyncio.run(scenario()) == ("done first", "done kept", [["first"], ["kept"]])


def test_max_wait_holds_a_lone_request_for_company_but_not_a_full_batch():
    async def scenario(max_rows):
        run = Recorder(hold_first=False)
        batcher = AdaptiveBatcher(run, max_rows=max_rows, max_wait_s=0.3)
        started = time.perf_counter()
        lone = asyncio.ensure_future(batcher.submit("a"))
        await asyncio.sleep(0.05)
        company = asyncio.ensure_future(batcher.submit("b"))
        await asyncio.gather(lone, company)
        return run.batches, time.perf_counter() - started

    batches, _ = asyncio.run(scenario(max_rows=8))
    assert batches == [["a", "b"]]  # "b" came within the wait and shared the pass
    batches, seconds = asyncio.run(scenario(max_rows=2))
    assert batches == [["a", "b"]] and seconds < 0.25  # full at two rows: it went without waiting out 0.3 s


@pytest.mark.parametrize(("kwargs", "message"), [({"max_rows": 0}, "max_rows"), ({"max_wait_s": -1}, "max_wait_s")])
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AdaptiveBatcher(lambda items: items, **kwargs)


def service_of(model):
    """The service class itself, instantiated around ``model`` (what BentoML creates in each worker)."""
    from serving.service import DigitsClassifier, FixedModel

    return DigitsClassifier.inner(FixedModel(model))


def test_a_batched_answer_equals_the_answer_alone(trained):
    from serving.service import load_folder

    model = load_folder(local_path(trained["train"]), "v1")
    service = service_of(model)
    other = load_folder(local_path(trained["train"]), "v2")  # a swap mid-batch: each request keeps its model
    splits = load_splits(trained["preprocess"], load_spec(trained["preprocess"]))
    uploads = [pixels_to_png(splits["x_test"][i, :, :, 0] / 255 * 16, scale=4) for i in range(12)]
    instances = (splits["x_test"][20:23, :, :, 0] / 255 * 16).reshape(3, -1).tolist()
    requests = [(model if i % 3 else other, png, None) for i, png in enumerate(uploads)]
    requests += [(model, None, instances), (model, b"not an image", None), (model, None, [[]])]
    batched = service.predict_batch(requests)
    for (loaded, data, rows), result in zip(requests[:13], batched[:13], strict=True):
        (alone,) = service.predict_batch([(loaded, data, rows)])  # equal up to float rounding (a batched convolution sums in another order)
        assert result["model_version"] == alone["model_version"] == loaded.version
        assert result.get("prediction") == alone.get("prediction")
        assert result.get("predictions") == alone.get("predictions")
        assert np.allclose(result["probabilities"], alone["probabilities"], atol=1e-5)
    assert isinstance(batched[13], InputError) and "not a readable image" in str(batched[13])
    assert isinstance(batched[14], InputError)
    predictions = [r["prediction"] for r in batched[:12]]
    assert sum(p == y for p, y in zip(predictions, splits["y_test"][:12], strict=True)) >= 10
    assert len(batched[12]["predictions"]) == 3
    (only_bad,) = service.predict_batch([(model, None, [[]])])  # a batch whose every request is bad input
    assert isinstance(only_bad, InputError)


def test_a_model_loads_on_the_requested_device(trained):
    from retrain_steps.models import load_predictor, read_model_info, resolve_device

    folder = local_path(trained["train"])
    framework, spec = read_model_info(folder)
    x = np.zeros((2, spec.channels, spec.height, spec.width), np.float32)
    assert load_predictor(folder, framework, spec, "cpu")(x).shape == (2, len(spec.class_names))
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    import torch

    if not torch.cuda.is_available():
        assert resolve_device("auto") == "cpu"
        with pytest.raises(RuntimeError, match="no CUDA device"):
            load_predictor(folder, framework, spec, "cuda")


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(not cuda_available(), reason="no CUDA device here (runs on a GPU machine)")
def test_on_a_gpu_batched_answers_match_the_cpu(trained):
    from serving.service import LoadedModel, load_folder

    folder = local_path(trained["train"])
    cpu = load_folder(folder, "v1")
    from retrain_steps.models import load_predictor

    gpu = LoadedModel("v1", cpu.framework, cpu.spec, load_predictor(folder, cpu.framework, cpu.spec, "auto"))
    splits = load_splits(trained["preprocess"], load_spec(trained["preprocess"]))
    requests = [(None, pixels_to_png(splits["x_test"][i, :, :, 0] / 255 * 16, scale=4), None) for i in range(64)]
    on_cpu = service_of(cpu).predict_batch([(cpu, data, rows) for _, data, rows in requests])
    on_gpu = service_of(gpu).predict_batch([(gpu, data, rows) for _, data, rows in requests])
    assert [r["prediction"] for r in on_gpu] == [r["prediction"] for r in on_cpu]
    assert np.allclose([r["probabilities"] for r in on_gpu], [r["probabilities"] for r in on_cpu], atol=1e-4)
