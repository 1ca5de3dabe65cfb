"""Image URI resolution for the prebuilt scikit-learn containers."""

from __future__ import annotations

import json

import pytest

from mlops import images
from tools import gen_image_uris


def test_us_east_1_training_image_uses_the_sklearn_registry_account_of_that_region() -> None:
    uri = images.sklearn_image_uri("us-east-1", version="1.9-0")

    assert uri == (
        "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.9-0-cpu-py3"
    )


@pytest.mark.parametrize(
    ("region", "account"),
    [("eu-west-1", "141502667606"), ("us-west-2", "246618743249"), ("ap-south-1", "720646828776")],
)
def test_each_region_resolves_to_its_own_registry_account(region: str, account: str) -> None:
    uri = images.sklearn_image_uri(region)

    assert uri.startswith(f"{account}.dkr.ecr.{region}.amazonaws.com/")


def test_china_regions_use_the_china_partition_domain() -> None:
    uri = images.sklearn_image_uri("cn-north-1")

    assert ".dkr.ecr.cn-north-1.amazonaws.com.cn/" in uri


def test_inference_scope_resolves_the_serving_image_of_the_same_version() -> None:
    uri = images.sklearn_image_uri("us-east-1", version="1.9-0", scope="inference")

    assert uri.endswith("/sagemaker-scikit-learn:1.9-0-cpu-py3")


def test_unknown_version_is_a_clear_error_listing_the_known_ones() -> None:
    with pytest.raises(images.UnknownImage, match=r"0\.1-0.*known"):
        images.sklearn_image_uri("us-east-1", version="0.1-0")


def test_unknown_region_is_a_clear_error() -> None:
    with pytest.raises(images.UnknownImage, match="mars-north-1"):
        images.sklearn_image_uri("mars-north-1")


def test_generator_keeps_only_the_requested_versions_and_scopes(tmp_path) -> None:
    sdk_config = {
        "training": {
            "versions": {
                "1.9-0": {"repository": "sagemaker-scikit-learn", "registries": {"r-1": "1"}},
                "0.20.0": {"repository": "sagemaker-scikit-learn", "registries": {"r-1": "2"}},
            }
        },
        "inference": {"versions": {}},
    }
    config = tmp_path / "sklearn.json"
    config.write_text(json.dumps(sdk_config))
    output = tmp_path / "out.json"

    gen_image_uris.main(["--config", str(config), "--versions", "1.9-0", "--output", str(output)])

    written = json.loads(output.read_text())
    assert list(written["training"]["versions"]) == ["1.9-0"]
    assert written["training"]["versions"]["1.9-0"]["registries"] == {"r-1": "1"}
    assert written["inference"]["versions"] == {}


def test_generator_finds_the_sdk_config_inside_an_installed_package(tmp_path, monkeypatch) -> None:
    config = tmp_path / "sagemaker_core" / "resources" / "image_uri_config" / "sklearn.json"
    config.parent.mkdir(parents=True)
    (tmp_path / "sagemaker_core" / "__init__.py").write_text("")
    config.write_text("{}")
    monkeypatch.syspath_prepend(str(tmp_path))

    assert gen_image_uris.find_config() == config
