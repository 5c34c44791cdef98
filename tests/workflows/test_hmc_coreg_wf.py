"""HMC and co-registration workflows end to end (nipype Linear plugin, tiny images)."""

from __future__ import annotations

import json
import os

os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "1")  # before any ITK use

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from ketpet_bids.core import coreg, motion  # noqa: E402
from ketpet_bids.core.tacs import read_matrix
from ketpet_bids.workflows.pet.coreg import init_pet_coreg_wf  # noqa: E402
from ketpet_bids.workflows.pet.hmc import init_pet_hmc_wf  # noqa: E402

SHAPE = (32, 34, 26)
AFFINE = np.array([[4.0, 0, 0, -62.0], [0, 4.0, 0, -70.0], [0, 0, 4.0, -48.0], [0, 0, 0, 1]])
STARTS = [0.0, 60.0, 120.0, 240.0, 420.0]
DURATIONS = [60.0, 60.0, 120.0, 180.0, 300.0]
# head poses (mm, rad) per frame; frames 0-1 start before 120 s
POSES = np.array([[4, 0, 0, 0, 0, 0.05], [0, 3, 0, 0.04, 0, 0], [0, 0, 0, 0, 0, 0],
                  [2, -1.5, 1, 0.02, -0.03, 0.025], [-1.5, 2, -1, -0.03, 0.02, -0.02]])
LEVELS = np.array([0.5, 0.8, 1.0, 1.1, 1.2])  # tracer kinetics: frames differ in intensity


def activity(points: np.ndarray) -> np.ndarray:
    """Smooth asymmetric phantom at RAS points (N, 3): soft head ellipsoid + four blobs."""
    r = np.sqrt(np.sum((points / np.array([50.0, 58.0, 40.0])) ** 2, axis=1))
    value = 1.0 / (1.0 + np.exp((r - 1.0) * 12.0))
    for centre, width, height in (((20, 8, 4), 8, 1.5), ((-16, 12, -8), 6, 0.9),
                                  ((4, -28, 8), 9, 2.0), ((-8, -8, 20), 5, 1.2)):
        value += height * np.exp(-0.5 * np.sum((points - centre) ** 2, axis=1) / width**2)
    return value


def image_of(affine, shape, matrix=None) -> np.ndarray:
    """image(p) = activity(matrix · p) on a grid (identity matrix when None)."""
    matrix = np.eye(4) if matrix is None else matrix
    pts = (affine[:3, :3] @ np.indices(shape).reshape(3, -1) + affine[:3, 3:]).T
    return activity(pts @ matrix[:3, :3].T + matrix[:3, 3]).reshape(shape).astype(np.float32)


def truth_matrices() -> np.ndarray:
    centre = motion.image_centre(SHAPE, AFFINE)
    return np.stack([motion.params_to_matrix(p, centre) for p in POSES])


def write_pet(path, frames=None) -> str:
    data = np.stack([level * image_of(AFFINE, SHAPE, m)
                     for level, m in zip(LEVELS, truth_matrices(), strict=True)], axis=-1)
    nib.save(nib.Nifti1Image(data if frames is None else data[..., frames], AFFINE), path)
    return str(path)


def run(workflow, tmp_path, **inputs) -> dict:
    """Run with the Linear plugin in ``tmp_path``; return what reaches the outputnode.

    nipype prunes IdentityInterface nodes from the executed graph, so the outputnode's fields
    are collected by a Merge node in a parent workflow.
    """
    from nipype.interfaces import utility as niu
    from nipype.pipeline import engine as pe

    for key, value in inputs.items():
        setattr(workflow.inputs.inputnode, key, value)
    fields = workflow.get_node("outputnode").outputs.copyable_trait_names()
    parent = pe.Workflow(name="test_wf", base_dir=str(tmp_path / "work"))
    merge = pe.Node(niu.Merge(len(fields)), name="collect")
    parent.connect([(workflow, merge, [(f"outputnode.{field}", f"in{k + 1}")
                                       for k, field in enumerate(fields)])])
    parent.config["execution"].update({"crashdump_dir": str(tmp_path),
                                       "stop_on_first_crash": True})
    graph = parent.run(plugin="Linear")
    node = next(n for n in graph.nodes() if n.name == "collect")
    return dict(zip(fields, node.result.outputs.out, strict=True))


