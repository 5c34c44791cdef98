"""Logan plot: total distribution volume (plasma input) or DVR/BPND (reference input).

For reversible tracers, after t*::

    plasma:     ∫_0^t C_T / C_T(t) = VT · ∫_0^t C_p / C_T(t) + b
    reference:  ∫_0^t C_T / C_T(t) = DVR · (∫_0^t C_R + C_R(t)/k2′) / C_T(t) + b′

with frame means of the curves and of their running integrals as plot coordinates (the
relations are linear in them, so frame averaging keeps them). The reference form uses
``k2′`` (1/min) when given (``ModelInputs.k2prime``) and leaves the ``C_R/k2′`` term out when
not (Logan 1996, the term's contribution fades after t*). ``BPND = DVR − 1``. Exact (for any
t*) when target and reference follow one-tissue kinetics and, with plasma input, vB = 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ketpet_bids.core.kinetics.base import FrameTiming, ModelInputs
from ketpet_bids.core.kinetics.fitting import input_at_frames
from ketpet_bids.core.kinetics.graphical import GraphicalModel
from ketpet_bids.core.kinetics.timecourse import PER_MIN, grid_for


class Logan(GraphicalModel):
    """Logan graphical analysis (``VT`` with plasma input; ``DVR``, ``BPND`` with reference)."""

    name = "logan"
    parameters = ("VT",)
    input_kinds = ("plasma", "reference")

    def __init__(self, input_kind: str | None = None) -> None:
        super().__init__(input_kind)
        self.parameters = ("VT",) if self.input_kind == "plasma" else ("DVR", "BPND")

    def plot(self, tacs: np.ndarray, frames: FrameTiming, inputs: ModelInputs
             ) -> tuple[np.ndarray, np.ndarray]:
        """``x = (∫C_in [+ C_R/k2′]) / C_T`` (s), ``y = ∫C_T / C_T`` (s)."""
        c_in, integral = input_at_frames(frames, inputs, self.input_kind, self.name)
        if self.input_kind == "reference" and inputs.k2prime is not None:
            integral = integral + c_in / (inputs.k2prime / PER_MIN)
        tissue_integral = tacs @ grid_for(frames).integral_operator.T
        with np.errstate(divide="ignore", invalid="ignore"):
            return integral / tacs, tissue_integral / tacs

    def line_to_params(self, slope: np.ndarray, intercept: np.ndarray,
                       inputs: ModelInputs) -> dict[str, np.ndarray]:
        """``VT`` = slope, or ``DVR`` = slope and ``BPND = DVR − 1``."""
        if self.input_kind == "plasma":
            return {"VT": slope}
        return {"DVR": slope, "BPND": slope - 1.0}

    def settings(self, frames: FrameTiming, inputs: ModelInputs) -> dict[str, Any]:
        """Graphical settings plus the k2′ used (reference input)."""
        out = super().settings(frames, inputs)
        if self.input_kind == "reference":
            out["k2prime"] = inputs.k2prime
            out["k2primeUnits"] = "1/min"
        return out
