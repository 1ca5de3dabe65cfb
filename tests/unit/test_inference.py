"""training/inference.py: the serving hooks the SageMaker scikit-learn container calls."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import inference
import pytest
import train

from tests.unit.test_train_fixtures import (
    segment_contract,
    train_argv,
    used_cars_raw,
    used_cars_run,
    with_segment,
)

RECORD = {
    "listing_id": "L999999",
    "make": "BMW",
    "model": "x5",
    "year": 2024,
    "mileage": 12000,
    "fuel": "petrol",
    "transmission": "automatic",
    "engine_size": 3.0,
    "body": "suv",
    "posted_date": "2026-11-20",
}
OLD = RECORD | {"make": "ford", "model": "fiesta", "year": 2004, "mileage": 140000}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from threadpoolctl import threadpool_limits

    root = tmp_path_factory.mktemp("served")
    channels = used_cars_run(root / "input", used_cars_raw(500))
    with threadpool_limits(limits=1):
        assert train.main(train_argv(channels, root / "model", root / "out")) == 0
    return root / "model"


@pytest.fixture(scope="module")
def model(model_dir: Path) -> dict:
    return inference.model_fn(str(model_dir))


def test_model_fn_loads_the_estimator_with_its_identity(model: dict) -> None:
    assert hasattr(model["estimator"], "predict")
    assert model["model"]["dataset"] == "used_cars"
    assert model["model"]["run_id"] == "20261127T083000Z-1a2b3c4d"
    assert model["model"]["trained_at"]


def test_one_json_object_is_one_record() -> None:
    frame = inference.input_fn(json.dumps(RECORD).encode(), "application/json")

    assert len(frame) == 1
    assert frame.loc[0, "make"] == "BMW"


def test_a_json_list_and_an_instances_envelope_are_many_records() -> None:
    as_list = inference.input_fn(json.dumps([RECORD, OLD]), "application/json")
    as_instances = inference.input_fn(
        json.dumps({"instances": [RECORD, OLD]}), "application/json; charset=utf-8"
    )

    assert len(as_list) == len(as_instances) == 2


def test_csv_with_a_header_row_is_parsed_by_column_name() -> None:
    header = ",".join(RECORD)
    body = "\n".join([header, ",".join(str(v) for v in OLD.values())])

    frame = inference.input_fn(body, "text/csv")

    assert frame.loc[0, "model"] == "fiesta"
    assert frame.loc[0, "year"] == 2004


def answer(result: object) -> tuple[int, dict]:
    """The status and JSON body ``output_fn`` gives for a result (200 for a plain body)."""
    out = inference.output_fn(result, "application/json")
    if isinstance(out, str):
        return 200, json.loads(out)
    return out.status_code, json.loads(out.get_data())


def test_an_unsupported_content_type_is_a_415_naming_it() -> None:
    status, body = answer(inference.input_fn(b"<car/>", "application/xml"))

    assert status == 415
    assert "unsupported content type 'application/xml'" in body["message"]


def test_invalid_json_is_a_400_saying_so() -> None:
    status, body = answer(inference.input_fn(b"{not json", "application/json"))

    assert status == 400
    assert "not valid JSON" in body["message"]


def test_json_nested_too_deep_to_decode_is_a_400() -> None:
    status, body = answer(inference.input_fn("[" * 100_000 + "]" * 100_000, "application/json"))

    assert status == 400
    assert "nested too deeply" in body["message"]


def test_predictions_follow_the_learnt_price_rule(model: dict) -> None:
    data = inference.input_fn(json.dumps([RECORD, OLD]), "application/json")

    result = inference.predict_fn(data, model)

    new_suv, old_hatch = result["predictions"]
    assert new_suv > old_hatch
    assert "probabilities" not in result


def test_messy_spellings_are_cleaned_by_the_shipped_contract(model: dict) -> None:
    canonical = inference.predict_fn(
        inference.input_fn(json.dumps(RECORD), "application/json"), model
    )
    messy = inference.predict_fn(
        inference.input_fn(json.dumps(RECORD | {"make": " bmw "}), "application/json"), model
    )

    assert messy["predictions"] == pytest.approx(canonical["predictions"])


def test_a_record_missing_a_required_column_is_a_400_naming_it(model: dict) -> None:
    data = inference.input_fn(
        json.dumps({k: v for k, v in RECORD.items() if k != "year"}), "application/json"
    )

    status, body = answer(inference.predict_fn(data, model))

    assert status == 400
    assert "lacks required columns" in body["message"] and "year" in body["message"]


def predicted(model: dict, *records: dict) -> tuple[int, dict]:
    return answer(inference.predict_fn(inference.input_fn(json.dumps(list(records)), JSON), model))


JSON = "application/json"


def test_a_year_below_the_contract_minimum_is_a_400_not_a_price(model: dict) -> None:
    status, body = predicted(model, RECORD | {"year": 1800})

    assert status == 400
    assert "predictions" not in body
    ((error),) = body["errors"]
    assert (error["row"], error["field"]) == (0, "year")
    assert "from" in error["message"]  # names the contract's range


def test_a_fuel_outside_the_contract_options_is_a_400_listing_them(
    model: dict, model_dir: Path
) -> None:
    status, body = predicted(model, RECORD | {"fuel": "plutonium"})

    assert status == 400
    ((error),) = body["errors"]
    assert (error["row"], error["field"]) == (0, "fuel")
    assert error["message"].startswith("must be one of: ") and "petrol" in error["message"]


def test_every_refused_value_of_every_row_is_listed(model: dict) -> None:
    status, body = predicted(
        model, RECORD, OLD | {"year": 1800, "fuel": "plutonium", "mileage": "lots"}
    )

    assert status == 400
    assert {(e["row"], e["field"]) for e in body["errors"]} == {
        (1, "year"),
        (1, "fuel"),
        (1, "mileage"),
    }


def test_a_required_feature_sent_empty_is_a_400(model: dict) -> None:
    status, body = predicted(model, RECORD | {"make": None})

    assert status == 400
    assert body["errors"] == [{"row": 0, "field": "make", "message": "is required"}]


def test_contract_spellings_and_aliases_are_not_refused(model: dict) -> None:
    status, body = predicted(model, RECORD | {"make": " bmw ", "fuel": "PETROL"})

    assert status == 200
    assert len(body["predictions"]) == 1


def test_inside_the_container_a_refusal_is_its_worker_response_with_the_status(
    model: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[dict] = []

    class WorkerResponse:  # the signature of sagemaker_containers' worker.Response
        def __init__(self, response: str, status: int, mimetype: str) -> None:
            made.append({"response": response, "status": status, "mimetype": mimetype})

    monkeypatch.setattr(inference, "_ContainerResponse", WorkerResponse)

    inference.output_fn(
        inference.predict_fn(inference.input_fn(json.dumps(RECORD | {"year": 1800}), JSON), model),
        JSON,
    )

    ((response),) = made
    assert response["status"] == 400 and response["mimetype"] == JSON
    assert json.loads(response["response"])["errors"][0]["field"] == "year"


def test_output_is_json_with_predictions_and_the_model_identity(model: dict) -> None:
    prediction = inference.predict_fn(
        inference.input_fn(json.dumps(RECORD), "application/json"), model
    )

    body = json.loads(inference.output_fn(prediction, "application/json"))

    assert len(body["predictions"]) == 1
    assert set(body["model"]) == {"dataset", "contract_version", "trained_at", "run_id"}


def test_an_unsupported_accept_type_is_a_406_naming_it(model: dict) -> None:
    out = inference.output_fn({"predictions": []}, "text/html")

    assert out.status_code == 406
    assert "unsupported accept type" in json.loads(out.get_data())["message"]


def test_the_shipped_code_directory_serves_without_the_repository(
    model_dir: Path, tmp_path
) -> None:
    # The serving container puts only code/ on the path: import inference and mlops from there.
    import subprocess

    script = (
        "import json, sys; sys.path.insert(0, sys.argv[1] + '/code'); import inference; "
        "m = inference.model_fn(sys.argv[1]); "
        f"d = inference.input_fn({json.dumps(json.dumps(RECORD))}, 'application/json'); "
        "print(inference.output_fn(inference.predict_fn(d, m), 'application/json'))"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", script, str(model_dir)],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["predictions"]) == 1


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from threadpoolctl import threadpool_limits

    root = tmp_path_factory.mktemp("classifier")
    raw = with_segment(used_cars_raw(500))
    channels = used_cars_run(root / "input", raw, contract=segment_contract())
    with threadpool_limits(limits=1):
        assert train.main(train_argv(channels, root / "model", root / "out")) == 0
    return inference.model_fn(str(root / "model"))


def test_a_classifier_answers_labels_with_a_probability_per_class(classifier: dict) -> None:
    data = inference.input_fn(json.dumps([RECORD, OLD]), "application/json")

    result = inference.predict_fn(data, classifier)

    assert result["predictions"] == ["premium", "budget"]
    for row in result["probabilities"]:
        assert set(row) == {"budget", "premium"}
        assert sum(row.values()) == pytest.approx(1.0)
    assert result["probabilities"][0]["premium"] > 0.5
