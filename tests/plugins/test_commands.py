"""The step commands are the same for both backends and follow the run's params."""

from __future__ import annotations

from retraining import commands

PARAMS = {"learning_rates": [0.001, 0.01], "epochs": 3, "batch_size": 32, "framework": "torch", "seed": 5,
          "dataset_uri": None, "dataset_sha256": None}
STORE = "s3://bucket/artifacts"


def test_run_ids_become_one_path_segment():
    assert commands.safe_run_id("manual__2026-01-01T00:00:00+00:00") == "manual__2026-01-01T00-00-00-00-00"
    assert "/" not in commands.safe_run_id("a/../b")


def test_data_steps():
    data = commands.data_steps(params=PARAMS, run_id="r1", artifact_store=STORE, default_dataset="s3://b/d.npz")
    assert data["download"] == ["download", "--source", "s3://b/d.npz", "--output", f"{STORE}/runs/r1/download"]
    assert data["preprocess"] == ["preprocess", "--input", f"{STORE}/runs/r1/download",
                                  "--output", f"{STORE}/runs/r1/preprocess", "--seed", "5"]
    checked = commands.data_steps(params={**PARAMS, "dataset_uri": "https://x/d.npz", "dataset_sha256": "ab" * 32},
                                  run_id="r1", artifact_store=STORE, default_dataset="unused")
    assert checked["download"][2] == "https://x/d.npz" and checked["download"][-2:] == ["--sha256", "ab" * 32]


def test_one_candidate_per_learning_rate():
    cands = commands.candidates(params=PARAMS, run_id="r1", artifact_store=STORE)
    assert [c["learning_rate"] for c in cands] == [0.001, 0.01]
    train = commands.train_arguments(cands[1])
    assert train[:5] == ["train", "--input", f"{STORE}/runs/r1/preprocess", "--output", f"{STORE}/runs/r1/train/1"]
    assert dict(zip(train[5::2], train[6::2])) == {
        "--framework": "torch", "--learning-rate": "0.01", "--epochs": "3", "--batch-size": "32", "--seed": "5",
        "--device": "auto",
    }
    assert commands.evaluate_arguments(cands[0]) == [
        "evaluate", "--data", f"{STORE}/runs/r1/preprocess", "--model", f"{STORE}/runs/r1/train/0",
        "--output", f"{STORE}/runs/r1/evaluate/0",
    ]


def test_arguments_parse_with_the_real_step_cli():
    from retrain_steps.__main__ import build_parser

    parser = build_parser()
    data = commands.data_steps(params=PARAMS, run_id="r", artifact_store=STORE, default_dataset="s3://b/d.npz")
    for argv in (data["download"], data["preprocess"],
                 *(f(c) for c in commands.candidates(params=PARAMS, run_id="r", artifact_store=STORE)
                   for f in (commands.train_arguments, commands.evaluate_arguments))):
        assert parser.parse_args(argv).step == argv[0]


def test_package_arguments_parse_with_the_package_cli():
    from serving.package import build_parser

    cand = commands.candidates(params=PARAMS, run_id="r", artifact_store=STORE)[0]
    argv = commands.package_arguments(candidate=cand, dataset="s3://d", registry="s3://reg", run_id="r")
    args = build_parser().parse_args(argv)
    assert (args.model, args.evaluation, args.registry) == (cand["model"], cand["evaluation"], "s3://reg")
