"""The registry of kinetic models: name → model.

Examples
--------
>>> get_model("suvr").parameters
('SUVR',)
>>> known_models()
('suv', 'suvr')
"""

from __future__ import annotations

from ketpet_bids.core.kinetics.base import KineticModel
from ketpet_bids.core.kinetics.suv import SUV
from ketpet_bids.core.kinetics.suvr import SUVR
from ketpet_bids.errors import InputError

MODELS: dict[str, type[KineticModel]] = {cls.name: cls for cls in (SUV, SUVR)}
"""Every model class by its registry name (add new models here)."""


def known_models() -> tuple[str, ...]:
    """Names of all registered models, sorted."""
    return tuple(sorted(MODELS))


def get_model(name: str) -> KineticModel:
    """A model instance by name (case-insensitive).

    Raises
    ------
    InputError
        When ``name`` is not registered; the message lists the known models.
    """
    try:
        return MODELS[name.lower()]()
    except KeyError:
        raise InputError("--models", f"unknown model '{name}'",
                         f"choose from: {', '.join(known_models())}") from None
