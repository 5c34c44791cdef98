"""Static checks of the Apptainer definition (no Apptainer on our machines) and, when spython
is installed, of the Dockerfile's conversion to a Singularity recipe."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEF = ROOT / "apptainer" / "ketpet_bids.def"


def _sections(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """Header keywords (``Bootstrap``, ``From``) and ``%section`` bodies of a definition file."""
    header, sections, current = {}, {}, None
    for line in text.splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        if line.startswith("%"):
            current = line[1:].split()[0]
            sections[current] = ""
        elif current is None:
            key, _, value = line.partition(":")
            header[key.strip()] = value.strip()
        else:
            sections[current] += line.strip() + "\n"
    return header, sections


def _dockerfile_env() -> dict[str, str]:
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    return dict(re.findall(r"\b([A-Z_]+)=(\S+)", " ".join(
        line for line in text.splitlines() if line.strip().startswith("ENV"))))


def test_definition_bootstraps_from_the_docker_image_and_runs_ketpet_bids():
    header, sections = _sections(DEF.read_text())
    assert header["Bootstrap"] in ("docker", "docker-daemon")
    assert header["From"] == "ghcr.io/ketpet-bids/ketpet_bids:{{ VERSION }}"
    assert "VERSION=" in sections["arguments"]
    assert sections["runscript"].strip() == 'exec ketpet-bids "$@"'
    assert "ketpet-bids --version" in sections["test"]


def test_definition_environment_matches_the_image_for_offline_templates():
    _, sections = _sections(DEF.read_text())
    exported = dict(re.findall(r"export (\w+)=(\S+)", sections["environment"]))
    image_env = _dockerfile_env()
    assert exported["TEMPLATEFLOW_HOME"] == "/opt/templateflow"
    for key, value in exported.items():
        assert image_env.get(key) == value, key


def test_spython_converts_the_dockerfile_runtime_stage():
    """spython (PyPI) turns the Dockerfile into a Singularity recipe offline. Its multi-stage
    support is partial (derived stages lose the entry point: ``production`` gets
    ``exec /bin/bash``), which is why apptainer/ketpet_bids.def bootstraps from the built image
    instead; the runtime stage must still convert to a recipe that runs ketpet-bids with the
    offline templates."""
    pytest.importorskip("spython", reason="spython not installed (pip install spython)")
    from spython.main.parse.parsers import DockerParser
    from spython.main.parse.writers import SingularityWriter

    stages = DockerParser(str(ROOT / "Dockerfile")).parse()
    assert {"builder", "runtime", "test"} <= set(stages)
    recipe = SingularityWriter({"runtime": stages["runtime"]}).convert()
    runscript = recipe.split("%runscript", 1)[1].split("%", 1)[0]
    assert 'exec ketpet-bids "$@"' in runscript
    assert "export TEMPLATEFLOW_HOME=/opt/templateflow" in recipe
