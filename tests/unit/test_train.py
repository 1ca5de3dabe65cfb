"""training/train.py: the script-mode entry point, run on small generated curated runs."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import joblib
import pytest
import train

from tests.unit.test_train_fixtures import (
    artifact_for,
    classification_frame,
    regression_frame,
    train_argv,
    used_cars_raw,
    used_cars_run,
    write_run,
)


@pytest.fixture(autouse=True)
def one_thread():
    """OpenMP threads spin against each other on this shared machine; tiny data needs one."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


def run_training(tmp_path: Path, frame, task: str) -> tuple[int, Path]:
    channels = write_run(tmp_path / "input", frame, artifact_for(task, frame))
    model_dir = tmp_path / "model"
    code = train.main(train_argv(channels, model_dir, tmp_path / "output"))
    return code, model_dir


def test_regression_model_beats_the_mean_baseline_on_the_test_split(tmp_path: Path) -> None:
    code, model_dir = run_training(tmp_path, regression_frame(600), "regression")

    evaluation = json.loads((model_dir / "evaluation.json").read_text())
    assert code == 0
    assert evaluation["metric"] == "rmse"
    assert evaluation["candidate"]["rmse"] < 0.5 * evaluation["baseline"]["rmse"]
    assert set(evaluation["candidate"]) == {"rmse", "mae", "r2"}


def test_classification_model_beats_the_majority_class_baseline(tmp_path: Path) -> None:
    code, model_dir = run_training(tmp_path, classification_frame(800), "classification")

    evaluation = json.loads((model_dir / "evaluation.json").read_text())
    assert code == 0
    assert evaluation["metric"] == "f1_macro"
    assert evaluation["candidate"]["f1_macro"] > evaluation["baseline"]["f1_macro"] + 0.2
    assert evaluation["candidate"]["accuracy"] > evaluation["baseline"]["accuracy"]
    assert {"log_loss", "roc_auc"} <= set(evaluation["candidate"])
    labels = evaluation["confusion_matrix"]["labels"]
    assert sorted(labels) == ["cheap", "expensive"]
    assert sum(map(sum, evaluation["confusion_matrix"]["matrix"])) == evaluation["test_rows"]


def test_model_dir_is_self_contained_for_the_serving_container(tmp_path: Path) -> None:
    _, model_dir = run_training(tmp_path, regression_frame(300), "regression")

    for name in ("model.joblib", "preprocessing.json", "evaluation.json", "code/inference.py"):
        assert (model_dir / name).is_file(), name
    assert (model_dir / "code/mlops/__init__.py").is_file()
    assert hasattr(joblib.load(model_dir / "model.joblib"), "predict")


def test_evaluation_carries_bounded_plot_sample_and_feature_importance(tmp_path: Path) -> None:
    _, model_dir = run_training(tmp_path, regression_frame(4000), "regression")

    evaluation = json.loads((model_dir / "evaluation.json").read_text())
    assert evaluation["test_rows"] == 600
    assert len(evaluation["sample"]["y_true"]) == len(evaluation["sample"]["y_pred"]) == 500
    assert set(evaluation["feature_importance"]) == {"x1", "x2", "category"}
    # x1 carries the most signal (coefficient 3) in the generated data.
    assert max(evaluation["feature_importance"], key=evaluation["feature_importance"].get) == "x1"
    assert evaluation["training_seconds"] > 0
    assert evaluation["model"]["run_id"] == "20261127T083000Z-1a2b3c4d"


def test_iterations_are_chosen_on_the_validation_split(tmp_path: Path) -> None:
    # Pure noise: more trees only overfit, so validation picks far fewer than max_iter.
    frame = regression_frame(400)
    frame["price"] = regression_frame(400, seed=99)["price"].sample(frac=1, random_state=1).values
    _, model_dir = run_training(tmp_path, frame, "regression")

    evaluation = json.loads((model_dir / "evaluation.json").read_text())
    assert evaluation["iterations"] < 200


