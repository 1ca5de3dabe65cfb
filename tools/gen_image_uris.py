"""Build-time generator of ``layers/shared/mlops/data/sklearn_images.json``.

The Lambda that starts training must know the prebuilt scikit-learn container's ECR account
per region, but the SageMaker SDK (and sagemaker-core, 383 MB) never ship in a Lambda. This
tool reads sagemaker-core's ``image_uri_config/sklearn.json`` where it is installed and keeps
only what ``mlops.images`` needs: repository, processors, py versions and the registry account
per region, for the training and inference scopes of the versions we target.

    pip install sagemaker-core && python tools/gen_image_uris.py [--versions 1.2-1 1.4-2 1.9-0]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

OUTPUT = Path(__file__).resolve().parent.parent / "layers/shared/mlops/data/sklearn_images.json"
DEFAULT_VERSIONS = ("1.2-1", "1.4-2", "1.9-0")
SCOPES = ("training", "inference")
# Packages that have carried the SDK's image URI data, newest layout first.
CANDIDATE_PACKAGES = ("sagemaker.core", "sagemaker_core", "sagemaker")


def find_config() -> Path:
    """Locate ``image_uri_config/sklearn.json`` in an installed SageMaker package."""
    for package in CANDIDATE_PACKAGES:
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            continue
        # Namespace packages (sagemaker.core in SDK v3) have several locations and no file.
        for location in (spec.submodule_search_locations or []) if spec else []:
            for found in sorted(Path(location).rglob("image_uri_config/sklearn.json")):
                return found
    raise SystemExit(
        "image_uri_config/sklearn.json not found: install sagemaker-core "
        "(pip install sagemaker-core) or pass --config PATH"
    )


def extract(config: dict[str, Any], versions: list[str]) -> dict[str, Any]:
    """Reduce the SDK's config to the given versions of the training and inference scopes."""
    out: dict[str, Any] = {}
    for scope in SCOPES:
        known = config.get(scope, {}).get("versions", {})
        aliases = config.get(scope, {}).get("version_aliases", {})
        picked: dict[str, Any] = {}
        for version in versions:
            entry = known.get(version) or known.get(aliases.get(version, ""))
            if entry is None:
                print(f"warning: {scope} {version} not in the SDK config", file=sys.stderr)
                continue
            picked[version] = {
                "repository": entry["repository"],
                "processors": entry.get("processors", ["cpu"]),
                "py_versions": entry.get("py_versions", ["py3"]),
                "registries": dict(sorted(entry["registries"].items())),
            }
        out[scope] = {"versions": picked}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="path to the SDK's sklearn.json")
    parser.add_argument("--versions", nargs="+", default=list(DEFAULT_VERSIONS))
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    config = json.loads((args.config or find_config()).read_text())
    data = extract(config, args.versions)
    data["_source"] = "sagemaker image_uri_config/sklearn.json via tools/gen_image_uris.py"
    args.output.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
