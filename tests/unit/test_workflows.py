""".github/workflows: pull requests run `make test`; main deploys dev, then prod after approval,
through GitHub OIDC and never with stored AWS keys. (`make lint` checks them against GitHub's
workflow schema.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
CREDENTIALS_ACTION = "aws-actions/configure-aws-credentials"
KEY_INPUTS = {"aws-access-key-id", "aws-secret-access-key", "aws-session-token"}
# A major version (v4), a full release (v4.2.1) or a commit SHA; never a branch.
PINNED = re.compile(r"^v\d+(\.\d+){0,2}$|^[0-9a-f]{40}$")


def _load(path: Path) -> dict[str, Any]:
    workflow = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the bare key `on` as True.
    workflow["on"] = workflow.pop(True, workflow.get("on"))
    return workflow


@pytest.fixture(scope="module")
def workflows() -> dict[str, dict[str, Any]]:
    found = {path.name: _load(path) for path in sorted(WORKFLOWS.glob("*.y*ml"))}
    assert found, "no workflows under .github/workflows"
    return found


def _triggers(workflow: dict[str, Any]) -> set[str]:
    on = workflow["on"]
    return {on} if isinstance(on, str) else set(on)


def _steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return job.get("steps", [])


def _uses(step: dict[str, Any]) -> str:
    return step.get("uses", "").split("@")[0]


def _runs(job: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in _steps(job))


def _runs_make_test(job: dict[str, Any]) -> bool:
    """Whether a job runs the whole `make test` (not `make test-unit` and the like)."""
    return bool(re.search(r"(^|[;&|]\s*)make test\s*($|[;&|])", _runs(job), re.M))


def _all_jobs(workflows: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        f"{name}:{job_id}": job
        for name, workflow in workflows.items()
        for job_id, job in workflow["jobs"].items()
    }


def _deploy_workflow(workflows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    deploying = [wf for wf in workflows.values() if "sam deploy" in str(wf)]
    assert len(deploying) == 1, "exactly one workflow runs sam deploy"
    return deploying[0]


def _deploy_job(workflow: dict[str, Any], config_env: str) -> tuple[str, dict[str, Any]]:
    matches = [
        (job_id, job)
        for job_id, job in workflow["jobs"].items()
        if re.search(rf"sam deploy\b[^\n]*--config-env {config_env}\b", _runs(job))
    ]
    assert len(matches) == 1, f"one job deploys --config-env {config_env}"
    return matches[0]


def _samconfig_stack(config_env: str) -> str:
    samconfig = tomllib.loads((ROOT / "samconfig.toml").read_text())
    return samconfig[config_env]["deploy"]["parameters"]["stack_name"]


# ------------------------------------------------------------------ pull requests
def test_pull_requests_run_make_test_with_python_312_java_17_and_a_pip_cache(workflows):
    on_pr = [wf for wf in workflows.values() if "pull_request" in _triggers(wf)]
    assert on_pr, "a workflow runs on pull requests"
    jobs = [job for wf in on_pr for job in wf["jobs"].values() if _runs_make_test(job)]
    assert jobs, "a pull-request job runs `make test`"
    for job in jobs:
        python = [s for s in _steps(job) if _uses(s) == "actions/setup-python"]
        java = [s for s in _steps(job) if _uses(s) == "actions/setup-java"]
        assert python and str(python[0]["with"]["python-version"]) == "3.12"
        assert python[0]["with"].get("cache") == "pip"
        assert java and str(java[0]["with"]["java-version"]) == "17"


def test_no_workflow_runs_untrusted_pull_request_code_with_secrets(workflows):
    for name, workflow in workflows.items():
        assert "pull_request_target" not in _triggers(workflow), name


# ------------------------------------------------------------------ credentials
def test_aws_access_is_oidc_into_the_role_variable_never_stored_keys(workflows):
    for name, job in _all_jobs(workflows).items():
        for step in _steps(job):
            if _uses(step) != CREDENTIALS_ACTION:
                continue
            inputs = step.get("with", {})
            assert not KEY_INPUTS & set(inputs), f"{name} passes AWS keys"
            assert inputs.get("role-to-assume") == "${{ vars.AWS_DEPLOY_ROLE_ARN }}", name
            assert "aws-region" in inputs, name
            assert job.get("permissions", {}).get("id-token") == "write", (
                f"{name} needs id-token: write to get an OIDC token"
            )
    for name in workflows:
        text = (WORKFLOWS / name).read_text()
        assert "secrets." not in text, f"{name} reads a secret; deploys use OIDC only"
        assert not re.search(r"AWS_(SECRET_)?ACCESS_KEY", text), name


def test_only_deploy_jobs_may_request_an_id_token(workflows):
    for name, workflow in workflows.items():
        top = workflow.get("permissions")
        assert isinstance(top, dict) and "write" not in top.values(), (
            f"{name}: default permissions must be read-only"
        )
    for name, job in _all_jobs(workflows).items():
        if job.get("permissions", {}).get("id-token") == "write":
            assert any(_uses(s) == CREDENTIALS_ACTION for s in _steps(job)), name


def test_every_action_is_pinned_to_a_version(workflows):
    for name, job in _all_jobs(workflows).items():
        for step in _steps(job):
            if "uses" in step and not step["uses"].startswith("./"):
                ref = step["uses"].partition("@")[2]
                assert PINNED.match(ref), f"{name}: {step['uses']} is not pinned"


# ------------------------------------------------------------------ deploys
@pytest.mark.parametrize("config_env", ["dev", "prod"])
def test_each_stage_deploys_non_interactively_then_publishes_its_code(workflows, config_env):
    job_id, job = _deploy_job(_deploy_workflow(workflows), config_env)
    runs = _runs(job)
    deploy = re.search(r"sam deploy[^\n]*", runs).group(0)
    assert "--no-confirm-changeset" in deploy and "--no-fail-on-empty-changeset" in deploy
    assert "--guided" not in deploy
    assert "sam build" in runs.split("sam deploy")[0], f"{job_id} builds before deploying"
    publish = runs.split("sam deploy")[1]
    assert "-m localcloud publish-code --stack-name" in publish, f"{job_id} publishes after deploy"
    assert job.get("env", {}).get("STACK_NAME") == _samconfig_stack(config_env)
    credentials = [i for i, s in enumerate(_steps(job)) if _uses(s) == CREDENTIALS_ACTION]
    deploy_step = next(i for i, s in enumerate(_steps(job)) if "sam deploy" in s.get("run", ""))
    assert credentials and credentials[0] < deploy_step


def test_prod_needs_dev_and_a_protected_environment(workflows):
    workflow = _deploy_workflow(workflows)
    dev_id, dev = _deploy_job(workflow, "dev")
    _, prod = _deploy_job(workflow, "prod")
    needs = prod.get("needs", [])
    assert dev_id in ([needs] if isinstance(needs, str) else needs)
    environment = prod.get("environment")
    name = environment.get("name") if isinstance(environment, dict) else environment
    assert name == "production"
    # Without an environment dev's OIDC subject is the branch (…:ref:refs/heads/main), the
    # one docs/DEPLOY.md's trust policy admits beside …:environment:production.
    assert "environment" not in dev


def test_dev_deploys_only_what_passed_the_tests(workflows):
    workflow = _deploy_workflow(workflows)
    assert _triggers(workflow) == {"push"}
    assert workflow["on"]["push"]["branches"] == ["main"]
    _, dev = _deploy_job(workflow, "dev")
    needs = dev.get("needs", [])
    gates = [needs] if isinstance(needs, str) else needs
    gate_jobs = [job for job_id, job in workflow["jobs"].items() if job_id in gates]
    called = [
        _load(ROOT / job["uses"]) for job in gate_jobs if job.get("uses", "").startswith("./")
    ]
    assert any(_runs_make_test(job) for job in gate_jobs) or any(
        _runs_make_test(job) and "workflow_call" in _triggers(wf)
        for wf in called
        for job in wf["jobs"].values()
    ), "dev waits for a job that runs `make test`"


def test_two_deploys_of_one_stage_never_overlap(workflows):
    workflow = _deploy_workflow(workflows)
    groups = set()
    for config_env in ("dev", "prod"):
        _, job = _deploy_job(workflow, config_env)
        concurrency = job.get("concurrency")
        assert isinstance(concurrency, dict), f"{config_env} deploy has a concurrency group"
        assert concurrency.get("cancel-in-progress") is False, "a running deploy is never cancelled"
        assert "${{" not in concurrency["group"], "one fixed group per stage"
        groups.add(concurrency["group"])
    assert len(groups) == 2


def test_ci_sam_cli_is_the_version_make_uses(workflows):
    sam_txt = (ROOT / "requirements" / "sam.txt").read_text()
    pinned = re.search(r"^aws-sam-cli==(\S+)", sam_txt, re.M).group(1)
    setups = [
        step
        for job in _all_jobs(workflows).values()
        for step in _steps(job)
        if _uses(step) == "aws-actions/setup-sam"
    ]
    assert setups
    for step in setups:
        assert str(step["with"]["version"]) == pinned
