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


# ---------------------------------------------------------------------- AWS's rules, one by one
# "Amazon EventBridge event patterns", "Content filtering in Amazon EventBridge event patterns",
# "Matching events on null values and empty strings"; Event Ruler where the docs are silent.


def test_given_a_scalar_pattern_value_when_matching_then_pattern_error() -> None:
    with pytest.raises(PatternError, match="must be a list"):
        matches({"source": "aws.s3"}, {"source": "aws.s3"})


def test_given_an_empty_pattern_array_when_matching_then_pattern_error() -> None:
    with pytest.raises(PatternError, match="empty arrays"):
        matches({"source": []}, {"source": "aws.s3"})


def test_given_a_filter_with_two_operators_when_matching_then_pattern_error() -> None:
    with pytest.raises(PatternError, match="only one key"):
        matches({"a": [{"prefix": "x", "suffix": "y"}]}, {"a": "xy"})


def test_given_an_exact_string_when_the_case_differs_then_no_match() -> None:
    assert matches({"state": ["running"]}, {"state": "running"})
    assert not matches({"state": ["running"]}, {"state": "Running"})


def test_given_a_number_pattern_when_the_event_has_the_same_digits_as_a_string_then_no_match() -> (
    None
):
    assert matches({"n": [5]}, {"n": 5})
    assert not matches({"n": [5]}, {"n": "5"})
    assert not matches({"n": ["5"]}, {"n": 5})


def test_given_300_when_the_event_has_300_point_0_then_no_match() -> None:
    # "For numbers, EventBridge uses string representation": 300 and 300.0 are not equal.
    assert not matches({"n": [300]}, {"n": 300.0})
    assert matches({"n": [300.0]}, {"n": 300.0})


def test_given_true_when_the_event_has_1_then_no_match() -> None:
    assert matches({"flag": [True]}, {"flag": True})
    assert not matches({"flag": [True]}, {"flag": 1})
    assert not matches({"n": [1]}, {"n": True})


def test_given_null_when_the_event_has_null_or_an_empty_string_then_only_null_matches() -> None:
    assert matches({"detail": {"responseElements": [None]}}, {"detail": {"responseElements": None}})
    assert not matches(
        {"detail": {"responseElements": [None]}}, {"detail": {"responseElements": ""}}
    )
    assert not matches({"detail": {"responseElements": [None]}}, {"detail": {}})


def test_given_an_empty_string_when_the_event_has_null_then_no_match() -> None:
    assert matches({"detail": {"eventVersion": [""]}}, {"detail": {"eventVersion": ""}})
    assert not matches({"detail": {"eventVersion": [""]}}, {"detail": {"eventVersion": None}})


def test_given_a_prefix_when_the_value_is_not_a_string_then_no_match() -> None:
    assert matches({"v": [{"prefix": "12"}]}, {"v": "123"})
    assert not matches({"v": [{"prefix": "12"}]}, {"v": 123})


def test_given_a_prefix_when_the_case_differs_then_no_match() -> None:
    assert not matches({"time": [{"prefix": "2017-10-02t"}]}, {"time": "2017-10-02T18:43:48Z"})


def test_given_prefix_equals_ignore_case_when_the_case_differs_then_match() -> None:
    pattern = {"service": [{"prefix": {"equals-ignore-case": "EventB"}}]}
    assert matches(pattern, {"service": "eventbridge"})
    assert matches(pattern, {"service": "EVENTBRIDGE"})
    assert not matches(pattern, {"service": "sqs"})


def test_given_a_suffix_when_the_value_ends_otherwise_then_no_match() -> None:
    assert matches({"FileName": [{"suffix": ".png"}]}, {"FileName": "a.png"})
    assert not matches({"FileName": [{"suffix": ".png"}]}, {"FileName": "a.PNG"})
    assert not matches({"FileName": [{"suffix": ".png"}]}, {"FileName": "a.png.bak"})


def test_given_suffix_equals_ignore_case_when_the_case_differs_then_match() -> None:
    pattern = {"FileName": [{"suffix": {"equals-ignore-case": ".png"}}]}
    assert matches(pattern, {"FileName": "photo.PNG"})
    assert not matches(pattern, {"FileName": "photo.jpg"})


def test_given_equals_ignore_case_when_the_case_differs_then_match() -> None:
    assert matches({"Name": [{"equals-ignore-case": "alice"}]}, {"Name": "ALICE"})
    assert not matches({"Name": [{"equals-ignore-case": "alice"}]}, {"Name": "alicia"})


def test_given_a_wildcard_when_the_case_differs_then_no_match() -> None:
    # Wildcard matching is case-sensitive; only equals-ignore-case folds case.
    assert matches({"key": [{"wildcard": "*.csv"}]}, {"key": "dir/a.csv"})
    assert not matches({"key": [{"wildcard": "*.csv"}]}, {"key": "dir/a.CSV"})
    assert not matches({"key": [{"wildcard": "mlops-*-dev"}]}, {"key": "MLOPS-x-dev"})


