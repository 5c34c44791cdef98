"""Tissue classes (``core.anat.segment_tissues``, Atropos) against the phantom's truth.

T1w: the simulator's phantom on a 2 mm grid (WM 1000, GM 580–760, CSF 200, 0.5-voxel blur),
brain mask = the phantom's brain and CSF. Truth: each voxel's region tissue. Hard classes
(largest posterior) are compared with the truth by Dice. The issue asks GM ≥ 0.85 and
WM ≥ 0.90; measured on 2026-11-30 (k-means start, 5 % noise): GM 0.98, WM 0.99, CSF 0.997;
the tests keep the issue's thresholds plus margins stated below.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ketpet_bids.core.anat import TISSUES, segment_tissues
from ketpet_bids.sim import phantom

VOXEL_MM = 2.0
SHAPE = (88, 108, 88)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


@pytest.fixture(scope="module")
def anatomy():
    labels = phantom.build_labels(SHAPE, VOXEL_MM)
    tissue_of = np.full(256, "", dtype="<U5")
    for region in phantom.REGIONS:
        tissue_of[region.index] = region.tissue
    return labels, tissue_of[labels], phantom.atlas_labels(labels) > 0


def _tissue_dice(probs: dict[str, np.ndarray], truth: np.ndarray, mask: np.ndarray
                 ) -> dict[str, float]:
    hard = np.asarray(TISSUES)[np.argmax(np.stack([probs[t] for t in TISSUES]), axis=0)]
    return {t: _dice((hard == t) & mask, truth == t) for t in TISSUES}


def test_kmeans_classes_match_truth(anatomy):
    labels, truth, mask = anatomy
    t1w = phantom.t1w_image(labels, np.random.default_rng(0), 0.05)
    probs = segment_tissues(t1w, mask)
    assert all(p.dtype == np.float32 and p.shape == SHAPE for p in probs.values())
    # posteriors: a partition of unity in the mask, 0 outside
    np.testing.assert_allclose(sum(probs.values())[mask], 1.0, atol=1e-3)
    assert all(not p[~mask].any() for p in probs.values())
    dice = _tissue_dice(probs, truth, mask)
    assert dice["GM"] >= 0.93 and dice["WM"] >= 0.95 and dice["CSF"] >= 0.95, dice


def test_priors_are_used_in_their_order_and_help_at_high_noise(anatomy):
    """12 % noise; priors = the true tissue maps blurred (σ 3 mm) and shifted 2 mm, like
    template priors after an imperfect warp. Measured: k-means GM 0.885, WM 0.969; with
    priors GM 0.924, WM 0.982. Priors given in a wrong order would swap classes (Dice ≪ 0.5),
    so the GM gain also checks that ``priors`` are matched to outputs by name."""
    labels, truth, mask = anatomy
    t1w = phantom.t1w_image(labels, np.random.default_rng(1), 0.12)
    priors = {t: ndimage.shift(ndimage.gaussian_filter(p, 3.0 / VOXEL_MM), 2.0 / VOXEL_MM,
                               order=1)
              for t, p in phantom.tissue_probabilities(labels).items()}
    plain = _tissue_dice(segment_tissues(t1w, mask), truth, mask)
    guided = _tissue_dice(segment_tissues(t1w, mask, priors, prior_weight=0.25), truth, mask)
    assert guided["GM"] >= 0.90 and guided["WM"] >= 0.95, guided
    assert guided["GM"] >= plain["GM"] + 0.02, (plain, guided)
