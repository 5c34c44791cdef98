"""Patlak plot: irreversible uptake rate ``Ki`` and intercept, plasma or reference input.

For an irreversibly trapping tissue, after t* (when the reversible compartments equilibrate
with the input ``C_in``)::

    C_T(t) / C_in(t) = Ki · ∫_0^t C_in / C_in(t) + intercept

The relation holds for frame means of ``C_T``, ``C_in`` and of the running integral, which are
the plot coordinates used. Plasma input: ``C_in`` is the metabolite-corrected plasma on the
fine grid; ``Ki`` (1/min, mL/cm³/min) and the intercept (mL/cm³, an apparent volume). With a
reference region (no irreversible binding) ``Ki`` is relative to the reference (1/min) and the
intercept a volume ratio.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ketpet_bids.core.kinetics.base import FrameTiming, ModelInputs
from ketpet_bids.core.kinetics.fitting import input_at_frames
from ketpet_bids.core.kinetics.graphical import GraphicalModel
from ketpet_bids.core.kinetics.timecourse import PER_MIN


class Patlak(GraphicalModel):
    """Patlak graphical analysis (parameters ``Ki``, ``intercept``)."""

    name: ClassVar[str] = "patlak"
    parameters: ClassVar[tuple[str, ...]] = ("Ki", "intercept")
    input_kinds: ClassVar[tuple[str, ...]] = ("plasma", "reference")

    def plot(self, tacs: np.ndarray, frames: FrameTiming, inputs: ModelInputs
             ) -> tuple[np.ndarray, np.ndarray]:
        """``x = ∫C_in / C_in`` (s), ``y = C_T / C_in``."""
        c_in, integral = input_at_frames(frames, inputs, self.input_kind, self.name)
        with np.errstate(divide="ignore", invalid="ignore"):
            x = np.broadcast_to(integral / c_in, tacs.shape)
            return x, tacs / c_in

    def line_to_params(self, slope: np.ndarray, intercept: np.ndarray,
                       inputs: ModelInputs) -> dict[str, np.ndarray]:
        """``Ki`` = slope (per minute), ``intercept``."""
        return {"Ki": slope * PER_MIN, "intercept": intercept}
