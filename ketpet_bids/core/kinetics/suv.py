"""SUV: standardised uptake value over a time window.

``SUV = mean_w(C_T) / (A_inj / W)``, with ``mean_w`` the frame-duration-weighted window mean of
the tissue curve (Bq/mL; frames straddling a window edge count partially), ``A_inj`` the
injected radioactivity (Bq) and ``W`` the body weight converted to grams (kg × 1000). With a
tissue density of 1 g/mL, SUV is unitless (g/mL). The PET is assumed decay corrected to the
injection time, the reference time of ``InjectedRadioactivity``.

Diagnostics: ``r2`` and ``aic`` are NaN (nothing is fitted); ``n_frames_used`` is the number
of frames overlapping the window.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ketpet_bids.core.kinetics.base import FrameTiming, ModelInputs, WindowModel
from ketpet_bids.errors import InputError

GRAMS_PER_KG = 1000.0


class SUV(WindowModel):
    """Window-mean uptake normalised to dose per body weight (parameter ``SUV``, g/mL)."""

    name: ClassVar[str] = "suv"
    parameters: ClassVar[tuple[str, ...]] = ("SUV",)
    input_kinds: ClassVar[tuple[str, ...]] = ("none",)

    def scale(self, frames: FrameTiming, inputs: ModelInputs) -> float:
        """``W[g] / A_inj[Bq]``; InputError when either is missing or not positive."""
        dose, weight = inputs.injected_radioactivity_bq, inputs.body_weight_kg
        if dose is None or not dose > 0:
            raise InputError("PET sidecar InjectedRadioactivity",
                             f"model 'suv' needs the injected radioactivity (got {dose})",
                             "add InjectedRadioactivity (and its units) to the _pet.json")
        if weight is None or not weight > 0:
            raise InputError("participants.tsv/sessions.tsv body_weight",
                             f"model 'suv' needs the body weight in kg (got {weight})",
                             "add a body_weight column (kg)")
        return weight * GRAMS_PER_KG / dose

    def settings(self, frames: FrameTiming, inputs: ModelInputs) -> dict[str, Any]:
        """Window settings plus dose and body weight."""
        return {**super().settings(frames, inputs),
                "InjectedRadioactivity": inputs.injected_radioactivity_bq,
                "InjectedRadioactivityUnits": "Bq", "BodyWeight": inputs.body_weight_kg,
                "BodyWeightUnits": "kg"}
