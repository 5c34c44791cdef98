"""Frame timing and time-weighted means (ketpet_bids.core.timing)."""

from __future__ import annotations

import tracemalloc

import nibabel as nib
import numpy as np
import pytest

from ketpet_bids.core import timing

STARTS = [0.0, 30.0, 60.0, 120.0, 240.0]
DURATIONS = [30.0, 30.0, 60.0, 120.0, 360.0]


def test_frame_mid_times():
    np.testing.assert_array_equal(timing.frame_mid_times(STARTS, DURATIONS),
                                  [15.0, 45.0, 90.0, 180.0, 420.0])


def test_select_reference_frames_cases():
    normal = timing.select_reference_frames(STARTS, DURATIONS, 120.0)
    assert normal.indices.tolist() == [3, 4] and normal.start_time_used == 120.0
    assert not normal.fallback
    late = timing.select_reference_frames([3600.0, 3900.0, 4200.0], [300.0] * 3, 120.0)
    assert late.indices.tolist() == [0, 1, 2] and late.start_time_used == 3600.0
    assert not late.fallback
    beyond = timing.select_reference_frames(STARTS, DURATIONS, 1000.0)
    assert beyond.indices.tolist() == [4] and beyond.start_time_used == 240.0 and beyond.fallback
    with pytest.raises(ValueError):
        timing.select_reference_frames(STARTS, DURATIONS[:-1], 0.0)


def _constant_frames(values):
    return np.stack([np.full((4, 5, 6), v, dtype=np.float32) for v in values], axis=-1)


def test_time_weighted_mean_analytic(tmp_path):
    """Constant frames 1..5: the mean of frames 3-4 is (120·4 + 360·5)/480 = 4.75 exactly;
    reading from a NIfTI proxy gives the same."""
    frames = _constant_frames([1, 2, 3, 4, 5])
    mean = timing.time_weighted_mean(frames, DURATIONS, [3, 4])
    assert mean.dtype == np.float32 and mean.shape == (4, 5, 6)
    np.testing.assert_allclose(mean, 4.75, rtol=1e-7)
    everything = (30 * 1 + 30 * 2 + 60 * 3 + 120 * 4 + 360 * 5) / 600
    np.testing.assert_allclose(timing.time_weighted_mean(frames, DURATIONS), everything, rtol=1e-6)
    nib.save(nib.Nifti1Image(frames, np.eye(4)), tmp_path / "pet.nii.gz")
    proxy = nib.load(tmp_path / "pet.nii.gz").dataobj
    np.testing.assert_array_equal(timing.time_weighted_mean(proxy, DURATIONS, [3, 4]), mean)
    np.testing.assert_array_equal(timing.time_weighted_mean(frames[..., 2], [60.0]), 3.0)


def test_time_weighted_mean_has_no_4d_float64_copy():
    """Peak extra memory stays below one float32 4D copy (a float64 copy would be 2×)."""
    frames = np.random.default_rng(0).random((24, 24, 24, 40), dtype=np.float32)
    tracemalloc.start()
    timing.time_weighted_mean(frames, np.full(40, 60.0))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < frames.nbytes / 4, (peak, frames.nbytes)


def test_time_weighted_mean_rejects_bad_durations():
    with pytest.raises(ValueError):
        timing.time_weighted_mean(_constant_frames([1, 2]), [60.0])
