"""The registry of kinetic models: name → model.

Examples
--------
>>> get_model("suvr").parameters
('SUVR',)
>>> get_model("logan", "reference").parameters
('DVR', 'BPND')
>>> known_models()
('1tcm', '2tcm', '2tcmirr', 'logan', 'ma1', 'mrtm', 'mrtm2', 'patlak', 'srtm', 'srtm2', 'suv', 'suvr')
"""

from __future__ import annotations

from ketpet_bids.core.kinetics.base import KineticModel
from ketpet_bids.core.kinetics.logan import Logan
from ketpet_bids.core.kinetics.ma1 import MA1
from ketpet_bids.core.kinetics.mrtm import MRTM
from ketpet_bids.core.kinetics.mrtm2 import MRTM2
from ketpet_bids.core.kinetics.patlak import Patlak
from ketpet_bids.core.kinetics.srtm import SRTM
from ketpet_bids.core.kinetics.srtm2 import SRTM2
from ketpet_bids.core.kinetics.suv import SUV
from ketpet_bids.core.kinetics.suvr import SUVR
from ketpet_bids.core.kinetics.tcm1 import OneTCM
from ketpet_bids.core.kinetics.tcm2 import TwoTCM, TwoTCMIrreversible
from ketpet_bids.errors import InputError

MODELS: dict[str, type[KineticModel]] = {cls.name: cls for cls in (
    SUV, SUVR, Patlak, Logan, MA1, SRTM, SRTM2, MRTM, MRTM2, OneTCM, TwoTCM, TwoTCMIrreversible)}
"""Every model class by its registry name (add new models here)."""


def known_models() -> tuple[str, ...]:
    """Names of all registered models, sorted."""
    return tuple(sorted(MODELS))


def get_model(name: str, input_kind: str | None = None) -> KineticModel:
    """A model instance by name (case-insensitive).

    Parameters
    ----------
    name
        Registry name.
    input_kind
        ``"plasma"``, ``"reference"`` or ``"none"``; None takes the model's preferred input
        (its first entry of ``input_kinds``).

    Raises
    ------
    InputError
        When ``name`` is not registered (the message lists the known models) or the model
        cannot use ``input_kind``.
    """
    try:
        cls = MODELS[name.lower()]
    except KeyError:
        raise InputError("--models", f"unknown model '{name}'",
                         f"choose from: {', '.join(known_models())}") from None
    return cls(input_kind)
