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
    assert data["download"] == ["download", "--source", "s3://b/d.npz", "--output", f"{STORE}/step-outputs/r1/download"]
    assert data["preprocess"] == ["preprocess", "--input", f"{STORE}/step-outputs/r1/download",
                                  "--output", f"{STORE}/step-outputs/r1/preprocess", "--seed", "5",
                                  "--cache", f"{STORE}/cache/preprocess",
                                  "--image-size", "0", "--channels", "auto", "--profile", "auto"]
    spec = commands.data_steps(params={**PARAMS, "image_size": 32, "channels": "3", "preprocessing": "image"},
                               run_id="r1", artifact_store=STORE, default_dataset="s3://b/d.npz")
    assert spec["preprocess"][-6:] == ["--image-size", "32", "--channels", "3", "--profile", "image"]
    checked = commands.data_steps(params={**PARAMS, "dataset_uri": "https://x/d.npz", "dataset_sha256": "ab" * 32},
                                  run_id="r1", artifact_store=STORE, default_dataset="unused")
    assert checked["download"][2] == "https://x/d.npz" and checked["download"][-2:] == ["--sha256", "ab" * 32]


def test_one_candidate_per_learning_rate():
    cands = commands.candidates(params=PARAMS, run_id="r1", artifact_store=STORE)
    assert [c["learning_rate"] for c in cands] == [0.001, 0.01]
    typed = commands.candidates(params={**PARAMS, "learning_rates": ["0.001", " 1e-2 "]}, run_id="r1",
                                artifact_store=STORE)  # as the trigger form's text area sends them
    assert [c["train"] for c in typed] == [c["train"] for c in cands]
    train = commands.train_arguments(cands[1])
    assert train[:5] == ["train", "--input", f"{STORE}/step-outputs/r1/preprocess", "--output", f"{STORE}/step-outputs/r1/train/1"]
    assert dict(zip(train[5::2], train[6::2])) == {
        "--framework": "torch", "--learning-rate": "0.01", "--epochs": "3", "--batch-size": "32", "--seed": "5",
        "--device": "auto",
    }
    assert commands.evaluate_arguments(cands[0]) == [
        "evaluate", "--data", f"{STORE}/step-outputs/r1/preprocess", "--model", f"{STORE}/step-outputs/r1/train/0",
        "--output", f"{STORE}/step-outputs/r1/evaluate/0",
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
    argv = commands.package_arguments(candidate=cand, dataset="s3://d", registry="s3://reg", run_id="r", model="shapes")
    args = build_parser().parse_args(argv)
    assert (args.model, args.evaluation, args.registry) == (cand["model"], cand["evaluation"], "s3://reg")
    assert args.model_name == "shapes"


def test_datasets_come_only_from_allowed_locations():
    import pytest

    allowed = ("file:///srv/store/", "https://data.example.com/sets/")
    default = "file:///srv/store/datasets/digits.npz"

    def plan(uri):
        return commands.data_steps(params={**PARAMS, "dataset_uri": uri}, run_id="r", artifact_store="file:///srv/store",
                                   default_dataset=default, allowed=allowed)

    ok = plan("https://data.example.com/sets/mnist.npz")["download"]
    assert ok[ok.index("--allow") + 1] == "file:///srv/store/", "the step gets the same list and checks it again"
    assert plan(None)["download"][2] == default
    for bad in ("file:///etc/passwd", "file:///srv/store/../../etc/passwd", "file:///srv/store-evil/x.npz",
                "http://169.254.169.254/latest/meta-data", "https://data.example.com/other/x.npz",
                "s3://other-bucket/x.npz"):
        with pytest.raises(ValueError, match="dataset location not allowed"):
            plan(bad)


def test_the_download_step_refuses_an_outside_source_without_reading_it(tmp_path):
    from tests.conftest import run_cli

    (tmp_path / "secret.npz").write_bytes(b"not for you")
    answers = []
    for source in (f"file://{tmp_path}/secret.npz", f"file://{tmp_path}/absent.npz"):
        result = run_cli("retrain_steps", "download", "--source", source, "--output", f"file://{tmp_path}/store/dl",
                         "--allow", f"file://{tmp_path}/store/", check=False)
        assert result.returncode == 2 and "dataset location not allowed" in result.stderr
        answers.append(result.stderr.replace("secret", "X").replace("absent", "X"))
    assert answers[0] == answers[1], "the error must not tell an existing file from a missing one"


def test_a_refused_dataset_fails_the_plan_task_without_retry(monkeypatch):
    import pytest
    from retraining.bad_input import BadInput
    from retraining.config import settings
    from retraining.planning import planning_head

    from airflow.sdk import DAG

    with DAG("t", schedule=None):
        plan, _ = planning_head(settings({"RETRAIN_ARTIFACT_STORE": "file:///srv/store"}))
    with pytest.raises(BadInput, match="dataset location not allowed: file:///etc/shadow"):
        plan.operator.python_callable(params={**PARAMS, "dataset_uri": "file:///etc/shadow"}, run_id="r")


def test_more_gpus_than_a_candidate_uses_fail_plan_candidates_without_retry():
    import pytest
    from retraining.bad_input import BadInput
    from retraining.config import settings
    from retraining.planning import planning_head

    from airflow.sdk import DAG

    with DAG("t2", schedule=None):
        _, plan_candidates = planning_head(settings({"RETRAIN_ARTIFACT_STORE": "file:///srv/store"}))
    with pytest.raises(BadInput, match="gpus=2: a candidate trains on one GPU"):
        plan_candidates.operator.python_callable(params={**PARAMS, "gpus": 2}, run_id="r")


def test_warm_start_uses_production_and_refuses_what_cannot_work(tmp_path):
    import pytest
    from retrain_steps import registry
    from retraining.config import settings
    from retraining.planning import warm_start_model

    store = f"file://{tmp_path}"
    conf = settings({"RETRAIN_ARTIFACT_STORE": store})
    params = {**PARAMS, "warm_start": True}
    with pytest.raises(ValueError, match="model digits has nothing in production yet"):
        warm_start_model(conf, params)
    registry.write_card(conf.registry, {"version": "0123456789ab", "framework": "torch"})
    registry.promote(conf.registry, "0123456789ab")
    folder = warm_start_model(conf, params)
    assert folder == f"{store}/registry/versions/0123456789ab"
    train = commands.candidates(params=params, run_id="r", artifact_store=store, init_from=folder)[0]["train"]
    assert train[-2:] == ["--init-from", folder]
    with pytest.raises(ValueError, match="is a torch model; choose the framework torch"):
        warm_start_model(conf, {**params, "framework": "tensorflow"})
    assert warm_start_model(conf, PARAMS) is None
    # the architecture: Automatic (the production model's) or the one production has (a card from before: cnn)
    assert warm_start_model(conf, {**params, "architecture": "auto"}) == warm_start_model(
        conf, {**params, "architecture": "cnn"}) == folder
    with pytest.raises(ValueError, match="production 0123456789ab is a cnn model, not resnet18; choose the "
                                         "architecture cnn .or Automatic"):
        warm_start_model(conf, {**params, "architecture": "resnet18"})
    registry.write_card(conf.registry, {"version": "ba9876543210", "framework": "torch",
                                        "params": {"architecture": "resnet18"}})
    registry.promote(conf.registry, "ba9876543210")
    assert warm_start_model(conf, {**params, "architecture": "resnet18"}).endswith("/ba9876543210")
    with pytest.raises(ValueError, match="is a resnet18 model, not mobilenet_v3_small"):
        warm_start_model(conf, {**params, "architecture": "mobilenet_v3_small"})


def test_a_run_trains_its_forms_model_and_new_model_cannot_fork_one(tmp_path):
    import pytest
    from retrain_steps import registry
    from retraining.config import settings
    from retraining.planning import check_run_fits_model, run_model

    conf = settings({"RETRAIN_ARTIFACT_STORE": f"file://{tmp_path}", "RETRAIN_MODEL": "digits"})
    assert run_model(conf, {}) == "digits" and run_model(conf, {"model": "shapes", "new_model": True}) == "shapes"
    with pytest.raises(ValueError, match="not a model name: 'Shapes!'"):
        run_model(conf, {"model": "Shapes!"})
    spec = {"class_names": ["0", "1"], "profile": "image", "height": 8, "width": 8, "channels": 1}
    registry.write_card(conf.registry, {"version": "0123456789ab", "model": "digits", "input_spec": spec})
    registry.promote(conf.registry, "0123456789ab", model="digits")
    with pytest.raises(ValueError, match="model 'digits' exists .production 0123456789ab.: 'New model' starts a model"):
        run_model(conf, {"model": "digits", "new_model": True})
    assert check_run_fits_model(conf, "digits", spec) == "digits"
    shapes = {**spec, "class_names": ["circle", "square"]}
    with pytest.raises(ValueError, match=r"cannot retrain model 'digits': its production 0123456789ab predicts classes "
                                         r"\['0', '1'\], this run's data has \['circle', 'square'\]; .*'New model'"):
        check_run_fits_model(conf, "digits", shapes)
    assert check_run_fits_model(conf, "shapes", shapes) == "shapes", "a model with no production takes any data"
    with pytest.raises(ValueError, match=r"model 'digts' has no production version \(models: digits\); tick 'New model'"):
        run_model(conf, {"model": "digts"})  # a typo cannot start a model
    assert run_model(conf, {"model": "digits"}) == "digits"


WEIGHTS_SHA256 = "0123456789abcdef" * 4


def test_train_arguments_carry_the_architecture_and_pretrained_weights_only_when_set():
    """The form's architecture, weights (a path in the store, resolved to its URI), sha256 and flips reach every
    candidate's train command; the defaults add nothing, so a default run trains as before."""
    chosen = {**PARAMS, "architecture": "resnet18", "pretrained_weights": "weights/resnet18-imagenet.pth",
              "pretrained_sha256": WEIGHTS_SHA256, "augment": True, "flip": True}
    for candidate in commands.candidates(params=chosen, run_id="r1", artifact_store=STORE):
        train = candidate["train"]
        assert train[train.index("--architecture") + 1] == "resnet18"
        assert train[train.index("--pretrained") + 1] == f"{STORE}/weights/resnet18-imagenet.pth"
        assert train[train.index("--pretrained-sha256") + 1] == WEIGHTS_SHA256
        assert "--flip" in train and "--augment" in train
    full_uri = {**chosen, "pretrained_weights": f"{STORE}/weights/r18.pth"}
    train = commands.candidates(params=full_uri, run_id="r1", artifact_store=STORE)[0]["train"]
    assert train[train.index("--pretrained") + 1] == f"{STORE}/weights/r18.pth"
    defaults = {**PARAMS, "architecture": "auto", "pretrained_weights": "", "pretrained_sha256": None, "flip": False}
    for candidate in commands.candidates(params=defaults, run_id="r1", artifact_store=STORE):
        assert not {"--architecture", "--pretrained", "--pretrained-sha256", "--flip"} & set(candidate["train"])
    small = commands.candidates(params={**PARAMS, "architecture": "cnn"}, run_id="r1", artifact_store=STORE)[0]
    assert small["train"][-2:] == ["--architecture", "cnn"]


def test_architecture_arguments_parse_with_the_real_step_cli():
    from retrain_steps.__main__ import build_parser

    chosen = {**PARAMS, "architecture": "convnext_tiny", "pretrained_weights": "w/c.pth",
              "pretrained_sha256": WEIGHTS_SHA256, "flip": True, "augment": True, "patience": 2}
    args = build_parser().parse_args(commands.candidates(params=chosen, run_id="r", artifact_store=STORE)[0]["train"])
    assert (args.architecture, args.pretrained, args.pretrained_sha256, args.flip, args.augment, args.patience) == (
        "convnext_tiny", f"{STORE}/w/c.pth", WEIGHTS_SHA256, True, True, 2)


def test_pretrained_weights_resolve_inside_the_store_only():
    import pytest

    store = "file:///srv/store"
    assert commands.pretrained_uri("weights/r18.pth", store) == "file:///srv/store/weights/r18.pth"
    assert commands.pretrained_uri("file:///srv/store/weights/r18.pth", store) == "file:///srv/store/weights/r18.pth"
    assert commands.pretrained_uri(" w.pth ", "s3://b/a/") == "s3://b/a/w.pth"
    for bad, where in [("weights/../../etc/passwd", store), ("file:///etc/passwd", store), ("../store-x/w.pth", store),
                       ("file:///srv/store-x/w.pth", store), ("s3://b/x.pth", store), ("/etc/passwd", store),
                       ("weights/", store), ("file:///srv/store/", store), ("https://hub.example.com/r.pth", store),
                       ("s3://b/other/w.pth", "s3://b/a"), ("s3://c/a/w.pth", "s3://b/a")]:
        with pytest.raises(ValueError, match=f"pretrained weights '{bad}': not a file in the artifact store "):
            commands.pretrained_uri(bad, where)


def test_pretrained_weights_through_a_link_out_of_the_store_are_refused(tmp_path):
    import pytest

    (tmp_path / "store").mkdir()
    (tmp_path / "secret.pth").write_bytes(b"x")
    (tmp_path / "store" / "w.pth").symlink_to(tmp_path / "secret.pth")
    with pytest.raises(ValueError, match="not a file in the artifact store"):
        commands.pretrained_uri("w.pth", f"file://{tmp_path}/store")


REFUSED_TRAINING = [
    ({"pretrained_weights": "w.pth"}, "Pretrained weights is set .w.pth. but Pretrained weights sha256 is empty"),
    ({"pretrained_sha256": WEIGHTS_SHA256}, f"Pretrained weights sha256 is set .{WEIGHTS_SHA256}. but Pretrained "
                                            "weights is empty"),
    ({"pretrained_weights": "w.pth", "pretrained_sha256": "ABC"}, "Pretrained weights sha256 'ABC' is not 64"),
    ({"framework": "tensorflow", "architecture": "resnet18"},
     "architecture 'resnet18': Keras .framework tensorflow. trains the small CNN only; choose the framework PyTorch"),
    ({"framework": "tensorflow", "pretrained_weights": "w.pth", "pretrained_sha256": WEIGHTS_SHA256},
     "pretrained weights 'w.pth' cannot start Keras"),
    ({"architecture": "cnn", "pretrained_weights": "w.pth", "pretrained_sha256": WEIGHTS_SHA256},
     "pretrained weights 'w.pth' cannot start the small CNN"),
    ({"architecture": "resnet18", "pretrained_weights": "w.pth", "pretrained_sha256": WEIGHTS_SHA256,
      "warm_start": True}, "'Warm start from production' both set the initial weights: choose one"),
    ({"architecture": "resnet18", "pretrained_weights": "file:///elsewhere/w.pth", "pretrained_sha256": WEIGHTS_SHA256},
     "pretrained weights 'file:///elsewhere/w.pth': not a file in the artifact store file:///srv/store/"),
    ({"architecture": "convnext_tiny", "image_size": 28},
     "architecture 'convnext_tiny' needs images of at least 32 px"),
    ({"flip": True}, "'Horizontal flips' is part of the augmentation: tick 'Augment training images' too"),
]


def test_what_cannot_train_fails_the_plan_task_before_any_download():
    """Bad combinations the form cannot see (one field against another) are bad input of ``plan``: one line naming
    the values, no retry; ``plan_candidates`` refuses them too."""
    import pytest
    from retraining.bad_input import BadInput
    from retraining.config import settings
    from retraining.planning import planning_head

    from airflow.sdk import DAG

    with DAG("t3", schedule=None):
        plan, plan_candidates = planning_head(settings({"RETRAIN_ARTIFACT_STORE": "file:///srv/store"}))
    for overrides, message in REFUSED_TRAINING:
        for task in (plan, plan_candidates):
            with pytest.raises(BadInput, match=message) as refused:
                task.operator.python_callable(params={**PARAMS, **overrides}, run_id="r")
            assert "\n" not in str(refused.value) and refused.value.code == 2
    fine = {**PARAMS, "architecture": "convnext_tiny", "image_size": 32, "pretrained_weights": "w.pth",
            "pretrained_sha256": WEIGHTS_SHA256}
    (candidate, _) = plan_candidates.operator.python_callable(params=fine, run_id="r")
    assert candidate["train"][candidate["train"].index("--pretrained") + 1] == "file:///srv/store/w.pth"


def test_the_train_pods_get_the_same_architecture_arguments():
    """The kubernetes backend's train pod runs the arguments the local backend runs (one ``commands.candidates``)."""
    from retraining.config import settings
    from retraining.pod_manifests import default_params, render_pods

    k8s = settings({"RETRAIN_BACKEND": "kubernetes", "RETRAIN_ARTIFACT_STORE": STORE})
    params = default_params(architecture="efficientnet_b0", pretrained_weights="weights/effb0.pth",
                            pretrained_sha256=WEIGHTS_SHA256, learning_rates=[0.01])
    (candidate,) = commands.candidates(params=params, run_id="manual__review", artifact_store=STORE)
    pod = render_pods(k8s, params)["train-0"]["spec"]["containers"][0]
    assert pod["args"] == candidate["train"]
    assert pod["args"][pod["args"].index("--pretrained") + 1] == f"{STORE}/weights/effb0.pth"
