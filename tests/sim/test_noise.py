"""Noise variance ∝ C·e^{λt}/Δt, scaled by ``noise``, and switched off by noise = 0."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np

from ketpet_bids.sim import acquisition as acq
from ketpet_bids.sim import raw_path, truth_path
from ketpet_bids.sim.kinetics import C11_DECAY_PER_S


def test_noise_variance_follows_counts_decay_and_duration():
    """Flat frames of 400,000 voxels: the sample variance matches the formula within 2 %
    (the standard error of a variance estimate from N samples is √(2/N) ≈ 0.2 %)."""
    rng = np.random.default_rng(0)
    cases = [(1.0e4, 3450.0, 300.0, 1.0), (1.0e4, 3450.0, 300.0, 2.0),
             (4.0e3, 60.0, 30.0, 1.0), (2.5e4, 1800.0, 600.0, 0.5)]
    for activity, mid, duration, noise in cases:
        frame = np.full(400_000, activity, dtype=np.float32)
        sample = acq.add_noise(frame, rng, mid, duration, noise, 2.0) - activity
        expected = (noise**2 * acq.noise_alpha(2.0) * activity
                    * np.exp(C11_DECAY_PER_S * mid) / duration)
        assert abs(sample.var() / expected - 1) < 0.02
        assert abs(sample.mean()) < 5 * np.sqrt(expected / frame.size)
    # Reference point of the calibration: CoV 15 % at 10 kBq/mL, 300 s frame at 3450 s, 2 mm.
    sd = acq.noise_sd(np.array([1.0e4]), 3450.0, 300.0, 1.0, 2.0)[0]
    assert np.isclose(sd / 1.0e4, 0.15, rtol=1e-6)
    # Variance scales with 1 / voxel volume.
    assert np.isclose(acq.noise_alpha(4.0) * 8, acq.noise_alpha(2.0))


def test_written_noise_matches_model(clean_study, noisy_twin):
    """Noisy PET − noise-free twin (same seed), divided by the model SD: unit variance in
    every frame within 5 % (≥ 10,000 voxels with activity per frame), zero mean."""
    clean = nib.load(clean_study / raw_path("pet", "01", "post")).get_fdata(dtype=np.float32)
    noisy = nib.load(noisy_twin / raw_path("pet", "01", "post")).get_fdata(dtype=np.float32)
    truth = json.loads((noisy_twin / truth_path("pet", "01", "post")).read_text())
    assert truth["noise_scale"] == 1.0
    starts, ends = np.asarray(truth["frame_start"]), np.asarray(truth["frame_end"])
    for f in range(clean.shape[-1]):
        sd = acq.noise_sd(clean[..., f], (starts[f] + ends[f]) / 2, ends[f] - starts[f], 1.0,
                          4.0)
        active = sd > 0
        assert active.sum() > 10_000
        z = (noisy[..., f] - clean[..., f])[active] / sd[active]
        assert abs(z.var() - 1) < 0.05
        assert abs(z.mean()) < 0.05
        assert np.all(noisy[..., f][~active] == clean[..., f][~active])
