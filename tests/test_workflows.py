"""The GitHub Actions workflows cannot run here: check that they parse and do what .ci/run does."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
MAKE_TARGETS = set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), flags=re.MULTILINE))


def load(name: str) -> dict:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())
    # YAML 1.1 reads the key `on` as True.
    workflow["on"] = workflow.pop(True, workflow.get("on"))
    return workflow


def steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def make_calls(workflow: dict) -> list[str]:
    """Each `make <target>` the workflow's shell steps run, in order."""
    return [target for step in steps(workflow) for target in re.findall(r"\bmake (\w[\w-]*)", step.get("run", ""))]


def test_there_are_the_four_workflows():
    assert [path.name for path in WORKFLOWS] == ["cpu.yml", "gpu.yml", "laptop.yml", "newest-deps.yml"]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_is_well_formed(path):
    workflow = load(path.name)
    assert workflow["name"] and workflow["on"], f"{path.name} needs a name and triggers"
    for job_name, job in workflow["jobs"].items():
        assert "runs-on" in job, f"{path.name}: job {job_name} has no runs-on"
        assert job.get("timeout-minutes", 0) > 0, f"{path.name}: job {job_name} has no time limit"
        for step in job.get("steps", []):
            assert ("uses" in step) != ("run" in step), f"{path.name}: a step needs exactly one of uses/run: {step}"
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", step["uses"]), f"{path.name}: pin {step['uses']} to a major version"
    for target in make_calls(workflow):
        assert target in MAKE_TARGETS, f"{path.name} calls `make {target}`, which the Makefile does not define"


def test_ci_run_calls_the_readme_commands():
    ci_run = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    for target in ("book", "test"):
        assert re.search(rf"^(\w+=\S+ )*make {target}$", ci_run, flags=re.MULTILINE), f".ci/run does not run make {target}"
        assert f"make {target}" in readme
    assert "ZERO2GPT_PROFILE=smoke" in ci_run and "ZERO2GPT_REQUIRE_SITE=1" in ci_run


def test_cpu_workflow_runs_what_ci_runs_on_every_push():
    workflow = load("cpu.yml")
    assert set(workflow["on"]) == {"push", "pull_request"}
    assert make_calls(workflow) == ["browser", "book", "test"]
    env = workflow["jobs"]["book"]["env"]
    assert env["ZERO2GPT_PROFILE"] == "smoke" and env["ZERO2GPT_REQUIRE_SITE"] == "1"
    assert any(step.get("uses", "").startswith("actions/upload-artifact") for step in steps(workflow))


def test_gpu_workflow_runs_the_full_book_and_publishes_it():
    workflow = load("gpu.yml")
    assert workflow["on"]["push"]["branches"] == ["main"] and workflow["on"]["schedule"]
    full = workflow["jobs"]["full"]
    assert "gpu" in full["runs-on"]
    assert full["env"]["ZERO2GPT_PROFILE"] == "full"
    assert full["steps"][0]["run"].strip() == "nvidia-smi", "show the GPU before anything else"
    assert make_calls(workflow) == ["browser", "book", "test"]
    cache = next(step for step in full["steps"] if step.get("uses", "").startswith("actions/cache"))
    assert "hashFiles('lib/**', 'chapters/**')" in cache["with"]["key"]
    assert "_build/.jupyter_cache" in cache["with"]["path"]
    reports = next(step for step in full["steps"] if "reports" in step.get("name", ""))
    assert reports["if"] == "failure()" and "_build/html/reports" in reports["with"]["path"]
    assert any(step.get("uses", "").startswith("actions/upload-pages-artifact") for step in full["steps"])
    assert any(step.get("uses", "").startswith("actions/deploy-pages") for step in steps(workflow))
    notebooks = next(step for step in full["steps"] if "notebooks" in step.get("name", ""))
    assert "HEAD:notebooks" in notebooks["run"]


def test_launch_branch_is_the_one_the_gpu_workflow_publishes():
    import theme_fixes  # book/ is on sys.path (tests/conftest.py)

    notebooks = next(step for step in steps(load("gpu.yml")) if "notebooks" in step.get("name", ""))
    assert f"HEAD:{theme_fixes.NOTEBOOK_BRANCH}" in notebooks["run"]


def test_newest_dependencies_run_weekly_without_pins():
    workflow = load("newest-deps.yml")
    assert workflow["on"]["schedule"]
    calls = [step["run"] for step in steps(workflow) if "run" in step and "make" in step["run"]]
    assert any("make book TORCH=torch" in run for run in calls) and any("make test TORCH=torch" in run for run in calls)


def test_laptop_profile_runs_weekly_on_a_cpu_runner():
    workflow = load("laptop.yml")
    assert workflow["on"]["schedule"], "weekly, not on every push: the laptop profile takes a while"
    job = workflow["jobs"]["laptop"]
    assert "gpu" not in job["runs-on"]
    assert job["env"]["ZERO2GPT_PROFILE"] == "laptop" and job["env"]["ZERO2GPT_DEVICE"] == "cpu"
    assert make_calls(workflow) == ["browser", "book", "test"]
