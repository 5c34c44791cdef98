"""Reblurred Van Cittert deconvolution (PETPVC ``pvc_vc``; Tohka & Reilhac 2008).

    f₀ = y,   f_{k+1} = max(0, f_k + α · h ⊛ (y − h ⊛ f_k)),

with PETPVC's defaults α = 1.5, at most 30 iterations, stopping when
``‖f_{k+1} − f_k‖ / ‖y‖ < 0.01``. The non-negativity step belongs to the method (as in
PETPVC) and is counted in the clipping report.
"""

from __future__ import annotations

import numpy as np

from ketpet_bids.core.pvc.psf import GaussianPSF

ALPHA = 1.5
ITERATIONS = 30
STOP = 0.01


def relative_change(new: np.ndarray, old: np.ndarray, scale: float) -> float:
    """``‖new − old‖₂ / scale`` (``inf`` when ``scale`` is 0)."""
    return float(np.linalg.norm((new - old).ravel())) / scale if scale > 0 else float("inf")


def van_cittert(frame: np.ndarray, psf: GaussianPSF, iterations: int = ITERATIONS,
                alpha: float = ALPHA, stop: float | None = STOP
                ) -> tuple[np.ndarray, int, int]:
    """Deconvolve one frame.

    Parameters
    ----------
    frame
        (X, Y, Z) observed PET (Bq/mL).
    psf
        The PSF.
    iterations
        Maximum number of iterations.
    alpha
        Step size.
    stop
        Relative-change threshold (``None``: always run ``iterations``).

    Returns
    -------
    image, n_iterations, n_negative
        Corrected frame (float32), iterations run, voxels set to 0 by the last
        non-negativity step.
    """
    observed = np.asarray(frame, np.float32)
    scale = float(np.linalg.norm(observed.ravel()))
    estimate, n_negative, k = observed.copy(), 0, 0
    while k < iterations:
        k += 1
        update = estimate + alpha * psf.blur(observed - psf.blur(estimate))
        n_negative = int(np.count_nonzero(update < 0))
        np.maximum(update, 0.0, out=update)
        change = relative_change(update, estimate, scale)
        estimate = update
        if stop is not None and change < stop:
            break
    return estimate, k, n_negative
