"""PreparePET: units, decay correction and non-finite values, against values computed by hand."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nb
import numpy as np
import pytest

from ketpet_bids.errors import InputError
from ketpet_bids.interfaces.pet import PreparePET

C11 = 20.39 * 60.0


def _write(tmp_path: Path, data: np.ndarray, **sidecar) -> tuple[Path, Path]:
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    pet = tmp_path / "sub-01_trc-K2_pet.nii.gz"
    nb.Nifti1Image(data, affine).to_filename(pet)
    meta = {"Units": "Bq/mL", "TracerRadionuclide": "C11", "TracerName": "K2",
            "ImageDecayCorrected": True, "ImageDecayCorrectionTime": 0,
            "FrameTimesStart": [0, 60, C11], "FrameDuration": [60, 120, 1e-3]}
    meta.update(sidecar)
    json_path = tmp_path / "sub-01_trc-K2_pet.json"
    json_path.write_text(json.dumps(meta))
    return pet, json_path


def _run(tmp_path: Path, pet: Path, sidecar: Path):
    node = PreparePET(in_file=str(pet), sidecar=str(sidecar))
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return node.run(cwd=str(work)).outputs


def test_non_decay_corrected_nci_with_nan(tmp_path):
    data = np.full((3, 3, 2, 3), 10.0, dtype=np.float32)
    data[0, 0, 0, 1] = np.nan
    data[1, 1, 1, 2] = np.inf
    pet, sidecar = _write(tmp_path, data, Units="nCi/mL", ImageDecayCorrected=False)
    out = _run(tmp_path, pet, sidecar)
    img = nb.load(out.out_file)
    result = np.asarray(img.dataobj)
    assert result.dtype == np.float32 and img.shape == data.shape
    np.testing.assert_array_equal(img.affine, np.diag([2.0, 2.0, 2.0, 1.0]))
    lam = np.log(2) / C11
    # Frame 0 [0, 60]: 37 × λ·60/(1−e^{−60λ}); frame 2 is 1 ms long starting at one
    # half-life: 37 × 2 (to float32 precision, rtol 1e-6).
    frame0 = 10 * 37 * lam * 60 / (1 - np.exp(-lam * 60))
    np.testing.assert_allclose(result[1, 1, 1, 0], frame0, rtol=1e-6)
    np.testing.assert_allclose(result[0, 0, 0, 2], 10 * 37 * 2, rtol=1e-6)
    assert result[0, 0, 0, 1] == 0 and result[1, 1, 1, 2] == 0 and out.n_nonfinite == 2
    assert out.frame_start == [0.0, 60.0, C11] and out.frame_duration == [60.0, 120.0, 1e-3]
    assert out.metadata["units"] == "Bq/mL" and out.metadata["decay_corrected"] is True
    assert out.metadata["source_units"] == "nCi/mL"
    assert out.metadata["source_decay_corrected"] is False
    json.dumps(out.metadata)  # plain JSON types


def test_static_3d_kbq(tmp_path):
    data = np.arange(24, dtype=np.float32).reshape(4, 3, 2)
    pet, sidecar = _write(tmp_path, data, Units="kBq/mL", FrameTimesStart=[3000],
                          FrameDuration=[600])
    out = _run(tmp_path, pet, sidecar)
    result = np.asarray(nb.load(out.out_file).dataobj)
    assert result.shape == (4, 3, 2) and out.frame_duration == [600.0]
    np.testing.assert_array_equal(result, data * 1000)  # exact in float32 for these values
    assert out.n_nonfinite == 0


def test_frame_mismatch_is_an_input_error(tmp_path):
    pet, sidecar = _write(tmp_path, np.zeros((2, 2, 2, 4), dtype=np.float32))
    with pytest.raises(InputError, match="have 3 entries but the image .* has 4 frames"):
        _run(tmp_path, pet, sidecar)
