"""The PET written equals the true TACs × region images, blurred and moved as recorded."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage

from ketpet_bids.sim import raw_path, truth_path


def _load(study, subject, session):
    pet = nib.load(study / raw_path("pet", subject, session))
    truth = json.loads((study / truth_path("pet", subject, session)).read_text())
    tacs = pd.read_csv(study / truth_path("tacs", subject, session), sep="\t")
    labels_img = nib.load(study / truth_path("phantom_dseg", subject))
    table = pd.read_csv(study / truth_path("phantom_dseg_tsv", subject), sep="\t")
    return pet, truth, tacs, labels_img, table


def test_noise_free_pet_equals_blurred_moved_truth(clean_study):
    """Independent re-rendering: gaussian_filter + affine_transform of the recorded matrices.

    Tolerance 1e-4 × frame maximum: float32 storage (~1e-7) and TACs read back from the TSV
    at 9 significant digits; a wrong matrix, PSF or TAC gives errors of several percent.
    """
    for session in ("baseline", "post"):
        pet, truth, tacs, labels_img, table = _load(clean_study, "1".zfill(2), session)
        data = pet.get_fdata(dtype=np.float32)
        labels = np.asarray(labels_img.dataobj)
        t1w_affine = labels_img.affine
        np.testing.assert_allclose(pet.affine, truth["pet_affine"], atol=1e-4)
        np.testing.assert_allclose(t1w_affine, truth["t1w_affine"], atol=1e-4)
        voxel = np.linalg.norm(t1w_affine[:3, 0])
        sigma = truth["psf_fwhm_mm"] / 2.3548200450309493 / voxel
        b = np.asarray(truth["pet_to_t1w"])
        assert np.degrees(np.arccos((np.trace(b[:3, :3]) - 1) / 2)) > 3.0  # PET pose ≠ T1w
        for f, m in enumerate(truth["frame_to_reference"]):
            lut = np.zeros(256)
            lut[table["index"]] = tacs.loc[f, table["name"]].to_numpy()
            activity = ndimage.gaussian_filter(lut[labels], sigma, mode="constant")
            matrix = np.linalg.inv(t1w_affine) @ b @ np.asarray(m) @ pet.affine
            expected = ndimage.affine_transform(activity, matrix[:3, :3], matrix[:3, 3],
                                                output_shape=pet.shape[:3], order=1)
            scale = np.abs(expected).max()
            assert scale > 0
            np.testing.assert_allclose(data[..., f], expected, rtol=0, atol=1e-4 * scale)


def test_motion_zero_before_120s_then_present(clean_study):
    """No motion in frames starting before 120 s; some frame moves later by ≥ 1 mm."""
    truth = json.loads((clean_study / truth_path("pet", "01", "baseline")).read_text())
    starts = np.asarray(truth["frame_start"])
    params = np.asarray(truth["motion_parameters"]["values"])
    mats = np.asarray(truth["frame_to_reference"])
    assert np.all(params[starts < 120] == 0)
    np.testing.assert_allclose(mats[starts < 120], np.broadcast_to(np.eye(4), mats[starts < 120]
                                                                  .shape))
    trans = np.linalg.norm(params[:, :3], axis=1)
    assert 1.0 <= trans.max() <= 4.0 + 1e-9
    assert np.degrees(np.abs(params[:, 3:]).max()) <= 3.0 + 1e-9


def test_static_voxel_deep_in_region_equals_true_tac(static_study):
    """Without PSF and motion, PET voxels whose T1w neighbourhood lies inside white matter or
    the cerebellum equal that region's true TAC to float32 precision (rtol 1e-5)."""
    pet, truth, tacs, labels_img, table = _load(static_study, "01", "baseline")
    data = pet.get_fdata(dtype=np.float32)
    labels = np.asarray(labels_img.dataobj)
    matrix = (np.linalg.inv(labels_img.affine) @ np.asarray(truth["pet_to_t1w"]) @ pet.affine)
    idx = np.indices(pet.shape[:3]).reshape(3, -1)
    t1_vox = np.rint(matrix[:3, :3] @ idx + matrix[:3, 3:4]).astype(int)
    inside = np.all((t1_vox >= 1) & (t1_vox < np.array(labels.shape)[:, None] - 1), axis=0)
    eroded = {}
    for name in ("white-matter", "cerebellum"):
        index = int(table.loc[table["name"] == name, "index"].iloc[0])
        eroded[name] = ndimage.binary_erosion(labels == index, np.ones((3, 3, 3)))
    checked = 0
    for name, mask in eroded.items():
        hits = np.flatnonzero(inside)[mask[tuple(t1_vox[:, inside])]]
        assert hits.size > 0, name
        for flat in hits[:: max(1, hits.size // 5)]:
            voxel = np.unravel_index(flat, pet.shape[:3])
            np.testing.assert_allclose(data[voxel], tacs[name].to_numpy(), rtol=1e-5)
            checked += 1
    assert checked >= 10


def test_atlas_and_anatomy_derivatives(clean_study):
    """seg-sim atlas = phantom brain labels; habenula labelled on both sides beside thalamus."""
    root = clean_study / "derivatives" / "sim-anat" / "sub-01" / "anat"
    atlas = np.asarray(nib.load(root / "sub-01_seg-sim_dseg.nii.gz").dataobj)
    table = pd.read_csv(root / "sub-01_seg-sim_dseg.tsv", sep="\t")
    assert list(table.columns) == ["index", "name"]
    assert {"frontal", "parietal", "temporal", "occipital", "cingulate", "insula", "caudate",
            "putamen", "thalamus", "habenula-left", "habenula-right", "cerebellum",
            "brainstem", "white-matter", "csf"} == set(table["name"])
    phantom = np.asarray(nib.load(clean_study / truth_path("phantom_dseg", "01")).dataobj)
    brain = np.isin(phantom, table["index"])
    np.testing.assert_array_equal(atlas[brain], phantom[brain])
    assert np.all(atlas[~brain] == 0)
    mask = np.asarray(nib.load(root / "sub-01_desc-brain_mask.nii.gz").dataobj)
    np.testing.assert_array_equal(mask > 0, brain)
    index = dict(zip(table["name"], table["index"], strict=True))
    thalamus_near = ndimage.binary_dilation(atlas == index["thalamus"], iterations=2)
    for side in ("habenula-left", "habenula-right"):
        hab = atlas == index[side]
        assert 1 <= hab.sum() <= 16  # 2 mm voxels: a few voxels of a ~30 mm³ nucleus
        assert (hab & thalamus_near).any()
    gm = nib.load(root / "sub-01_label-GM_probseg.nii.gz").get_fdata()
    wm = nib.load(root / "sub-01_label-WM_probseg.nii.gz").get_fdata()
    csf = nib.load(root / "sub-01_label-CSF_probseg.nii.gz").get_fdata()
    assert (gm + wm + csf).max() <= 1.0 + 1e-5
    t1w = nib.load(clean_study / raw_path("t1w", "01")).get_fdata()
    means = {n: t1w[atlas == index[n]].mean() for n in ("white-matter", "frontal", "csf")}
    assert means["white-matter"] > means["frontal"] > means["csf"]
