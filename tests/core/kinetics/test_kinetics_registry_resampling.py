"""Model registry, and placing PET-space maps on the T1w grid.

The maps are resampled with ``core.motion.resample`` (shared with co-registration); these
tests pin the behaviour the kinetics interface relies on: ``out(x) = pet(B⁻¹x)``, trilinear.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ketpet_bids.core.kinetics.registry import MODELS, get_model, known_models
from ketpet_bids.core.motion import resample
from ketpet_bids.errors import InputError


def test_registry_lists_models_and_rejects_unknown_names_with_the_list():
    assert known_models() == ("1tcm", "2tcm", "2tcmirr", "logan", "ma1", "mrtm", "mrtm2",
                              "patlak", "srtm", "srtm2", "suv", "suvr")
    assert get_model("SUVR").parameters == ("SUVR",)
    assert all(get_model(n).name == n for n in MODELS)
    with pytest.raises(InputError) as err:
        get_model("srtm3")
    assert "unknown model 'srtm3'" in str(err.value)
    assert "srtm, srtm2, suv, suvr" in str(err.value)


def test_input_kind_selects_parameters_and_is_checked():
    assert get_model("logan").input_kind == "plasma"
    assert get_model("logan").parameters == ("VT",)
    assert get_model("logan", "reference").parameters == ("DVR", "BPND")
    assert get_model("patlak", "reference").parameters == ("Ki", "intercept")
    with pytest.raises(InputError, match="cannot use plasma input"):
        get_model("srtm", "plasma")
    with pytest.raises(InputError, match="cannot use reference input"):
        get_model("2tcm", "reference")


def _rotation_z(deg: float, shift: tuple[float, float, float]) -> np.ndarray:
    a = np.deg2rad(deg)
    m = np.eye(4)
    m[:2, :2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    m[:3, 3] = shift
    return m


PET_AFFINE = np.array([[2.0, 0, 0, -20], [0, 2.0, 0, -22], [0, 0, 2.5, -15], [0, 0, 0, 1]])
T1W_AFFINE = np.array([[1.0, 0, 0, -12], [0, 1.2, 0, -14], [0, 0, 1.0, -9], [0, 0, 0, 1]])
T1W_SHAPE = (24, 22, 18)
B = _rotation_z(7.0, (1.5, -2.0, 0.7))  # PET world → T1w world


def _world_grid(affine: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    return ijk.reshape(-1, 3) @ affine[:3, :3].T + affine[:3, 3]


def test_resampling_matches_independent_map_coordinates():
    # Independent path: T1w voxel → world x → PET world B^-1 x → PET voxel, via map_coordinates.
    pet = np.random.default_rng(0).uniform(0, 3, (20, 22, 12)).astype(np.float32)
    x = _world_grid(T1W_AFFINE, T1W_SHAPE)
    p = np.c_[x, np.ones(len(x))] @ np.linalg.inv(B).T
    ijk = p @ np.linalg.inv(PET_AFFINE).T
    expected = ndimage.map_coordinates(pet, ijk[:, :3].T, order=1, mode="constant", cval=0.0)
    out = resample(pet, PET_AFFINE, B, T1W_SHAPE, T1W_AFFINE, order=1)
    assert out.dtype == np.float32 and out.shape == T1W_SHAPE
    # Same interpolation in float32: agreement to float32 rounding (values ≤ 3).
    np.testing.assert_allclose(out.ravel(), expected, rtol=0, atol=1e-5)


def test_resampling_reproduces_a_linear_ramp_exactly_inside_the_field_of_view():
    # pet(p) = g·p + c in PET world mm; trilinear interpolation is exact for linear fields,
    # so the T1w map must equal g·(B^-1 x) + c wherever the 8 neighbours are inside the PET.
    g, c = np.array([0.03, -0.02, 0.05]), 4.0
    shape = (20, 22, 12)
    pet = (_world_grid(PET_AFFINE, shape) @ g + c).reshape(shape).astype(np.float32)
    out = resample(pet, PET_AFFINE, B, T1W_SHAPE, T1W_AFFINE, order=1).ravel()
    x = _world_grid(T1W_AFFINE, T1W_SHAPE)
    p = (np.c_[x, np.ones(len(x))] @ np.linalg.inv(B).T)[:, :3]
    ijk = np.c_[p, np.ones(len(p))] @ np.linalg.inv(PET_AFFINE).T
    inside = np.all((ijk[:, :3] >= 0) & (ijk[:, :3] <= np.array(shape) - 1), axis=1)
    assert inside.sum() > 1000
    # float32 values ≈ 4 ± 2: rounding ~5e-7, interpolation weights add a few ulps.
    np.testing.assert_allclose(out[inside], p[inside] @ g + c, rtol=0, atol=1e-5)
    assert np.all(out[~np.all((ijk[:, :3] >= -1) & (ijk[:, :3] <= np.array(shape)), 1)] == 0)
