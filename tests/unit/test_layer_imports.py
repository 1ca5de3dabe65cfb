"""Each function's layers, merged into /opt as Lambda merges them, import its handler.

Lambda extracts a function's layers into /opt in the order the function lists them, a later
layer's files replacing an earlier one's ("Adding layers to functions", Lambda Developer
Guide). These tests build that merged view for every function, in the order the translated
template lists its layers, and import the handler in a fresh interpreter that sees only what
Lambda would: the function's code, /opt/python (and its site-packages form), and what the
python3.12 runtime provides (boto3 and its dependencies). Nothing comes from the dev venv.

- The shared layer is what ``layers/shared/Makefile`` builds: requirements.txt and its
  dependencies, minus what the runtime provides, plus ``mlops``. It is assembled from the dev
  venv's installed files (offline, no pip), which carry the pinned versions.
- AWS's managed AWSSDKPandas layer is simulated: awswrangler and its dependencies from the dev
  venv, with the ``typing_extensions`` of the older layer (one without ``Sentinel``, which
  pydantic-core imports). Which typing_extensions wins is exactly what the order decides.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from localcloud.template import Template

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT / "layers" / "shared"
SITE = "python/lib/python3.12/site-packages"
# What the Lambda python3.12 runtime itself provides (boto3 and its dependencies).
RUNTIME_DISTRIBUTIONS = ["boto3"]
# Removed from AWS's managed layer by its build (aws-sdk-pandas building/lambda/
# build-lambda-layer.sh: rm -rf python/boto* python/urllib3* python/s3transfer*).
MANAGED_LAYER_REMOVES = {"boto3", "botocore", "urllib3", "s3transfer"}
# Modules the validate function imports only when it reads data (mlops.validation.objects).
VALIDATE_DATA_PATH = [
    "awswrangler",
    "pandas",
    "mlops.validation.checks",
    "mlops.validation.readers",
]
# What each function with the managed layer imports of it beyond its handler.
DATA_PATHS = {
    "ValidateFunction": VALIDATE_DATA_PATH,
    "MonitorFunction": ["awswrangler", "pandas", "mlops.monitoring.drift", "mlops.ml.cleaning"],
}


# ------------------------------------------------------------------ assembling layers


def _provided_by_runtime() -> set[str]:
    """The distributions the shared layer's Makefile deletes after pip install."""
    text = (SHARED / "Makefile").read_text()
    (line,) = re.findall(r"^PROVIDED_BY_RUNTIME\s*:=(.*)$", text, flags=re.MULTILINE)
    return {canonicalize_name(p) for p in line.split() if not p.endswith("-*")}


def _requirements(lines: Iterable[str]) -> list[Requirement]:
    stripped = (line.split("#", 1)[0].strip() for line in lines)
    return [Requirement(line) for line in stripped if line]


def _closure(roots: Iterable[Requirement]) -> dict[str, importlib.metadata.Distribution]:
    """The installed distributions ``roots`` need, extras and markers honoured."""
    found: dict[str, importlib.metadata.Distribution] = {}
    pending = [(r, frozenset(r.extras)) for r in roots]
    seen: set[tuple[str, frozenset[str]]] = set()
    while pending:
        requirement, extras = pending.pop()
        name = canonicalize_name(requirement.name)
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        distribution = importlib.metadata.distribution(requirement.name)
        found[name] = distribution
        for text in distribution.requires or []:
            dependency = Requirement(text)
            wanted = dependency.marker is None or any(
                dependency.marker.evaluate({"extra": extra}) for extra in {"", *extras}
            )
            if wanted:
                pending.append((dependency, frozenset(dependency.extras)))
    return found


