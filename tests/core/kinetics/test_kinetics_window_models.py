"""SUVR and SUV against hand-integrated analytic curves.

Tolerances: the computations are a handful of float64 operations on exact inputs, so results
must match the hand values to 1e-12 relative; voxelwise paths run in float32 (eps 1.2e-7),
hence 1e-6 relative there.
"""

from __future__ import annotations

import numpy as np
import pytest

from ketpet_bids.core.kinetics.base import Frames, ModelInputs, weighted_frame_mean, window_weights
from ketpet_bids.core.kinetics.suv import SUV
from ketpet_bids.core.kinetics.suvr import SUVR
from ketpet_bids.errors import InputError

# Frames of 600 s from 0 to 3600 s.
FRAMES = Frames.from_lists(np.arange(0, 3600, 600), np.full(6, 600))


def frame_means_linear(a: float, b: float, frames: Frames) -> np.ndarray:
    """Frame averages of C(t) = a + b t: the value at the frame midpoint (exact for lines)."""
    return a + b * (frames.start + frames.duration / 2)


def test_window_weights_partial_overlap():
    # Window 900-2100 s: 300 s of frame 600-1200, all 600 s of 1200-1800, 300 s of 1800-2400.
    weights = window_weights(FRAMES, (900.0, 2100.0))
    np.testing.assert_allclose(weights, [0, 0.25, 0.5, 0.25, 0, 0], rtol=0, atol=1e-15)


def test_suvr_linear_curves_aligned_window_is_ratio_at_window_midpoint():
    # For straight lines the window mean equals the value at the window midpoint (2400 s).
    tissue = frame_means_linear(2.0, 0.01, FRAMES)       # 26 Bq/mL at 2400 s
    reference = frame_means_linear(4.0, 0.0025, FRAMES)  # 10 Bq/mL at 2400 s
    inputs = ModelInputs(reference_tac=reference, window=(1800.0, 3000.0))
    table = SUVR().fit_regional(tissue[None, :], FRAMES, inputs)
    assert table["SUVR"].iloc[0] == pytest.approx(26.0 / 10.0, rel=1e-12)
    assert table["n_frames_used"].iloc[0] == 2
    assert table[["r2", "aic"]].isna().all(axis=None)


def test_suvr_piecewise_linear_partial_frames_by_hand():
    # Tissue: C(t) = t/100 up to 1000 s, then 10 Bq/mL. Frame averages by hand:
    #   0-600: 3;  600-1200: (int_600^1000 t/100 dt + 200*10)/600 = (3200+2000)/600 = 26/3;
    #   1200-...: 10.  Window 900-2100 s (weights 1/4, 1/2, 1/4 of frames 2, 3, 4):
    #   mean = 26/3/4 + 10/2 + 10/4 = 13/6 + 7.5 = 58/6.
    tissue = np.array([3.0, 26.0 / 3.0, 10.0, 10.0, 10.0, 10.0])
    # Reference: C(t) = 1 + t/1200, frame averages at the midpoints 300, 900, ... 3300 s:
    reference = 1.0 + (FRAMES.start + 300.0) / 1200.0
    # window mean = (1.75)/4 + (2.25)/2 + (2.75)/4 = 2.25
    inputs = ModelInputs(reference_tac=reference, window=(900.0, 2100.0))
    two_regions = np.vstack([tissue, 2 * tissue])
    table = SUVR().fit_regional(two_regions, FRAMES, inputs)
    np.testing.assert_allclose(table["SUVR"], [58 / 6 / 2.25, 2 * 58 / 6 / 2.25], rtol=1e-12)
    assert (table["n_frames_used"] == 3).all()


def test_suvr_voxelwise_equals_regional_on_uniform_region():
    rng = np.random.default_rng(0)
    tac = rng.uniform(1e3, 5e3, FRAMES.start.size)
    reference = rng.uniform(1e3, 5e3, FRAMES.start.size)
    inputs = ModelInputs(reference_tac=reference, window=(900.0, 2100.0))
    model = SUVR()
    regional = model.fit_regional(tac[None, :], FRAMES, inputs)["SUVR"].iloc[0]
    voxels = np.tile(tac.astype(np.float32), (50, 1))
    maps = model.fit_voxelwise(voxels, FRAMES, inputs)
    assert maps["SUVR"].dtype == np.float32 and maps["SUVR"].shape == (50,)
    np.testing.assert_allclose(maps["SUVR"], regional, rtol=1e-6)


def test_streamed_frame_mean_equals_voxelwise_fit():
    rng = np.random.default_rng(1)
    image = rng.uniform(0, 1e4, (4, 3, 2, FRAMES.start.size)).astype(np.float32)
    reference = rng.uniform(1e3, 5e3, FRAMES.start.size)
    inputs = ModelInputs(reference_tac=reference, window=(900.0, 2100.0))
    weights = window_weights(FRAMES, inputs.window)
    used = np.flatnonzero(weights)
    mean = weighted_frame_mean(((i, image[..., i]) for i in used), weights)
    model = SUVR()
    streamed = model.map_from_mean(mean, FRAMES, inputs)["SUVR"]
    direct = model.fit_voxelwise(image.reshape(-1, FRAMES.start.size), FRAMES, inputs)["SUVR"]
    np.testing.assert_allclose(streamed.ravel(), direct, rtol=1e-6)


def test_suv_by_hand_with_unit_conversion():
    # 370 MBq into 70 kg = 70,000 g: 5285.714... Bq/g. A constant 5000 Bq/mL tissue → SUV
    # = 5000 / (370e6 / 70000) = 0.945945...
    tissue = np.full((1, FRAMES.start.size), 5000.0)
    inputs = ModelInputs(injected_radioactivity_bq=370e6, body_weight_kg=70.0,
                         window=(1800.0, 3000.0))
    value = SUV().fit_regional(tissue, FRAMES, inputs)["SUV"].iloc[0]
    assert value == pytest.approx(5000.0 * 70_000.0 / 370e6, rel=1e-12)
    assert value == pytest.approx(0.9459459459, rel=1e-9)


@pytest.mark.parametrize(("dose", "weight", "field"), [(None, 70.0, "InjectedRadioactivity"),
                                                      (370e6, None, "body_weight")])
def test_suv_missing_dose_or_weight_is_input_error(dose, weight, field):
    inputs = ModelInputs(injected_radioactivity_bq=dose, body_weight_kg=weight)
    with pytest.raises(InputError, match=field):
        SUV().fit_regional(np.ones((1, 6)), FRAMES, inputs)


def test_suvr_errors_name_the_problem():
    with pytest.raises(InputError, match="reference"):
        SUVR().fit_regional(np.ones((1, 6)), FRAMES, ModelInputs())
    with pytest.raises(InputError, match="outside the scan"):
        SUVR().fit_regional(np.ones((1, 6)), FRAMES,
                            ModelInputs(reference_tac=np.ones(6), window=(3000.0, 4000.0)))
    with pytest.raises(InputError, match="not positive"):
        SUVR().fit_regional(np.ones((1, 6)), FRAMES, ModelInputs(reference_tac=np.zeros(6)))
