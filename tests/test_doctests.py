"""The examples in the package's docstrings are true (run as doctests)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import ketpet_bids

MODULES = sorted(info.name for info in pkgutil.walk_packages(ketpet_bids.__path__,
                                                             prefix="ketpet_bids."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
