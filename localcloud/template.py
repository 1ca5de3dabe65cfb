"""template.yaml as the local cloud sees it: translated by samtranslator, parameters resolved
like ``sam deploy --config-env dev`` would, and CloudFormation intrinsics evaluated."""

from __future__ import annotations

import copy
import os
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import tomllib
except ImportError:  # pragma: no cover - Python 3.10
    tomllib = None  # type: ignore[assignment]

CODE_BUCKET = "localcloud-code"
NO_VALUE = object()


class TemplateError(RuntimeError):
    """The template cannot be translated or an intrinsic cannot be resolved."""


class _Unresolved(Exception):
    """An intrinsic refers to a resource whose physical id is not known yet."""


class _NoManagedPolicies:
    """samtranslator asks for AWS managed policy ARNs by name; the template uses none by name."""

    def load(self) -> dict[str, str]:
        return {}


def samconfig_parameters(project_root: Path, config_env: str = "dev") -> dict[str, str]:
    """``parameter_overrides`` of ``[<env>.deploy.parameters]`` in samconfig.toml."""
    path = project_root / "samconfig.toml"
    if tomllib is None or not path.exists():
        return {}
    config = tomllib.loads(path.read_text())
    overrides = config.get(config_env, {}).get("deploy", {}).get("parameters", {})
    raw = overrides.get("parameter_overrides", "")
    if isinstance(raw, list):
        raw = " ".join(raw)
    pairs = (item.split("=", 1) for item in shlex.split(raw) if "=" in item)
    return {key: value for key, value in pairs}


def stack_name(project_root: Path, config_env: str = "dev") -> str:
    path = project_root / "samconfig.toml"
    if tomllib is not None and path.exists():
        config = tomllib.loads(path.read_text())
        name = config.get(config_env, {}).get("deploy", {}).get("parameters", {}).get("stack_name")
        if name:
            return str(name)
    return f"serverless-mlops-{config_env}"


def _code_dirs(sam: dict[str, Any]) -> dict[str, str]:
    dirs: dict[str, str] = {}
    for logical_id, resource in sam.get("Resources", {}).items():
        props = resource.get("Properties") or {}
        for prop in ("CodeUri", "ContentUri"):
            if isinstance(props.get(prop), str) and not props[prop].startswith("s3://"):
                dirs[logical_id] = props[prop]
                # samtranslator needs an S3 location, as after `sam package`.
                props[prop] = f"s3://{CODE_BUCKET}/{props[prop]}"
    return dirs


@dataclass
class Template:
    """The translated (plain CloudFormation) template plus what the local cloud needs from the
    SAM original (code directories, schedule switches)."""

    project_root: Path
    sam: dict[str, Any]
    cfn: dict[str, Any]
    parameters: dict[str, str]
    code_dirs: dict[str, str]
    stack: str
    region: str
    account_id: str
    conditions: dict[str, bool] = field(default_factory=dict)

    @classmethod
    def load(
        cls,
        project_root: Path,
        overrides: Mapping[str, str] | None = None,
        *,
        config_env: str = "dev",
        region: str = "us-east-1",
        account_id: str = "123456789012",
        text: str | None = None,
    ) -> Template:
        """``text`` stands in for template.yaml (tests that mutate the template)."""
        from samtranslator.translator.transform import transform
        from samtranslator.yaml_helper import yaml_parse

        if text is None:
            text = (project_root / "template.yaml").read_text()
        try:
            sam = yaml_parse(text)
        except Exception as exc:  # yaml's scanner/parser errors share no useful base class
            raise TemplateError(f"template.yaml does not parse: {exc}") from exc
        translatable = copy.deepcopy(sam)
        code_dirs = _code_dirs(translatable)
        declared = sam.get("Parameters", {})
        values = {k: str(v["Default"]) for k, v in declared.items() if "Default" in v}
        values |= samconfig_parameters(project_root, config_env)
        values |= {k: str(v) for k, v in (overrides or {}).items()}
        unknown = sorted(set(values) - set(declared))
        if unknown:
            raise TemplateError(f"unknown template parameter(s): {', '.join(unknown)}")
        missing = sorted(k for k in declared if k not in values)
        if missing:
            raise TemplateError(f"template parameter(s) without a value: {', '.join(missing)}")
        for name, value in values.items():
            allowed = declared[name].get("AllowedValues")
            if allowed and value not in [str(a) for a in allowed]:
                raise TemplateError(f"parameter {name}={value!r} is not one of {allowed}")
        # samtranslator resolves the region from the environment like the SAM CLI does.
        previous = os.environ.get("AWS_DEFAULT_REGION")
        os.environ["AWS_DEFAULT_REGION"] = region
        try:
            cfn = transform(translatable, dict(values), _NoManagedPolicies())
        except Exception as exc:  # samtranslator raises its own exception family
            raise TemplateError(f"SAM translation failed: {exc}") from exc
        finally:
            if previous is None:
                os.environ.pop("AWS_DEFAULT_REGION", None)
            else:
                os.environ["AWS_DEFAULT_REGION"] = previous
        template = cls(
            project_root=project_root,
            sam=sam,
            cfn=cfn,
            parameters=values,
            code_dirs=code_dirs,
            stack=stack_name(project_root, config_env),
            region=region,
            account_id=account_id,
        )
        template.conditions = template._evaluate_conditions()
        return template

    # ------------------------------------------------------------------ structure
    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        """Translated resources whose Condition (if any) holds."""
        return {
            logical_id: resource
            for logical_id, resource in self.cfn["Resources"].items()
            if self.conditions.get(resource.get("Condition", ""), True)
        }

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == resource_type}

    def pseudo_parameters(self) -> dict[str, str]:
        return {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::Partition": "aws",
            "AWS::StackName": self.stack,
            "AWS::StackId": (
                f"arn:aws:cloudformation:{self.region}:{self.account_id}:stack/{self.stack}/local"
            ),
            "AWS::URLSuffix": "amazonaws.com",
        }

    def _evaluate_conditions(self) -> dict[str, bool]:
        results: dict[str, bool] = {}
        pending = dict(self.cfn.get("Conditions", {}))
        resolver = Resolver(self, refs={}, attributes={}, conditions=results)
        for _ in range(len(pending) + 1):
            for name in list(pending):
                try:
                    results[name] = bool(resolver.resolve(pending[name]))
                    del pending[name]
                except _Unresolved:
                    continue
        if pending:
            raise TemplateError(f"cannot evaluate conditions: {sorted(pending)}")
        return results

    def schedule_enabled(self, function_id: str, event_id: str) -> bool:
        """Whether a SAM Schedule event is meant to fire.

        Read from the SAM original: samtranslator turns ``Enabled: !Ref Param`` into
        ``State: ENABLED`` whenever the parameter is a non-empty string, even "false".
        """
        props = self.sam["Resources"][function_id]["Properties"]["Events"][event_id]["Properties"]
        if "State" in props:
            state = Resolver(self, {}, {}, self.conditions).resolve(props["State"])
            return str(state).upper() == "ENABLED"
        enabled = props.get("Enabled", True)
        resolved = Resolver(self, {}, {}, self.conditions).resolve(enabled)
        return str(resolved).lower() not in ("false", "0", "")