def test_without_champion_channel_champion_is_null_with_the_reason(tmp_path: Path) -> None:
    _, model_dir = run_training(tmp_path, regression_frame(300), "regression")

    evaluation = json.loads((model_dir / "evaluation.json").read_text())
    assert evaluation["champion"] is None
    assert "no champion" in evaluation["champion_note"]


def test_champion_with_the_same_preprocessing_is_scored_on_the_same_test_rows(
    tmp_path: Path,
) -> None:
    frame = regression_frame(600)
    _, champion_dir = run_training(tmp_path / "first", frame, "regression")
    archive = tmp_path / "champion" / "model.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        for item in champion_dir.iterdir():
            tar.add(item, arcname=item.name)
    channels = write_run(tmp_path / "input", frame, artifact_for("regression", frame))
    argv = train_argv(channels, tmp_path / "model", tmp_path / "out")

    train.main([*argv, "--champion", str(archive.parent)])

    evaluation = json.loads((tmp_path / "model" / "evaluation.json").read_text())
    first = json.loads((champion_dir / "evaluation.json").read_text())
    assert evaluation["champion"] == pytest.approx(first["candidate"])


def test_sagemaker_environment_variables_are_the_defaults(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SM_MODEL_DIR", str(tmp_path / "m"))
    monkeypatch.setenv("SM_CHANNEL_TRAIN", str(tmp_path / "t"))
    monkeypatch.setenv("SM_CHANNEL_CHAMPION", str(tmp_path / "c"))

    args = train.parse_args(["--max_iter", "7", "--sagemaker_unknown", "x"])

    assert (args.model_dir, args.train, args.champion) == (
        str(tmp_path / "m"),
        str(tmp_path / "t"),
        str(tmp_path / "c"),
    )
    assert args.max_iter == 7


def test_a_failing_training_writes_the_failure_file_and_exits_non_zero(tmp_path: Path) -> None:
    frame = regression_frame(100)
    artifact = artifact_for("regression", frame) | {"feature_names": ["x1", "not_a_column"]}
    channels = write_run(tmp_path / "input", frame, artifact)

    code = train.main(train_argv(channels, tmp_path / "model", tmp_path / "output"))

    assert code == 1
    assert "not_a_column" in (tmp_path / "output" / "failure").read_text()


def test_used_cars_prepared_by_the_preparation_pipeline_trains_past_the_baseline(
    tmp_path: Path,
) -> None:
    channels = used_cars_run(tmp_path / "input", used_cars_raw(600))

    code = train.main(train_argv(channels, tmp_path / "model", tmp_path / "out"))

    evaluation = json.loads((tmp_path / "model" / "evaluation.json").read_text())
    assert code == 0
    assert evaluation["candidate"]["rmse"] < 0.5 * evaluation["baseline"]["rmse"]
    assert (tmp_path / "model/code/mlops/ml/preprocessing.py").is_file()


def test_champion_from_another_run_is_scored_through_its_own_preprocessing(
    tmp_path: Path,
) -> None:
    # The champion's artifact was fitted on other rows: its scaling differs from the new run's.
    old = used_cars_run(tmp_path / "old", used_cars_raw(500, seed=1), run_id="old")
    train.main(train_argv(old, tmp_path / "champion_model", tmp_path / "o1"))
    archive = tmp_path / "champion" / "model.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        for item in (tmp_path / "champion_model").iterdir():
            tar.add(item, arcname=item.name)
    new = used_cars_run(tmp_path / "new", used_cars_raw(500, seed=2), run_id="new")
    argv = train_argv(new, tmp_path / "model", tmp_path / "o2")

    train.main([*argv, "--champion", str(archive.parent)])

    evaluation = json.loads((tmp_path / "model" / "evaluation.json").read_text())
    assert evaluation["champion_note"] == "scored on the same test rows"
    # Same price rule in both runs: a correctly re-prepared champion is far better than the mean.
    assert evaluation["champion"]["rmse"] < 0.5 * evaluation["baseline"]["rmse"]


def test_the_artifact_ships_no_requirements_for_the_serving_container_to_install(
    tmp_path: Path,
) -> None:
    _, model_dir = run_training(tmp_path, regression_frame(300), "regression")

    assert not (model_dir / "code" / "requirements.txt").exists()
