"""The local EventBridge pattern matcher: the operators template.yaml uses, and the rest."""

from __future__ import annotations

import pytest

from localcloud.patterns import PatternError, matches, operators

S3_PATTERN = {
    "source": ["aws.s3"],
    "detail-type": ["Object Created"],
    "detail": {
        "bucket": {"name": ["raw-bucket"]},
        "object": {"key": [{"wildcard": "*.csv"}, {"wildcard": "*_manifest.json"}]},
    },
}


def s3_event(key: str, bucket: str = "raw-bucket") -> dict:
    return {
        "source": "aws.s3",
        "detail-type": "Object Created",
        "detail": {"bucket": {"name": bucket}, "object": {"key": key}},
    }


@pytest.mark.parametrize(
    "key",
    ["used_cars/data.csv", "dataset=used_cars/run_id=x/_manifest.json", "a/b/c/deep.csv"],
)
def test_wildcard_matches_keys_in_any_folder(key: str) -> None:
    assert matches(S3_PATTERN, s3_event(key))


@pytest.mark.parametrize("key", ["used_cars/data.csv.bak", "used_cars/manifest.json", "x.parquet"])
def test_wildcard_rejects_keys_with_other_endings(key: str) -> None:
    assert not matches(S3_PATTERN, s3_event(key))


def test_an_exact_value_must_equal_the_event_field() -> None:
    assert not matches(S3_PATTERN, s3_event("used_cars/data.csv", bucket="other-bucket"))


def test_a_field_missing_from_the_event_does_not_match() -> None:
    event = s3_event("a.csv")
    del event["detail"]["bucket"]
    assert not matches(S3_PATTERN, event)


def test_prefix_matches_the_start_of_a_string_only() -> None:
    pattern = {"detail": {"TrainingJobName": [{"prefix": "mlops-"}]}}
    assert matches(pattern, {"detail": {"TrainingJobName": "mlops-used-cars-run1"}})
    assert not matches(pattern, {"detail": {"TrainingJobName": "other-mlops-job"}})


def test_a_list_of_values_matches_any_of_them() -> None:
    pattern = {"detail": {"state": ["SUCCEEDED", "FAILED"]}}
    assert matches(pattern, {"detail": {"state": "FAILED"}})
    assert not matches(pattern, {"detail": {"state": "RUNNING"}})


def test_an_array_in_the_event_matches_when_one_element_matches() -> None:
    pattern = {"resources": [{"prefix": "arn:aws:s3:::raw"}]}
    assert matches(pattern, {"resources": ["arn:aws:sqs:x", "arn:aws:s3:::raw-bucket"]})


def test_anything_but_exists_and_numeric() -> None:
    assert matches({"a": [{"anything-but": ["x"]}]}, {"a": "y"})
    assert not matches({"a": [{"anything-but": ["x"]}]}, {"a": "x"})
    assert matches({"b": [{"exists": False}]}, {"a": 1})
    assert not matches({"a": [{"exists": False}]}, {"a": 1})
    assert matches({"n": [{"numeric": [">", 0, "<=", 5]}]}, {"n": 5})
    assert not matches({"n": [{"numeric": [">", 0, "<=", 5]}]}, {"n": 6})


def test_or_matches_when_any_branch_matches() -> None:
    pattern = {"$or": [{"a": ["1"]}, {"b": ["2"]}]}
    assert matches(pattern, {"b": "2"})
    assert not matches(pattern, {"a": "2", "b": "1"})


def test_operators_lists_what_a_pattern_uses() -> None:
    assert operators(S3_PATTERN) == {"wildcard"}


def test_an_unknown_operator_is_an_error_not_a_silent_mismatch() -> None:
    with pytest.raises(PatternError, match="sounds-like"):
        matches({"a": [{"sounds-like": "x"}]}, {"a": "x"})