def relative_error(est_i, est_j, true_i, true_j, mask) -> float:
    """Mean displacement (mm, over ``mask``) between M_i⁻¹M_j estimated and true: this
    frame-to-frame motion does not depend on the pose of the (averaged) reference."""
    pts = np.c_[np.argwhere(mask), np.ones(mask.sum())] @ AFFINE.T
    est = np.linalg.inv(est_i) @ est_j
    true = np.linalg.inv(true_i) @ true_j
    return float(np.linalg.norm((pts @ est.T - pts @ true.T)[:, :3], axis=1).mean())


@pytest.mark.parametrize("refine", [True, False])
def test_hmc_wf_dynamic(tmp_path, refine):
    """Frames 2-4 (start ≥ 120 s) estimated, with and without the refined reference; frames
    0-1 inherit frame 2; frame-to-frame motion within 0.3 mm mean displacement (noise-free,
    4 mm voxels; see test_motion for the tolerance); outputs have the contract shapes."""
    pet = write_pet(tmp_path / "pet.nii.gz")
    wf = init_pet_hmc_wf(start_time=120.0, seed=1, refine_reference=refine)
    assert ("refine_reference" in wf.list_node_names()) is refine
    out = run(wf, tmp_path, pet_file=pet,
              frame_start=STARTS, frame_duration=DURATIONS)
    xforms = np.load(out["xforms"])
    assert xforms.shape == (5, 4, 4)
    np.testing.assert_array_equal(xforms[0], xforms[2])
    np.testing.assert_array_equal(xforms[1], xforms[2])
    head = image_of(AFFINE, SHAPE) > 0.5
    truth = truth_matrices()
    for i, j in ((2, 3), (2, 4), (3, 4)):
        assert relative_error(xforms[i], xforms[j], truth[i], truth[j], head) < 0.3
    table = pd.read_csv(out["confounds_tsv"], sep="\t")
    assert list(table.columns) == ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z",
                                   "framewise_displacement"]
    assert len(table) == 5
    np.testing.assert_allclose(table["framewise_displacement"],
                               motion.framewise_displacement(table.iloc[:, :6].to_numpy()),
                               atol=1e-4)
    summary = json.loads(open(out["hmc_json"]).read())
    assert summary["FramesEstimated"] == 3 and summary["HMCStartTimeUsed"] == 120.0
    assert summary["MaxFramewiseDisplacement"] == pytest.approx(table.iloc[:, 6].max(), abs=1e-4)
    corrected = nib.load(out["pet_preproc"])
    assert corrected.shape == (*SHAPE, 5) and corrected.get_data_dtype() == np.float32
    np.testing.assert_allclose(corrected.affine, AFFINE)
    petref = nib.load(out["petref"]).get_fdata()
    assert petref.shape == SHAPE
    expected = motion.correct_frames(nib.load(pet).dataobj, AFFINE, xforms)
    weights = np.array(DURATIONS[2:])
    np.testing.assert_allclose(petref, np.tensordot(expected[..., 2:], weights, axes=([3], [0]))
                               / weights.sum(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", ["hmc_off", "static", "late_start"])
def test_hmc_wf_skips_cleanly(tmp_path, case):
    """--hmc-off, a 3D PET and a start time beyond the last frame run without error, with
    identity transforms, zero parameters and (when skipped) the input data as pet_preproc."""
    static = case == "static"
    pet = write_pet(tmp_path / "pet.nii.gz", frames=4 if static else None)
    wf = init_pet_hmc_wf(start_time=10000.0 if case == "late_start" else 120.0,
                         hmc_off=case == "hmc_off")
    out = run(wf, tmp_path, pet_file=pet, frame_start=STARTS[4:] if static else STARTS,
              frame_duration=DURATIONS[4:] if static else DURATIONS)
    n = 1 if static else 5
    np.testing.assert_array_equal(np.load(out["xforms"]), np.tile(np.eye(4), (n, 1, 1)))
    table = pd.read_csv(out["confounds_tsv"], sep="\t")
    assert len(table) == n and not table.to_numpy().any()
    summary = json.loads(open(out["hmc_json"]).read())
    data = nib.load(pet).get_fdata(dtype=np.float32)
    np.testing.assert_array_equal(nib.load(out["pet_preproc"]).get_fdata(dtype=np.float32), data)
    petref = nib.load(out["petref"]).get_fdata(dtype=np.float32)
    if case == "late_start":
        assert summary["FramesEstimated"] == 1 and summary["HMCStartTimeUsed"] == 420.0
        assert "no frame starts at or after" in summary["Warnings"][0]
        mean = np.tensordot(data, np.array(DURATIONS), axes=([3], [0])) / sum(DURATIONS)
        np.testing.assert_allclose(petref, mean, rtol=1e-5, atol=1e-6)
    else:
        assert summary["FramesEstimated"] == 0 and summary["HMCSkipped"]
        assert out["pet_preproc"] == pet
        np.testing.assert_allclose(petref, data if static else np.tensordot(
            data[..., 2:], np.array(DURATIONS[2:]), axes=([3], [0])) / sum(DURATIONS[2:]),
            rtol=1e-6)


def test_coreg_wf_ants_and_identity(tmp_path):
    """ANTs mode recovers a known 6 mm / 6° PET pose within 1 mm mean displacement, and its
    ITK file and RAS matrix agree; identity mode writes the identity and leaves the data
    untouched."""
    t1w_affine = np.diag([3.0, 3.0, 3.0, 1.0])
    t1w_affine[:3, 3] = [-66.0, -75.0, -51.0]
    t1w_shape = (45, 51, 35)
    truth = np.eye(4)
    truth[:3, :3] = motion.rotation_matrix(np.deg2rad([4.0, -3.0, 6.0]))
    truth[:3, 3] = [4.0, -3.5, 2.5]
    petref = tmp_path / "petref.nii.gz"
    nib.save(nib.Nifti1Image(image_of(AFFINE, SHAPE, truth), AFFINE), petref)
    t1w_data = image_of(t1w_affine, t1w_shape)
    nib.save(nib.Nifti1Image(t1w_data, t1w_affine), tmp_path / "t1w.nii.gz")
    mask = (t1w_data > 0.5).astype(np.uint8)
    nib.save(nib.Nifti1Image(mask, t1w_affine), tmp_path / "mask.nii.gz")
    inputs = {"petref": str(petref), "t1w": str(tmp_path / "t1w.nii.gz"),
              "t1w_mask": str(tmp_path / "mask.nii.gz")}

    out = run(init_pet_coreg_wf(mode="ants", seed=2), tmp_path / "ants", **inputs)
    matrix = read_matrix(out["pet_to_t1w_matrix"])
    np.testing.assert_allclose(coreg.read_itk_affine(out["pet_to_t1w_xfm"]), matrix, atol=1e-9)
    pts = np.c_[np.argwhere(mask), np.ones(mask.sum())] @ t1w_affine.T
    error = np.linalg.norm((pts @ np.linalg.inv(matrix).T - pts @ np.linalg.inv(truth).T)[:, :3],
                           axis=1).mean()
    assert error < 1.0, error
    assert nib.load(out["petref_t1w"]).shape == t1w_shape
    report = json.loads(open(out["coreg_json"]).read())
    assert report["Warnings"] == [] and report["PETBrainInsideT1wMask"] > 0.95

    nib.save(nib.Nifti1Image(image_of(AFFINE, SHAPE), AFFINE), tmp_path / "aligned_t1w.nii.gz")
    nib.save(nib.Nifti1Image((image_of(AFFINE, SHAPE) > 0.5).astype(np.uint8), AFFINE),
             tmp_path / "aligned_mask.nii.gz")
    out = run(init_pet_coreg_wf(mode="identity"), tmp_path / "identity", petref=str(petref),
              t1w=str(tmp_path / "aligned_t1w.nii.gz"),
              t1w_mask=str(tmp_path / "aligned_mask.nii.gz"))
    np.testing.assert_array_equal(read_matrix(out["pet_to_t1w_matrix"]), np.eye(4))
    np.testing.assert_allclose(coreg.read_itk_affine(out["pet_to_t1w_xfm"]), np.eye(4),
                               atol=1e-15)
    np.testing.assert_array_equal(nib.load(out["petref_t1w"]).get_fdata(dtype=np.float32),
                                  nib.load(petref).get_fdata(dtype=np.float32))
