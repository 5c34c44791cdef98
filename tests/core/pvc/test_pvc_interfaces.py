"""PreparePVC/ApplyPVC on files: 3D and 4D agree, TACs and reference TAC match truth.

The PET is rendered by the simulator (``pvc_files``); unlabelled space has no activity, so the
background shells' true value is 0 and rounding may clip it from about -1e-6.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from ketpet_bids.interfaces.pvc import ApplyPVC, FrameWriter, PreparePVC

sys.path.insert(0, str(Path(__file__).parent))
from pvc_files import SCALES, expected_reference, write_inputs  # noqa: E402
from pvc_phantom import PET_AFFINE, TABLE, TRUTH  # noqa: E402


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    base = tmp_path_factory.mktemp("pvc")
    data = write_inputs(base / "in")
    files = data["files"]
    work = base / "prepare"
    work.mkdir()
    node = PreparePVC(pet_file=files["pet_file"], pet_to_t1w_matrix=files["pet_to_t1w_matrix"],
                      dseg=files["dseg"], dseg_tsv=files["dseg_tsv"],
                      brain_mask=files["brain_mask"], methods=["gtm", "rbv", "iy"],
                      psf_fwhm_mm=[6.0])
    cwd = Path.cwd()
    try:
        import os
        os.chdir(work)
        setup_file = node.run().outputs.setup_file
    finally:
        os.chdir(cwd)
    return base, data, setup_file


def _apply(base: Path, tag: str, setup_file: str, pet_file: str, starts, durations,
           method: str):
    import os
    work = base / tag
    work.mkdir(exist_ok=True)
    cwd = Path.cwd()
    try:
        os.chdir(work)
        return ApplyPVC(setup_file=setup_file, pet_file=pet_file, frame_start=starts,
                        frame_duration=durations, method=method).run().outputs
    finally:
        os.chdir(cwd)


@pytest.mark.parametrize("method", ["gtm", "rbv", "iy"])
def test_4d_and_3d_agree_and_match_truth(prepared, method):
    base, data, setup_file = prepared
    files = data["files"]
    out4 = _apply(base, f"{method}_4d", setup_file, files["pet_file"],
                  files["frame_start"], files["frame_duration"], method)
    tacs4 = pd.read_csv(out4.tacs_tsv, sep="\t")
    assert list(tacs4.columns) == ["frame_start", "frame_end", *TABLE.values()]
    for f, scale in enumerate(SCALES):
        path = base / f"frame{f}.nii.gz"
        nib.save(nib.Nifti1Image(data["frames"][..., f], PET_AFFINE), path)
        out3 = _apply(base, f"{method}_3d_{f}", setup_file, str(path),
                      [files["frame_start"][f]], [60.0], method)
        tacs3 = pd.read_csv(out3.tacs_tsv, sep="\t")
        np.testing.assert_allclose(tacs3.iloc[0, 2:], tacs4.iloc[f, 2:], rtol=1e-6)
        if method != "gtm":
            image4 = np.asarray(nib.load(out4.pvc_pet).dataobj)[..., f]
            np.testing.assert_array_equal(np.asarray(nib.load(out3.pvc_pet).dataobj), image4)
        if method in ("gtm", "rbv"):      # exact at matched geometry (TSV keeps 6 digits)
            np.testing.assert_allclose(tacs4.iloc[f, 2:], TRUTH[:-1] * scale, rtol=1e-4)
    ref = pd.read_csv(out4.ref_tacs_tsv, sep="\t")
    assert list(ref.columns) == ["frame_start", "frame_end", "wholebrain"]
    if method in ("gtm", "rbv"):
        np.testing.assert_allclose(ref["wholebrain"], expected_reference(data["phantom"]),
                                   rtol=1e-4)
    sidecar = json.loads(Path(out4.pvc_json).read_text())
    assert sidecar["Method"] == method
    assert sidecar["PointSpreadFunction"]["FWHMmm"] == [6.0, 6.0, 6.0]
    assert sidecar["Clipping"]["exploding"] == 0
    if method in ("gtm", "rbv"):   # only the background (true 0) may come out at -1e-6
        assert sidecar["Clipping"]["negative"] <= len(SCALES)
        assert max(abs(v) for shell in sidecar["Background"]["Shells"].values()
                   for v in shell["TAC"]) < 1e-3
    assert "csf" not in sidecar["ReferenceRegion"]["Regions"]
    assert (out4.pvc_pet == files["pet_file"]) == (method == "gtm")


def test_frame_writer_round_trip(tmp_path):
    like = nib.Nifti1Image(np.zeros((4, 3, 2, 3), np.int16), PET_AFFINE)
    like.header.set_xyzt_units("mm", "sec")
    frames = np.random.default_rng(0).random((3, 4, 3, 2)).astype(np.float32)
    with FrameWriter(tmp_path / "out.nii.gz", like) as writer:
        for frame in frames:
            writer.write(frame)
    img = nib.load(tmp_path / "out.nii.gz")
    assert img.shape == (4, 3, 2, 3) and img.get_data_dtype() == np.float32
    np.testing.assert_array_equal(img.get_fdata(dtype=np.float32), np.moveaxis(frames, 0, -1))
    np.testing.assert_allclose(img.affine, PET_AFFINE)
    assert img.header.get_xyzt_units() == ("mm", "sec")