def _install(distributions: Iterable[importlib.metadata.Distribution], target: Path) -> None:
    """Place the distributions' installed files under ``target`` as pip -t would."""
    for distribution in distributions:
        base = Path(str(distribution.locate_file("")))
        for file in distribution.files or []:
            parts = Path(str(file)).parts
            if parts[0] == ".." or "__pycache__" in parts:
                continue  # console scripts outside site-packages; byte code
            source = base / file
            if source.is_file():
                destination = target / file
                destination.parent.mkdir(parents=True, exist_ok=True)
                destination.symlink_to(source)


def _copy_tree(source: Path, target: Path) -> None:
    for path in source.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            destination = target / path.relative_to(source.parent)
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(path.read_bytes())


def _merge(layers: list[Path], target: Path) -> Path:
    """Extract each layer into ``target`` in order, a later layer's file replacing an earlier's."""
    for layer in layers:
        for directory, _, files in os.walk(layer):
            relative = Path(directory).relative_to(layer)
            (target / relative).mkdir(parents=True, exist_ok=True)
            for name in files:
                destination = target / relative / name
                if os.path.lexists(destination):
                    destination.unlink()
                destination.symlink_to(Path(directory, name))
    return target


@pytest.fixture(scope="module")
def merged(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """/opt for a list of layers, built once per distinct list (byte code is then reused)."""
    views: dict[tuple[Path, ...], Path] = {}

    def build(layers: list[Path]) -> Path:
        key = tuple(layers)
        if key not in views:
            views[key] = _merge(layers, tmp_path_factory.mktemp("opt"))
        return views[key]

    return build


@pytest.fixture(scope="module")
def shared_layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What ``make build-SharedLayer`` puts in the layer zip: python/ with deps and mlops."""
    root = tmp_path_factory.mktemp("shared-layer")
    requirements = _requirements((SHARED / "requirements.txt").read_text().splitlines())
    excluded = _provided_by_runtime()
    kept = [d for n, d in _closure(requirements).items() if n not in excluded]
    _install(kept, root / "python")
    _copy_tree(SHARED / "mlops", root / "python")
    return root


@pytest.fixture(scope="module")
def managed_layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """AWS's AWSSDKPandas layer as far as ordering matters: awswrangler and its dependencies
    in python/, with an older typing_extensions (no ``Sentinel``)."""
    root = tmp_path_factory.mktemp("managed-layer")
    distributions = _closure([Requirement("awswrangler")])
    kept = [d for n, d in distributions.items() if n not in MANAGED_LAYER_REMOVES]
    _install(kept, root / "python")
    stub = root / "python" / "typing_extensions.py"
    current = Path(importlib.metadata.distribution("typing_extensions").locate_file(""))
    text = (current / "typing_extensions.py").read_text()
    stub.unlink()
    # typing_extensions gained Sentinel in 4.14; older managed layers ship one without it.
    stub.write_text(text + "\n\ndel Sentinel\n__all__.remove('Sentinel')\n")
    return root


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the python3.12 runtime puts on sys.path after /opt: boto3 and its dependencies."""
    root = tmp_path_factory.mktemp("runtime")
    _install(_closure(Requirement(n) for n in RUNTIME_DISTRIBUTIONS).values(), root)
    return root


@pytest.fixture(scope="module")
def template() -> Template:
    return Template.load(ROOT)


@pytest.fixture(scope="module")
def translated(template: Template) -> dict[str, Any]:
    return template.cfn


def _functions(translated: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        k: v for k, v in translated["Resources"].items() if v["Type"] == "AWS::Lambda::Function"
    }


def _layer_dirs(
    translated: dict[str, Any], function: str, shared_layer: Path, managed_layer: Path
) -> list[Path]:
    """The function's layers in the template's order, as the directories built above."""
    (shared,) = [
        k for k, v in translated["Resources"].items() if v["Type"] == "AWS::Lambda::LayerVersion"
    ]
    dirs = []
    for layer in translated["Resources"][function]["Properties"].get("Layers", []):
        if layer == {"Ref": shared}:
            dirs.append(shared_layer)
        elif "AWSSDKPandas" in json.dumps(layer):
            dirs.append(managed_layer)
        else:
            raise AssertionError(f"{function}: unknown layer {layer}")
    return dirs


# ------------------------------------------------------------------ importing as Lambda does

_PROBE = """
import importlib, json, sys
allowed = tuple(sys.argv[1].split(":"))
for name in sys.argv[2:]:
    importlib.import_module(name)
foreign = sorted(
    name for name, module in list(sys.modules.items())
    if getattr(module, "__file__", None) and not module.__file__.startswith(allowed)
)
import typing_extensions
print(json.dumps({"foreign": foreign, "sentinel": hasattr(typing_extensions, "Sentinel")}))
"""


def _import_as_lambda(
    code: Path, opt: Path, runtime: Path, modules: list[str]
) -> subprocess.CompletedProcess[str]:
    """Import ``modules`` in a fresh interpreter whose sys.path is Lambda's: the function's
    code, /opt/python/lib/python3.12/site-packages, /opt/python, then the runtime (-S: no
    site-packages of the dev venv; -P: no current directory)."""
    path = [code, opt / SITE, opt / "python", runtime]
    stdlib = (Path(sys.base_prefix) / "lib", Path(sys.base_exec_prefix) / "lib")
    allowed = ":".join(str(p) for p in [*path, *stdlib])
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join(str(p) for p in path),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "POWERTOOLS_SERVICE_NAME": code.name,
        "STAGE": "dev",
        "DATASET": "used_cars",
    }
    return subprocess.run(
        [sys.executable, "-S", "-P", "-c", _PROBE, allowed, *modules],
        cwd=code,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


FUNCTIONS = [
    "ScrapeFunction",
    "ValidateFunction",
    "StartPreparationFunction",
    "StartTrainingFunction",
    "EvaluateFunction",
    "DeployFunction",
    "MonitorFunction",
    "WebFunction",
]


def test_the_dev_venv_carries_the_versions_the_shared_layer_pins() -> None:
    # The layer is assembled from the venv's files: they must be the versions the build pins.
    for requirement in _requirements((SHARED / "requirements.txt").read_text().splitlines()):
        installed = importlib.metadata.version(requirement.name)
        assert requirement.specifier.contains(installed), (requirement, installed)


def test_the_functions_under_test_are_every_function_of_the_template(
    translated: dict[str, Any],
) -> None:
    assert sorted(_functions(translated)) == sorted(FUNCTIONS)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_each_handler_imports_from_its_layers_merged_in_template_order(
    function: str,
    template: Template,
    shared_layer: Path,
    managed_layer: Path,
    runtime: Path,
    merged: Any,
) -> None:
    # given the function's layers merged into /opt in the order the template lists them
    layers = _layer_dirs(template.cfn, function, shared_layer, managed_layer)
    opt = merged(layers)
    code = ROOT / template.code_dirs[function]
    modules = ["app", *(DATA_PATHS.get(function, []) if managed_layer in layers else [])]
    # when its handler (and, for validate, the data path) is imported as Lambda would
    result = _import_as_lambda(code, opt, runtime, modules)
    # then it imports, with pydantic's typing_extensions, and nothing from the dev venv
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome == {"foreign": [], "sentinel": True}


def test_with_the_shared_layer_first_the_managed_typing_extensions_breaks_pydantic(
    shared_layer: Path, managed_layer: Path, runtime: Path, tmp_path: Path
) -> None:
    # given the order SAM produced when the shared layer sat in Globals (Globals' layers
    # first, the function's own after): the managed layer's files win
    opt = _merge([shared_layer, managed_layer], tmp_path / "opt")
    # when the validate handler is imported
    result = _import_as_lambda(ROOT / "functions" / "validate", opt, runtime, ["app"])
    # then pydantic-core cannot import Sentinel from the older typing_extensions
    assert result.returncode != 0
    assert "Sentinel" in result.stderr and "typing_extensions" in result.stderr