def test_given_a_wildcard_when_the_value_is_not_a_string_then_no_match() -> None:
    assert not matches({"n": [{"wildcard": "1*"}]}, {"n": 12})


def test_given_an_escaped_star_when_matching_then_it_is_a_literal_star() -> None:
    pattern = {"name": [{"wildcard": "a\\*b"}]}
    assert matches(pattern, {"name": "a*b"})
    assert not matches(pattern, {"name": "axb"})


def test_given_an_escaped_backslash_when_matching_then_it_is_a_literal_backslash() -> None:
    pattern = {"path": [{"wildcard": "C:\\\\*"}]}
    assert matches(pattern, {"path": "C:\\temp"})
    assert not matches(pattern, {"path": "C:/temp"})


@pytest.mark.parametrize("wildcard", ["a**b", "a\\b", "trailing\\"])
def test_given_consecutive_wildcards_or_a_bad_escape_then_pattern_error(wildcard: str) -> None:
    with pytest.raises(PatternError):
        matches({"name": [{"wildcard": wildcard}]}, {"name": "ab"})


def test_given_anything_but_a_string_when_the_field_is_missing_then_no_match() -> None:
    pattern = {"detail": {"state": [{"anything-but": "initializing"}]}}
    assert matches(pattern, {"detail": {"state": "running"}})
    assert not matches(pattern, {"detail": {"state": "initializing"}})
    assert not matches(pattern, {"detail": {}})


def test_given_anything_but_a_string_when_the_value_is_null_or_a_number_then_match() -> None:
    pattern = {"state": [{"anything-but": "initializing"}]}
    assert matches(pattern, {"state": None})
    assert matches(pattern, {"state": 5})


def test_given_anything_but_numbers_when_the_value_is_the_same_number_as_text_then_match() -> None:
    pattern = {"x-limit": [{"anything-but": [100, 200, 300]}]}
    assert not matches(pattern, {"x-limit": 200})
    assert matches(pattern, {"x-limit": 201})
    assert matches(pattern, {"x-limit": "200"})


def test_given_anything_but_a_mixed_list_then_pattern_error() -> None:
    with pytest.raises(PatternError, match="anything-but"):
        matches({"a": [{"anything-but": ["x", 1]}]}, {"a": "y"})


@pytest.mark.parametrize(
    ("operand", "refused", "allowed"),
    [
        ({"prefix": "init"}, "initializing", "running"),
        ({"prefix": ["init", "error"]}, "error-1", "running"),
        ({"suffix": ".png"}, "a.png", "a.jpg"),
        ({"suffix": [".png", ".gif"]}, "a.gif", "a.jpg"),
        ({"equals-ignore-case": "Stopped"}, "STOPPED", "running"),
        ({"equals-ignore-case": ["Stopped", "OverLoaded"]}, "overloaded", "running"),
        ({"wildcard": "*/lib/*"}, "/usr/lib/x.so", "/usr/bin/x"),
        ({"wildcard": ["*/bin/*.jar", "*/bin/*.class"]}, "/a/bin/b.class", "/a/bin/b.py"),
    ],
)
def test_given_anything_but_an_operator_when_the_value_matches_it_then_no_match(
    operand: dict, refused: str, allowed: str
) -> None:
    pattern = {"v": [{"anything-but": operand}]}
    assert not matches(pattern, {"v": refused})
    assert matches(pattern, {"v": allowed})


def test_given_anything_but_wildcard_when_the_case_differs_then_it_is_not_excluded() -> None:
    assert matches({"v": [{"anything-but": {"wildcard": "*.PNG"}}]}, {"v": "a.png"})


def test_given_anything_but_when_the_event_array_has_another_value_then_match() -> None:
    pattern = {"states": [{"anything-but": ["stopped"]}]}
    assert matches(pattern, {"states": ["stopped", "running"]})
    assert not matches(pattern, {"states": ["stopped"]})


def test_given_a_numeric_range_when_the_value_is_a_string_or_boolean_then_no_match() -> None:
    pattern = {"c": [{"numeric": [">", 0, "<=", 5]}]}
    assert matches(pattern, {"c": 5})
    assert matches(pattern, {"c": 0.5})
    assert not matches(pattern, {"c": 0})
    assert not matches(pattern, {"c": "3"})
    assert not matches(pattern, {"c": True})


def test_given_numeric_equals_when_the_value_is_the_same_number_then_match() -> None:
    assert matches({"x": [{"numeric": ["=", 3.018e2]}]}, {"x": 301.8})
    assert matches({"x": [{"numeric": ["=", 300]}]}, {"x": 300.0})


