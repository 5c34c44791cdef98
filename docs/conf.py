"""Sphinx configuration for the ketpet_bids documentation (builds offline)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE / "_ext"))

from ketpet_bids import __version__  # noqa: E402

project = "ketpet_bids"
author = "ketpet_bids developers"
copyright = "ketpet_bids developers, Apache-2.0"
version = release = __version__

extensions = [
    "sphinx.ext.mathjax",
    "sphinxarg.ext",
    "ketpet_outputs",
]
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path: list[str] = []
nitpicky = False


def _warn_on_markup_problems(app, doctree, docname: str) -> None:
    """Turn markup errors left inside pages (e.g. from parser help text) into warnings.

    sphinx-argparse parses help strings as reStructuredText; a stray ``*`` leaves a
    "problematic" node in the page without a Sphinx warning, so ``-W`` would not catch it.
    """
    from docutils import nodes
    from sphinx.util import logging

    for node in doctree.findall(nodes.problematic):
        logging.getLogger(__name__).warning("invalid markup %r in %s", node.astext(), docname,
                                            location=(docname, None))


def setup(app) -> None:
    app.connect("doctree-resolved", _warn_on_markup_problems)
