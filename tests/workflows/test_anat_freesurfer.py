"""FreeSurfer input: a fake subject directory (small conformed-like LIA volume) → T1w atlas.

Truth: labelled boxes defined in scanner-RAS millimetres and rasterised independently on the
FreeSurfer grid (LIA, like ``recon-all``'s conformed space) and on the T1w grid (RAS). Both
grids have voxel centres on integer millimetres, so nearest-neighbour resampling through the
affines must reproduce the T1w-grid rasterisation exactly.
"""

from __future__ import annotations

import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from test_anat_tacs_wf import _run

from ketpet_bids.bids.anat_derivatives import find_anat_derivatives
from ketpet_bids.core.freesurfer import find_freesurfer, freesurfer_lut, labels_to_t1w
from ketpet_bids.core.regions import reference_indices
from ketpet_bids.errors import InputError
from ketpet_bids.workflows.anat import init_anat_wf, output_atlas_names

# Conformed-like: LIA, 48³ at 1 mm, centre (3, -5, 10) mm (c_ras).
FS_AFFINE = np.array([[-1.0, 0, 0, 27], [0, 0, 1, -29], [0, -1, 0, 34], [0, 0, 0, 1]])
FS_SHAPE = (48, 48, 48)
T1W_AFFINE = np.array([[1.0, 0, 0, -22], [0, 1, 0, -31], [0, 0, 1, -16], [0, 0, 0, 1]])
T1W_SHAPE = (50, 52, 46)
# label → box [lo, hi) in scanner RAS mm; 9999 is not a FreeSurfer label.
BOXES = {2: ((-15, -20, -5), (15, 10, 20)), 17: ((-10, -5, 0), (0, 5, 8)),
         1035: ((5, -15, 5), (12, -5, 15)), 2035: ((-14, 0, 10), (-6, 8, 18)),
         4: ((-2, -12, -3), (4, -6, 3)), 81: ((6, 0, -4), (10, 4, 0)),
         9999: ((8, 4, 12), (12, 8, 16))}
BRAIN = ((-18, -24, -8), (18, 14, 24))


def _raster(shape, affine, boxes) -> np.ndarray:
    ijk = np.indices(shape).reshape(3, -1).T
    xyz = ijk @ affine[:3, :3].T + affine[:3, 3]
    out = np.zeros(len(xyz), np.int32)
    for label, (lo, hi) in boxes.items():       # later boxes paint over earlier ones
        out[np.all((xyz >= lo) & (xyz < hi), axis=1)] = label
    return out.reshape(shape)


def _fake_subject(fs_dir: Path, subject: str = "sub-01") -> Path:
    mri = fs_dir / subject / "mri"
    mri.mkdir(parents=True)
    nib.save(nib.MGHImage(_raster(FS_SHAPE, FS_AFFINE, BOXES), FS_AFFINE),
             mri / "aparc+aseg.mgz")
    brain = _raster(FS_SHAPE, FS_AFFINE, {1: BRAIN}).astype(np.float32) * 80
    nib.save(nib.MGHImage(brain, FS_AFFINE), mri / "brainmask.mgz")
    nib.save(nib.MGHImage(brain, FS_AFFINE), mri / "orig.mgz")
    return mri


#: Index → name pairs read from FreeSurferColorLUT.txt (github.com/freesurfer/freesurfer,
#: distribution/FreeSurferColorLUT.txt, commit 62228baedd5c5914333d31211e3e02759faed287):
#: the first and last of each block, pairs easy to confuse from memory (Left 13 / Right 52
#: pallidum, 10/49 thalamus after the unused 9/48, the 63 choroid plexus, 72, 77–82, 85) and
#: the corpus callosum segments.
FREESURFER_COLOR_LUT = {
    2: "Left-Cerebral-White-Matter", 8: "Left-Cerebellum-Cortex", 10: "Left-Thalamus",
    13: "Left-Pallidum", 16: "Brain-Stem", 24: "CSF", 26: "Left-Accumbens-area",
    28: "Left-VentralDC", 31: "Left-choroid-plexus", 47: "Right-Cerebellum-Cortex",
    49: "Right-Thalamus", 52: "Right-Pallidum", 58: "Right-Accumbens-area",
    60: "Right-VentralDC", 63: "Right-choroid-plexus", 72: "5th-Ventricle",
    77: "WM-hypointensities", 80: "non-WM-hypointensities",
    82: "Right-non-WM-hypointensities", 85: "Optic-Chiasm", 251: "CC_Posterior",
    253: "CC_Central", 255: "CC_Anterior", 1000: "ctx-lh-unknown", 1001: "ctx-lh-bankssts",
    1004: "ctx-lh-corpuscallosum", 1026: "ctx-lh-rostralanteriorcingulate",
    1032: "ctx-lh-frontalpole", 1035: "ctx-lh-insula", 2002: "ctx-rh-caudalanteriorcingulate",
    2023: "ctx-rh-posteriorcingulate", 2034: "ctx-rh-transversetemporal",
    2035: "ctx-rh-insula",
}


