"""The documentation builds offline without warnings and lists every CLI option."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ketpet_bids.cli.parser import build_parser

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.fixture(scope="module")
def built_docs(tmp_path_factory) -> Path:
    pytest.importorskip("sphinx", reason="sphinx is installed with the 'test' extra")
    pytest.importorskip("sphinxarg", reason="sphinx-argparse is installed with the 'test' extra")
    out = tmp_path_factory.mktemp("docs")
    result = subprocess.run([sys.executable, "-m", "sphinx", "-W", "-q", "-b", "html",
                             str(DOCS), str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return out


def test_docs_build_without_warnings(built_docs):
    assert (built_docs / "index.html").stat().st_size > 0


def test_usage_page_lists_every_option(built_docs):
    page = (built_docs / "usage.html").read_text()
    options = [opt for action in build_parser()._actions for opt in action.option_strings
               if opt.startswith("--") and opt != "--help"]
    missing = [opt for opt in options if opt not in page]
    assert not missing, missing


def test_outputs_page_lists_every_registry_entry(built_docs):
    from ketpet_bids.bids.naming import OUTPUTS

    page = (built_docs / "outputs.html").read_text()
    for spec in OUTPUTS.values():
        assert spec.description.split("(")[0].strip()[:30] in page, spec.key


def test_pages_reference_no_remote_scripts(built_docs):
    """Offline users must see complete pages: no script or stylesheet is fetched remotely,
    except MathJax on pages with equations (offline, the equations show as LaTeX source)."""
    import re

    for page in built_docs.glob("*.html"):
        text = page.read_text()
        remote = [tag for tag in re.findall(r'<(?:script|link)[^>]+(?:src|href)="https?://[^"]+"',
                                            text) if "mathjax" not in tag]
        assert not remote, (page.name, remote)