_SUB_VAR = re.compile(r"\$\{([^}!][^}]*)\}")


class Resolver:
    """Evaluates CloudFormation intrinsic functions against known parameters and resources."""

    def __init__(
        self,
        template: Template,
        refs: Mapping[str, str],
        attributes: Mapping[str, Mapping[str, str]],
        conditions: Mapping[str, bool],
    ) -> None:
        self.template = template
        self.refs = refs
        self.attributes = attributes
        self.conditions = conditions
        self._functions: dict[str, Callable[[Any], Any]] = {
            "Ref": self._ref,
            "Fn::GetAtt": self._get_att,
            "Fn::Sub": self._sub,
            "Fn::Join": self._join,
            "Fn::Split": self._split,
            "Fn::If": self._if,
            "Fn::Equals": self._equals,
            "Fn::Not": lambda v: not self.resolve(v[0]),
            "Fn::And": lambda v: all(self.resolve(x) for x in v),
            "Fn::Or": lambda v: any(self.resolve(x) for x in v),
            "Fn::Select": lambda v: self.resolve(v[1])[int(self.resolve(v[0]))],
            "Condition": lambda v: self.conditions[v],
            "Fn::GetAZs": lambda v: [f"{self.template.region}{z}" for z in "abc"],
        }

    def resolve(self, value: Any) -> Any:
        if isinstance(value, dict):
            if len(value) == 1:
                ((key, arg),) = value.items()
                if key in self._functions:
                    return self._functions[key](arg)
            out = {}
            for key, item in value.items():
                resolved = self.resolve(item)
                if resolved is not NO_VALUE:
                    out[key] = resolved
            return out
        if isinstance(value, list):
            return [r for r in (self.resolve(v) for v in value) if r is not NO_VALUE]
        return value

    def try_resolve(self, value: Any) -> tuple[bool, Any]:
        try:
            return True, self.resolve(value)
        except _Unresolved:
            return False, None

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        pseudo = self.template.pseudo_parameters()
        if name in pseudo:
            return pseudo[name]
        if name in self.template.parameters:
            return self.template.parameters[name]
        if name in self.refs:
            return self.refs[name]
        if name in self.template.cfn["Resources"]:
            raise _Unresolved(name)
        raise TemplateError(f"Ref to unknown name {name!r}")

    def _get_att(self, arg: Any) -> Any:
        if isinstance(arg, str):
            logical_id, attribute = arg.split(".", 1)
        else:
            logical_id, attribute = arg[0], self.resolve(arg[1])
        if logical_id not in self.attributes:
            if logical_id in self.template.cfn["Resources"]:
                raise _Unresolved(logical_id)
            raise TemplateError(f"GetAtt of unknown resource {logical_id!r}")
        attrs = self.attributes[logical_id]
        if attribute not in attrs:
            raise TemplateError(f"GetAtt {logical_id}.{attribute} is not supported locally")
        return attrs[attribute]

    def _sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            text, variables = arg[0], {k: self.resolve(v) for k, v in arg[1].items()}
        else:
            text, variables = arg, {}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if "." in name:
                return str(self._get_att(name))
            return str(self._ref(name))

        return _SUB_VAR.sub(replace, text).replace("${!", "${")

    def _join(self, arg: list[Any]) -> str:
        delimiter, items = arg[0], self.resolve(arg[1])
        return str(delimiter).join(str(i) for i in items)

    def _split(self, arg: list[Any]) -> list[str]:
        return str(self.resolve(arg[1])).split(arg[0])

    def _if(self, arg: list[Any]) -> Any:
        name, when_true, when_false = arg
        if name not in self.conditions:
            raise TemplateError(f"unknown condition {name!r}")
        return self.resolve(when_true if self.conditions[name] else when_false)

    def _equals(self, arg: list[Any]) -> bool:
        return str(self.resolve(arg[0])) == str(self.resolve(arg[1]))
