"""The anatomy and TAC workflows run end to end (Linear plugin) on tiny phantoms."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from ketpet_bids.bids.anat_derivatives import find_anat_derivatives
from ketpet_bids.workflows.anat import init_anat_wf
from ketpet_bids.workflows.pet.tacs import init_pet_tacs_wf

T1W_AFFINE = np.array([[1.0, 0, 0, -12], [0, 1, 0, -12], [0, 0, 1, -12], [0, 0, 0, 1]])
PET_AFFINE = np.array([[2.0, 0, 0, -11.5], [0, 2, 0, -11.5], [0, 0, 2, -11.5], [0, 0, 0, 1]])
TABLE = {1: "Cortex", 2: "Cerebral-White-Matter", 3: "CSF"}
ACTIVITY = {0: [0.0, 0.0], 1: [200.0, 600.0], 2: [100.0, 150.0], 3: [30.0, 10.0]}


def _save(path: Path, data: np.ndarray, affine: np.ndarray = T1W_AFFINE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def _labels() -> np.ndarray:
    """24³ at 1 mm; boxes on 2 mm blocks: 1 = 8×8×8, 2 = 8×8×6, 3 = 4×6×8 voxels."""
    labels = np.zeros((24, 24, 24), np.int16)
    labels[4:12, 4:12, 4:12] = 1
    labels[12:20, 4:12, 6:12] = 2
    labels[4:8, 12:18, 4:12] = 3
    return labels


def _run(workflow, base: Path) -> SimpleNamespace:
    """Run ``workflow`` with the Linear plugin; return its outputnode's values.

    nipype drops identity nodes from the executed graph, so the outputs are collected by a
    Merge node connected to every outputnode field (as the parent workflow would be).
    """
    fields = workflow.get_node("outputnode").outputs.copyable_trait_names()
    parent = pe.Workflow(name="parent", base_dir=str(base))
    parent.config["execution"]["crashdump_dir"] = str(base)
    collect = pe.Node(niu.Merge(len(fields), no_flatten=True), name="collect")
    parent.connect([(workflow, collect, [(f"outputnode.{f}", f"in{i + 1}")
                                         for i, f in enumerate(fields)])])
    graph = parent.run(plugin="Linear")
    (node,) = [n for n in graph.nodes() if n.name == "collect"]
    return SimpleNamespace(**dict(zip(fields, node.result.outputs.out, strict=True)))


def test_anat_wf_with_derivatives_and_atlas(tmp_path):
    anat = tmp_path / "deriv" / "sub-01" / "anat"
    labels = _labels()
    _save(anat / "sub-01_desc-preproc_T1w.nii.gz", labels.astype(np.float32))
    _save(anat / "sub-01_desc-brain_mask.nii.gz", (labels > 0).astype(np.uint8))
    _save(anat / "sub-01_seg-own_dseg.nii.gz", labels)
    pd.DataFrame({"index": list(TABLE), "name": list(TABLE.values())}).to_csv(
        anat / "sub-01_seg-own_dseg.tsv", sep="\t", index=False)
    probsegs = [_save(anat / f"sub-01_label-{t}_probseg.nii.gz",
                      (labels == i).astype(np.float32)) for i, t in ((1, "GM"), (2, "WM"),
                                                                       (3, "CSF"))]
    derivatives = find_anat_derivatives(tmp_path / "deriv", "01")
    out = _run(init_anat_wf(derivatives=derivatives, atlases=derivatives.segs), tmp_path)
    assert out.atlas_names == ["own"] and out.probsegs == [str(p) for p in probsegs]
    assert out.t1w_preproc == str(derivatives.t1w_preproc)
    morph = pd.read_csv(out.morph_tsvs[0], sep="\t")
    assert morph["volume_mm3"].tolist() == [512.0, 384.0, 192.0]     # exact voxel counts


def test_anat_wf_computes_mask_tissues_and_fallback_atlas(tmp_path):
    """No derivatives: N4 + mask on a biased three-tissue sphere (WM core, GM shell, CSF
    ventricle), Atropos tissue classes; the 'brain' atlas is the mask minus CSF."""
    ijk = np.indices((40, 40, 36)).astype(float)
    radius = np.sqrt(((ijk - np.array([20, 20, 18])[:, None, None, None]) ** 2).sum(0))
    truth = radius <= 13
    gm, csf = truth & (radius > 10), radius <= 4
    t1w = np.select([csf, gm, truth], [20.0, 60.0, 100.0], 0.0) * np.exp(
        0.3 * (ijk[0] - 20) / 20)
    t1w += np.random.default_rng(0).normal(0, 2, t1w.shape)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    workflow = init_anat_wf(derivatives=None, atlases={})
    workflow.inputs.inputnode.t1w = str(_save(tmp_path / "t1w.nii.gz",
                                              t1w.astype(np.float32), affine))
    out = _run(workflow, tmp_path)
    mask = np.asarray(nib.load(out.brain_mask).dataobj) > 0
    dice = 2 * (mask & truth).sum() / (mask.sum() + truth.sum())
    assert dice >= 0.95                      # measured 0.998 on this phantom
    gm_found = np.asarray(nib.load(out.probsegs[0]).dataobj) > 0.5
    assert 2 * (gm_found & gm).sum() / (gm_found.sum() + gm.sum()) >= 0.85
    assert out.atlas_names == ["brain"]
    morph = pd.read_csv(out.morph_tsvs[0], sep="\t")
    assert morph["name"].tolist() == ["wholebrain"]
    csf_found = np.asarray(nib.load(out.probsegs[2]).dataobj) > 0.5
    assert morph["volume_mm3"].iloc[0] == pytest.approx((mask & ~csf_found).sum() * 8.0)


@pytest.mark.parametrize("ref_region, expected_labels", [("wholebrain", [1, 2]),
                                                          ("Cortex+CSF", [1, 3])])
def test_pet_tacs_wf_identity_pose(tmp_path, ref_region, expected_labels):
    """Aligned boxes, identity pose, no PSF: regional and reference TACs are exact."""
    labels = _labels()
    fine = np.stack([np.vectorize(lambda k, f=f: ACTIVITY[k][f])(labels) for f in (0, 1)], -1)
    pet = fine.reshape(12, 2, 12, 2, 12, 2, 2).mean(axis=(1, 3, 5)).astype(np.float32)
    np.savetxt(tmp_path / "pose.txt", np.eye(4))
    _save(tmp_path / "dseg.tsv.nii.gz", labels)
    pd.DataFrame({"index": list(TABLE), "name": list(TABLE.values())}).to_csv(
        tmp_path / "dseg.tsv", sep="\t", index=False)
    workflow = init_pet_tacs_wf(atlas_name="own", ref_region=ref_region)
    inputs = dict(
        pet_file=str(_save(tmp_path / "pet.nii.gz", pet, PET_AFFINE)),
        frame_start=[0.0, 60.0], frame_duration=[60.0, 120.0],
        pet_to_t1w_matrix=str(tmp_path / "pose.txt"),
        dseg=str(tmp_path / "dseg.tsv.nii.gz"), dseg_tsv=str(tmp_path / "dseg.tsv"),
        brain_mask=str(_save(tmp_path / "mask.nii.gz", np.ones_like(labels, np.uint8))))
    for key, value in inputs.items():
        setattr(workflow.inputs.inputnode, key, value)
    out = _run(workflow, tmp_path)
    tacs = pd.read_csv(out.tacs_tsv, sep="\t")
    assert list(tacs.columns) == ["frame_start", "frame_end", *TABLE.values()]
    np.testing.assert_allclose(tacs["frame_end"], [60.0, 180.0])
    for k, name in TABLE.items():
        np.testing.assert_allclose(tacs[name], ACTIVITY[k], rtol=1e-5)   # TSV keeps 6 digits
    volumes = {k: np.count_nonzero(labels == k) for k in expected_labels}
    truth = sum(v * np.array(ACTIVITY[k]) for k, v in volumes.items()) / sum(volumes.values())
    ref = pd.read_csv(out.ref_tacs_tsv, sep="\t")
    assert list(ref.columns) == ["frame_start", "frame_end", ref_region]
    np.testing.assert_allclose(ref[ref_region], truth, rtol=1e-5)
    ref_mask = np.asarray(nib.load(out.ref_mask).dataobj) > 0
    assert np.array_equal(ref_mask, np.isin(labels, expected_labels))
    info = json.loads(Path(out.tacs_json).read_text())
    assert info["Regions"]["Cortex"]["PETVolumeMM3"] == pytest.approx(512.0)
    assert info["Regions"]["Cortex"]["PETVoxels"] == 64
    assert info["ReferenceRegion"]["Regions"] == [TABLE[k] for k in expected_labels]


def test_pet_tacs_wf_unmix_mixed_voxels(tmp_path):
    """Region edges off the 2 mm PET blocks and a warm background: with ``method="unmix"``
    the regional TACs and the reference (volume-weighted over its regions) are exact
    (identity pose: PET voxels are exact 2×2×2 means of the 1 mm activity); the
    fraction-weighted means of the same data are biased by > 5%."""
    labels = np.zeros((24, 24, 24), np.int16)
    labels[3:12, 5:12, 4:11] = 1
    labels[12:19, 5:12, 5:12] = 2
    labels[3:8, 12:17, 5:12] = 3
    activity = {**ACTIVITY, 0: [15.0, 40.0]}
    fine = np.stack([np.vectorize(lambda k, f=f: activity[k][f])(labels) for f in (0, 1)], -1)
    pet = fine.reshape(12, 2, 12, 2, 12, 2, 2).mean(axis=(1, 3, 5)).astype(np.float32)
    np.savetxt(tmp_path / "pose.txt", np.eye(4))
    _save(tmp_path / "dseg.nii.gz", labels)
    pd.DataFrame({"index": list(TABLE), "name": list(TABLE.values())}).to_csv(
        tmp_path / "dseg.tsv", sep="\t", index=False)
    inputs = dict(
        pet_file=str(_save(tmp_path / "pet.nii.gz", pet, PET_AFFINE)),
        frame_start=[0.0, 60.0], frame_duration=[60.0, 120.0],
        pet_to_t1w_matrix=str(tmp_path / "pose.txt"),
        dseg=str(tmp_path / "dseg.nii.gz"), dseg_tsv=str(tmp_path / "dseg.tsv"),
        brain_mask=str(_save(tmp_path / "mask.nii.gz", np.ones_like(labels, np.uint8))))
    results = {}
    for method in ("unmix", "weighted"):
        workflow = init_pet_tacs_wf(atlas_name="own", method=method, name=f"tacs_{method}")
        for key, value in inputs.items():
            setattr(workflow.inputs.inputnode, key, value)
        results[method] = _run(workflow, tmp_path / method)
    tacs = {m: pd.read_csv(r.tacs_tsv, sep="\t") for m, r in results.items()}
    for k, name in TABLE.items():
        np.testing.assert_allclose(tacs["unmix"][name], ACTIVITY[k], rtol=1e-5)  # 6 digits
    bias = max(np.max(np.abs(tacs["weighted"][n] / ACTIVITY[k] - 1)) for k, n in TABLE.items())
    assert bias > 0.05
    volumes = {k: np.count_nonzero(labels == k) for k in (1, 2)}    # wholebrain = 1 + 2
    truth = sum(v * np.array(ACTIVITY[k]) for k, v in volumes.items()) / sum(volumes.values())
    ref = pd.read_csv(results["unmix"].ref_tacs_tsv, sep="\t")
    np.testing.assert_allclose(ref["wholebrain"], truth, rtol=1e-5)
    assert json.loads(Path(results["unmix"].tacs_json).read_text())["Method"] == "unmix"
