"""``mlops predict``: a payload that is not rows is a one-line error and a non-zero exit."""

from __future__ import annotations

from typing import Any

import pytest

from localcloud import cli


@pytest.fixture
def no_cloud_needed(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Records whether the command got as far as looking for a running local cloud."""
    looked: list[Any] = []

    def live_state(root: Any) -> None:
        looked.append(root)
        return None

    monkeypatch.setattr("localcloud.remote.live_state", live_state)
    return looked


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("{bad json", "not valid JSON"),
        ("[" * 100_000, "not valid JSON"),
        ("42", "a JSON object or a list of objects"),
        ("[]", "a JSON object or a list of objects"),
    ],
)
def test_a_payload_that_is_not_rows_prints_why_and_exits_2_without_a_traceback(
    capsys: pytest.CaptureFixture[str], no_cloud_needed: list[Any], payload: str, reason: str
) -> None:
    code = cli.main(["predict", payload])

    out, err = capsys.readouterr()
    assert code == 2
    assert out.startswith("mlops predict: ") and reason in out
    assert "Traceback" not in out + err
    assert no_cloud_needed == []  # refused before any cloud is looked for


def test_a_valid_payload_goes_on_to_look_for_the_local_cloud(
    capsys: pytest.CaptureFixture[str], no_cloud_needed: list[Any]
) -> None:
    code = cli.main(["predict", '{"make": "toyota"}'])

    assert code == 3  # no cloud running: the payload itself was accepted
    assert len(no_cloud_needed) == 1