@pytest.mark.parametrize(
    "numeric", [[">", 5, "<", 1], ["<", 5, ">", 1], ["=", "5"], [">"], ["~", 1], ["=", True]]
)
def test_given_an_invalid_numeric_expression_then_pattern_error(numeric: list) -> None:
    with pytest.raises(PatternError):
        matches({"x": [{"numeric": numeric}]}, {"x": 1})


def test_given_exists_true_when_the_field_holds_an_object_then_no_match() -> None:
    # Exists matching only works on leaf nodes.
    assert matches({"d": {"c": [{"exists": True}]}}, {"d": {"c": 1}})
    assert not matches({"d": {"c": [{"exists": True}]}}, {"d": {"c": {"c1": 100}}})


def test_given_exists_false_when_the_field_holds_an_object_then_match() -> None:
    assert matches({"d": {"c": [{"exists": False}]}}, {"d": {"c": {"c1": 100}}})
    assert matches({"d": {"c": [{"exists": False}]}}, {"d": {"state": "x"}})
    assert not matches({"d": {"c": [{"exists": False}]}}, {"d": {"c": 0}})


def test_given_exists_true_when_the_field_is_null_then_match() -> None:
    assert matches({"c": [{"exists": True}]}, {"c": None})


def test_given_exists_false_when_the_parent_object_is_missing_then_match() -> None:
    assert matches({"detail": {"c": [{"exists": False}]}}, {"source": "x"})
    assert not matches({"detail": {"c": [{"exists": True}]}}, {"source": "x"})


def test_given_exists_when_the_field_is_an_empty_array_then_it_does_not_exist() -> None:
    assert matches({"r": [{"exists": False}]}, {"r": []})
    assert not matches({"r": [{"exists": True}]}, {"r": []})


def test_given_exists_with_a_non_boolean_then_pattern_error() -> None:
    with pytest.raises(PatternError):
        matches({"c": [{"exists": "true"}]}, {"c": 1})


def test_given_nested_event_arrays_when_any_element_matches_then_match() -> None:
    assert matches({"r": ["b"]}, {"r": [["a"], ["b", "c"]]})


def test_given_an_array_of_objects_when_one_element_has_the_value_then_match() -> None:
    event = {"employees": [{"first": "John", "last": "Doe"}, {"first": "Anna", "last": "Smith"}]}
    assert matches({"employees": {"first": ["Anna"]}}, event)
    assert not matches({"employees": {"first": ["Peter"]}}, event)


def test_given_two_fields_in_different_array_elements_then_no_match() -> None:
    # Event Ruler's array consistency: fields must match within the same element.
    event = {"employees": [{"first": "John", "last": "Doe"}, {"first": "Anna", "last": "Smith"}]}
    assert matches({"employees": {"first": ["Anna"], "last": ["Smith"]}}, event)
    assert not matches({"employees": {"first": ["Anna"], "last": ["Doe"]}}, event)


def test_given_or_inside_a_nested_object_when_one_branch_matches_then_match() -> None:
    pattern = {
        "source": ["aws.cloudwatch"],
        "detail": {"$or": [{"metricName": ["CPUUtilization"]}, {"namespace": ["AWS/EC2"]}]},
    }
    assert matches(pattern, {"source": "aws.cloudwatch", "detail": {"namespace": "AWS/EC2"}})
    assert not matches(pattern, {"source": "aws.cloudwatch", "detail": {"namespace": "AWS/ES"}})
    assert not matches(pattern, {"source": "aws.ec2", "detail": {"namespace": "AWS/EC2"}})


def test_given_or_with_one_branch_then_pattern_error() -> None:
    with pytest.raises(PatternError, match="at least two"):
        matches({"$or": [{"a": ["1"]}]}, {"a": "1"})


def test_given_a_cidr_when_the_address_is_inside_then_match() -> None:
    pattern = {"ip": [{"cidr": "10.0.0.0/24"}]}
    assert matches(pattern, {"ip": "10.0.0.24"})
    assert not matches(pattern, {"ip": "10.0.1.1"})
    assert not matches(pattern, {"ip": "not-an-ip"})
    assert matches({"ip": [{"cidr": "2001:db8::/32"}]}, {"ip": "2001:db8::1"})


def test_given_an_invalid_cidr_then_pattern_error() -> None:
    with pytest.raises(PatternError):
        matches({"ip": [{"cidr": "10.0.0.0/99"}]}, {"ip": "10.0.0.1"})


def test_given_a_pattern_field_missing_from_a_scalar_event_field_then_no_match() -> None:
    assert not matches({"detail": {"state": ["x"]}}, {"detail": "x"})


def test_given_nested_operators_when_listing_them_then_all_are_found() -> None:
    pattern = {
        "a": [{"prefix": {"equals-ignore-case": "x"}}],
        "$or": [{"b": [{"anything-but": {"wildcard": "*y"}}]}, {"c": [{"exists": True}]}],
    }
    assert operators(pattern) == {
        "prefix",
        "equals-ignore-case",
        "anything-but",
        "wildcard",
        "exists",
    }
