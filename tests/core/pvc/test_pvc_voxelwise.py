"""Voxelwise PVC (RBV, MG, IY, VC, RL) on the matched-geometry phantom, noise-free and noisy.

Regional errors are |estimate / truth − 1| over the 9 regions (background included);
uncorrected fractional means err by 0.598 on average (cortex −36 %, habenula −71 %).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from ketpet_bids.core.pvc.registry import correct, known_methods, prepare

sys.path.insert(0, str(Path(__file__).parent))
from pvc_phantom import TRUTH, phantom  # noqa: E402


@pytest.fixture(scope="module")
def case():
    ph = phantom()
    return ph, prepare(ph.regions, ph.psf, known_methods()), ph.frame()


def _run(label, frame, setup, **kwargs):
    images = []
    result = correct(label, [frame], setup, on_frame=images.append, **kwargs)
    return result, images[0]


def _errors(values):
    return np.abs(np.asarray(values) / TRUTH - 1)


def test_rbv_is_exact_voxel_by_voxel(case):
    """Noise-free, PSF known, matched geometry: RBV returns Σ x_j m_j in every voxel."""
    ph, setup, frame = case
    result, image = _run("rbv", frame, setup)
    pseudo = ph.regions.pseudo_image(TRUTH)
    np.testing.assert_allclose(image, pseudo, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(result.values[0], TRUTH, rtol=1e-4)


def test_mg_exact_outside_gm_and_close_in_gm(case):
    """MG assumes one GM activity per voxel: exact where that holds (cortex far from the
    other GM structures, < 0.2 %), within 5 % for the habenula and putamen whose GM
    neighbours differ (measured 3–4 %); WM/CSF/background are their GTM values (exact)."""
    ph, setup, frame = case
    result, _ = _run("mg", frame, setup)
    err = _errors(result.values[0])
    names = ph.regions.names
    for name in ("White-Matter", "csf", "background"):
        assert err[names.index(name)] < 1e-4
    assert err[names.index("cortex-left")] < 0.002
    assert max(err[names.index(n)] for n in ("habenula-left", "putamen-right")) < 0.05


@pytest.mark.parametrize("label, bound", [("iy", 0.15), ("vc", 0.6), ("rl", 0.6)])
def test_iterative_methods_reduce_regional_error(case, label, bound):
    """Every atlas region improves and the mean error drops below ``bound`` × uncorrected.

    (The background, biased by only 5 % uncorrected, may move either way: rl 6.5 %.)

    Measured mean errors (uncorrected 0.598): iy 0.038 (10 iterations), vc 0.28 (stops at
    9 iterations with PETPVC's rule), rl 0.32 (10 iterations) — deconvolution alone cannot
    undo the tissue-fraction effect of 2 mm voxels nor recover 32 mm³ nuclei.
    """
    ph, setup, frame = case
    uncorrected = _errors(ph.regions.means(frame))
    result, image = _run(label, frame, setup)
    corrected = _errors(result.values[0])
    assert np.all(corrected[:-1] < uncorrected[:-1])
    assert corrected.mean() < bound * uncorrected.mean()
    assert len(result.iterations) == 1 and 1 <= result.iterations[0] <= 30
    assert image.dtype == np.float32 and np.all(image >= 0)


def test_more_iterations_of_vc_converge_further(case):
    """Without the stopping rule, 40 Van Cittert iterations beat PETPVC's early stop."""
    ph, setup, frame = case
    early, _ = _run("vc", frame, setup)
    late, _ = _run("vc", frame, setup, iterations=40, stop=0.0)
    assert late.iterations == [40]
    assert _errors(late.values[0]).mean() < _errors(early.values[0]).mean()


@pytest.mark.parametrize("label", ["rbv", "mg", "iy", "vc", "rl"])
def test_noisy_frames_stay_non_negative_and_report(case, label):
    """40 % voxel noise: outputs are clipped to [0, 10 × max observed] and counted."""
    ph, setup, frame = case
    rng = np.random.default_rng(7)
    noisy = (frame * (1 + 0.4 * rng.standard_normal(frame.shape))).astype(np.float32)
    result, image = _run(label, noisy, setup)
    assert np.all(image >= 0) and np.all(image <= 10 * noisy.max())
    assert np.all(result.values[0][np.isfinite(result.values[0])] >= 0)
    if label in ("vc", "rl"):
        assert result.clipped["negative"] > 0        # noisy input has negative voxels


@pytest.mark.parametrize("label", known_methods())
def test_frames_are_independent(case, label):
    """A 3-frame stream gives, frame by frame, what each frame gives alone."""
    ph, setup, frame = case
    frames = [frame, 0.5 * frame, ph.frame(TRUTH[::-1])]
    together = correct(label, frames, setup).values
    alone = np.concatenate([correct(label, [f], setup).values for f in frames])
    np.testing.assert_allclose(together, alone, rtol=1e-6)
