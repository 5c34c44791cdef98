"""Richardson–Lucy deconvolution (Richardson 1972, Lucy 1974; PETPVC ``pvc_rl``).

    f₀ = y⁺,   f_{k+1} = f_k · h ⊛ ( y⁺ / (h ⊛ f_k) ),   y⁺ = max(y, 0),

10 iterations by default (PETPVC's default), optionally stopping earlier when
``‖f_{k+1} − f_k‖ / ‖y⁺‖`` falls below ``stop``. This is the maximum-likelihood (EM) form
with the back-projection blur ``h ⊛ ·`` (``hᵀ = h`` for a Gaussian); PETPVC's code omits that
second blur (``f_{k+1} = f_k · y⁺ / (h ⊛ f_k)``), so its images are somewhat sharper and
noisier at equal iterations. Ratios are 0 where ``h ⊛ f_k`` is 0.
"""

from __future__ import annotations

import numpy as np

from ketpet_bids.core.pvc.psf import GaussianPSF
from ketpet_bids.core.pvc.vc import relative_change

ITERATIONS = 10


def richardson_lucy(frame: np.ndarray, psf: GaussianPSF, iterations: int = ITERATIONS,
                    stop: float | None = None) -> tuple[np.ndarray, int, int]:
    """Deconvolve one frame.

    Returns
    -------
    image, n_iterations, n_negative
        Corrected frame (float32, ≥ 0), iterations run, negative input voxels set to 0.
    """
    observed = np.asarray(frame, np.float32)
    n_negative = int(np.count_nonzero(observed < 0))
    observed = np.maximum(observed, 0.0)
    scale = float(np.linalg.norm(observed.ravel()))
    estimate, k = observed.copy(), 0
    while k < iterations:
        k += 1
        blurred = psf.blur(estimate)
        ratio = np.zeros_like(blurred)
        np.divide(observed, blurred, out=ratio, where=blurred > 0)
        update = estimate * psf.blur(ratio)
        change = relative_change(update, estimate, scale)
        estimate = update
        if stop is not None and change < stop:
            break
    return estimate, k, n_negative