def test_lut_matches_freesurfer_color_lut():
    """The shipped table agrees with FreeSurfer's on the sampled pairs; its cortex blocks are
    the 36 Desikan-Killiany labels per hemisphere, the right one the left with 1000 added and
    ``ctx-rh-`` for ``ctx-lh-`` (as FreeSurferColorLUT.txt defines them); no FreeSurfer
    index of an unused or non-aparc+aseg label (e.g. 9 Left-Thalamus-unused) is in it."""
    lut = freesurfer_lut()
    assert {i: lut.get(i) for i in FREESURFER_COLOR_LUT} == FREESURFER_COLOR_LUT
    left = {i: n for i, n in lut.items() if 1000 <= i < 2000}
    right = {i: n for i, n in lut.items() if i >= 2000}
    assert sorted(left) == list(range(1000, 1036))
    assert right == {i + 1000: n.replace("ctx-lh-", "ctx-rh-") for i, n in left.items()}
    assert len(lut) == 121 and not {9, 48, 1, 40}.intersection(lut)


def test_find_freesurfer(tmp_path):
    assert find_freesurfer(tmp_path, "01") is None
    mri = _fake_subject(tmp_path)
    found = find_freesurfer(tmp_path, "sub-01")
    assert found.aparc_aseg == mri / "aparc+aseg.mgz"
    assert found.brainmask == mri / "brainmask.mgz" and found.t1 == mri / "orig.mgz"
    (tmp_path / "02" / "mri").mkdir(parents=True)
    with pytest.raises(InputError, match="aparc\\+aseg.mgz"):
        find_freesurfer(tmp_path, "02")


def test_labels_to_t1w_exact_and_named(tmp_path, caplog):
    labels = _raster(FS_SHAPE, FS_AFFINE, BOXES)
    lut = freesurfer_lut()
    with caplog.at_level(logging.WARNING, logger="ketpet_bids.anat"):
        moved, table = labels_to_t1w(labels, FS_AFFINE, T1W_SHAPE, T1W_AFFINE, lut, "x.mgz")
    assert "9999" in caplog.text
    truth = _raster(T1W_SHAPE, T1W_AFFINE, {k: v for k, v in BOXES.items() if k != 9999})
    truth[_raster(T1W_SHAPE, T1W_AFFINE, {1: BOXES[9999]}) > 0] = 0
    np.testing.assert_array_equal(moved, truth)
    assert table == {2: "Left-Cerebral-White-Matter", 4: "Left-Lateral-Ventricle",
                     17: "Left-Hippocampus", 81: "Left-non-WM-hypointensities",
                     1035: "ctx-lh-insula", 2035: "ctx-rh-insula"}
    # Named references on FreeSurfer names: ventricles are not brain, non-WM lesions not WM.
    assert reference_indices("wholebrain", table) == [2, 17, 81, 1035, 2035]
    assert reference_indices("white-matter", table) == [2]
    far = T1W_AFFINE.copy()
    far[:3, 3] += 200.0                           # another subject's scanner space
    with pytest.raises(InputError, match="field of view"):
        labels_to_t1w(labels, FS_AFFINE, T1W_SHAPE, far, lut, "x.mgz")


def test_anat_wf_uses_freesurfer_and_user_atlas(tmp_path):
    """T1w from derivatives, no mask: the FreeSurfer mask is used; 'own' + 'aparcaseg'."""
    _fake_subject(tmp_path / "fs")
    fs = find_freesurfer(tmp_path / "fs", "01")
    anat = tmp_path / "deriv" / "sub-01" / "anat"
    anat.mkdir(parents=True)
    own = np.zeros(T1W_SHAPE, np.int16)
    own[10:20, 10:20, 10:20] = 1
    nib.save(nib.Nifti1Image(own.astype(np.float32), T1W_AFFINE),
             anat / "sub-01_desc-preproc_T1w.nii.gz")
    nib.save(nib.Nifti1Image(own, T1W_AFFINE), anat / "sub-01_seg-own_dseg.nii.gz")
    (anat / "sub-01_seg-own_dseg.tsv").write_text("index\tname\n1\tbox\n")
    for tissue, value in (("GM", 1.0), ("WM", 0.0), ("CSF", 0.0)):  # given: no Atropos
        nib.save(nib.Nifti1Image(np.full(T1W_SHAPE, value, np.float32), T1W_AFFINE),
                 anat / f"sub-01_label-{tissue}_probseg.nii.gz")
    derivatives = find_anat_derivatives(tmp_path / "deriv", "01")
    assert output_atlas_names(derivatives.segs, fs) == ["own", "aparcaseg"]
    out = _run(init_anat_wf(derivatives=derivatives, atlases=derivatives.segs, freesurfer=fs),
               tmp_path)
    assert out.atlas_names == ["own", "aparcaseg"]
    mask = np.asarray(nib.load(out.brain_mask).dataobj) > 0
    np.testing.assert_array_equal(mask, _raster(T1W_SHAPE, T1W_AFFINE, {1: BRAIN}) > 0)
    dseg = np.asarray(nib.load(out.dseg_files[1]).dataobj)
    assert np.count_nonzero(dseg == 17) == 10 * 10 * 8                 # box volume, 1 mm³
    morph = [pd.read_csv(m, sep="\t") for m in out.morph_tsvs]
    assert morph[0]["volume_mm3"].tolist() == [1000.0]
    hippo = morph[1].set_index("name").loc["Left-Hippocampus", "volume_mm3"]
    assert hippo == 800.0
