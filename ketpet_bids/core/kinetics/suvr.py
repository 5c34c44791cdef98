"""SUVR: standardised uptake value ratio over a late time window.

``SUVR = mean_w(C_T) / mean_w(C_R)``, where ``mean_w`` is the frame-duration-weighted mean
over the window ``[start, end]`` (s) — frames that straddle a window edge count for the part
inside it (:func:`~ketpet_bids.core.kinetics.base.window_weights`) — ``C_T`` the tissue curve
and ``C_R`` the reference-region curve on the same frames. Any window, any reference (a true
reference region or a pseudo-reference such as whole brain for [11C]K-2).

Diagnostics: ``r2`` and ``aic`` are NaN (nothing is fitted); ``n_frames_used`` is the number
of frames overlapping the window.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ketpet_bids.core.kinetics.base import FrameTiming, ModelInputs, WindowModel, window_weights
from ketpet_bids.errors import InputError


class SUVR(WindowModel):
    """Window-mean ratio to a reference region (parameter ``SUVR``, unitless)."""

    name: ClassVar[str] = "suvr"
    parameters: ClassVar[tuple[str, ...]] = ("SUVR",)

    def scale(self, frames: FrameTiming, inputs: ModelInputs) -> float:
        """``1 / mean_w(C_R)``; InputError without a reference or when its mean is not > 0."""
        if inputs.reference_tac is None:
            raise InputError("--ref-region", "model 'suvr' needs a reference-region TAC",
                             "give a reference region (e.g. --ref-region wholebrain)")
        reference = np.asarray(inputs.reference_tac, dtype=float).ravel()
        weights = window_weights(frames, inputs.window)
        if reference.size != weights.size:
            raise InputError(f"reference TAC '{inputs.reference_name}'",
                             f"{reference.size} frames but the PET has {weights.size}")
        mean = float(reference @ weights)
        if not mean > 0:
            raise InputError(f"reference TAC '{inputs.reference_name}'",
                             f"mean activity in the window is {mean:g} Bq/mL, not positive",
                             "choose another reference region or window")
        return 1.0 / mean

    def settings(self, frames: FrameTiming, inputs: ModelInputs) -> dict[str, Any]:
        """Window settings plus the reference region."""
        return {**super().settings(frames, inputs), "ReferenceRegion": inputs.reference_name}
