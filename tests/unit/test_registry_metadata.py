"""CustomerMetadataProperties the registry accepts: botocore's SageMaker model is the judge.

The key/value patterns and lengths are read from botocore's service model at test time (not
copied), and matched with the ``regex`` module, which knows ``\\p{L}`` as Java does.
"""

from __future__ import annotations

import functools
import random
import sys
from typing import Any

import botocore.session
import regex

from mlops.evaluation.registry import metadata


@functools.cache
def _shape(name: str) -> Any:
    return botocore.session.get_session().get_service_model("sagemaker").shape_for(name)


def _utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2  # Java's String.length()


def violations(properties: dict[str, str]) -> list[str]:
    """Why CreateModelPackage would refuse ``properties`` (empty when it would accept them)."""
    problems = []
    size = _shape("CustomerMetadataMap").metadata
    if not size["min"] <= len(properties) <= size["max"]:
        problems.append(f"{len(properties)} entries")
    for kind, texts in (("Key", properties.keys()), ("Value", properties.values())):
        rules = _shape(f"CustomerMetadata{kind}").metadata
        pattern = regex.compile(rules["pattern"], flags=regex.V1)
        for text in texts:
            if not isinstance(text, str) or not pattern.fullmatch(text):
                problems.append(f"{kind.lower()} {text!r} does not match {rules['pattern']}")
            elif not rules["min"] <= _utf16_length(text) <= rules["max"]:
                problems.append(f"{kind.lower()} {text!r} has {_utf16_length(text)} characters")
    return problems


def test_the_botocore_pattern_refuses_the_old_champion_source_wording() -> None:
    # given the value evaluate used to build for a registry champion
    old = {"champion_source": "registry v3 (its own test set)"}
    # when it is checked against the service model
    problems = violations(old)
    # then the API would refuse it (so the checker itself is meaningful)
    assert problems and "registry v3 (its own test set)" in problems[0]


def test_parentheses_in_a_value_are_replaced_by_a_space() -> None:
    # given a value with parentheses
    properties = {"champion_source": "registry v3 (its own test set)"}
    # when it is conformed
    conformed = metadata(properties)
    # then it reads the same without them and the API accepts it
    assert conformed == {"champion_source": "registry v3 its own test set"}
    assert violations(conformed) == []


def test_a_run_of_disallowed_characters_becomes_one_space() -> None:
    conformed = metadata({"note": "champion could not be scored: ValueError: bad (x), y\n"})
    assert conformed == {"note": "champion could not be scored: ValueError: bad x y"}


def test_disallowed_characters_in_a_key_become_underscores() -> None:
    conformed = metadata({"improvement(vs)champion,%": "0.1"})
    assert conformed == {"improvement_vs_champion": "0.1"}
    assert violations(conformed) == []


def test_keys_made_equal_by_conforming_stay_distinct() -> None:
    conformed = metadata({"a(b": "1", "a)b": "2", "a_b": "3"})
    assert conformed == {"a_b": "1", "a_b_2": "2", "a_b_3": "3"}


def test_a_key_of_only_disallowed_characters_becomes_an_underscore() -> None:
    assert metadata({"()": "x"}) == {"_": "x"}


def test_a_long_value_is_cut_to_the_api_maximum() -> None:
    limit = _shape("CustomerMetadataValue").metadata["max"]
    conformed = metadata({"report_url": "s3://bucket/" + "k" * 1000})
    assert len(conformed["report_url"]) == limit
    assert violations(conformed) == []


def test_a_long_key_is_cut_to_the_api_maximum() -> None:
    limit = _shape("CustomerMetadataKey").metadata["max"]
    conformed = metadata({"k" * 1000: "v"})
    assert [len(k) for k in conformed] == [limit]


def test_letters_outside_the_basic_plane_count_as_two_characters() -> None:
    # given a value of mathematical letters (\p{L}, two UTF-16 units each in Java)
    conformed = metadata({"name": "\U0001d400" * 200})
    # then it is cut at 256 UTF-16 units, never in the middle of a letter
    assert conformed["name"] == "\U0001d400" * 128
    assert violations(conformed) == []


def test_none_and_empty_values_are_left_out() -> None:
    assert metadata({"champion": None, "champion_source": "", "gone": "()", "run_id": "r1"}) == {
        "run_id": "r1"
    }


def test_values_become_strings() -> None:
    assert metadata({"candidate": 1200.5, "version": 3, "flag": True}) == {
        "candidate": "1200.5",
        "version": "3",
        "flag": "True",
    }


def test_entries_past_the_api_maximum_are_dropped() -> None:
    limit = _shape("CustomerMetadataMap").metadata["max"]
    conformed = metadata({f"k{i}": "v" for i in range(limit + 10)})
    assert list(conformed) == [f"k{i}" for i in range(limit)]


def test_legal_metadata_comes_back_unchanged() -> None:
    legal = {
        "run_id": "20261127T083000Z-1a2b3c4d",
        "model_data_url": "s3://mlops-dev-artifacts/models/used_cars/job/output/model.tar.gz",
        "trained_at": "2026-11-27T08:30:00+00:00",
        "candidate": "-1.5e-05",
        "note": "Größe  über  alles @home",
    }
    assert metadata(legal) == legal


def test_any_text_is_conformed_to_what_the_api_accepts() -> None:
    # given keys and values drawn from the whole of Unicode (seeded, so reproducible)
    rng = random.Random(20261127)

    def text(size: int) -> str:
        return "".join(
            chr(rng.choice([rng.randrange(0x20, 0x7F), rng.randrange(0, sys.maxunicode + 1)]))
            for _ in range(rng.randrange(size))
        )

    for _ in range(200):
        raw = {text(200): text(400) for _ in range(rng.randrange(1, 60))}
        # when it is conformed
        conformed = metadata(raw)
        # then the API accepts every key and value (or nothing is left to send)
        assert not conformed or violations(conformed) == []
