"""The kinetics workflow end to end on a tiny synthetic run with a known answer.

Every PET voxel's TAC is ``s(p) × reference TAC`` with ``s`` linear in PET-world mm, so the
SUVR map in PET space is exactly ``s`` and, in T1w space, ``s(B⁻¹x)`` (trilinear interpolation
is exact for linear fields). Regions are given the TACs ``k × reference`` → SUVR = k.
Tolerances: float32 maps of values ≈ 1-3 → 1e-5 absolute; the TSV stores 6 significant digits
→ 1e-5 relative.
"""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from ketpet_bids.workflows.pet.kinetics import init_pet_kinetics_wf

STARTS = np.array([0.0, 600, 1200, 1800, 2400, 3000])
DURATIONS = np.full(6, 600.0)
REFERENCE = np.array([500.0, 900, 1000, 950, 900, 850])
PET_AFFINE = np.array([[3.0, 0, 0, -12], [0, 3.0, 0, -12], [0, 0, 3.0, -9], [0, 0, 0, 1]])
T1W_AFFINE = np.array([[1.5, 0, 0, -8], [0, 1.5, 0, -8], [0, 0, 1.5, -6], [0, 0, 0, 1]])
ANGLE = np.deg2rad(5.0)
B = np.array([[np.cos(ANGLE), -np.sin(ANGLE), 0, 1.0], [np.sin(ANGLE), np.cos(ANGLE), 0, -0.5],
              [0, 0, 1, 0.25], [0, 0, 0, 1]])  # PET world → T1w world: 5° about z + shift
GRADIENT, OFFSET = np.array([0.02, 0.01, -0.03]), 2.0


def _grid(affine, shape):
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    return ijk @ affine[:3, :3].T + affine[:3, 3]


def _write_inputs(tmp_path):
    pet_shape = (9, 9, 7)
    scale = _grid(PET_AFFINE, pet_shape) @ GRADIENT + OFFSET
    pet = (scale[..., None] * REFERENCE).astype(np.float32)
    nib.Nifti1Image(pet, PET_AFFINE).to_filename(tmp_path / "pet.nii.gz")
    nib.Nifti1Image(np.zeros((12, 12, 9), np.float32), T1W_AFFINE).to_filename(
        tmp_path / "t1w.nii.gz")
    np.savetxt(tmp_path / "xfm.txt", B)
    times = {"frame_start": STARTS, "frame_end": STARTS + DURATIONS}
    pd.DataFrame({**times, "cortex": 1.3 * REFERENCE, "habenula": 0.8 * REFERENCE}).to_csv(
        tmp_path / "tacs.tsv", sep="\t", index=False)
    pd.DataFrame({**times, "wholebrain": REFERENCE}).to_csv(tmp_path / "ref.tsv", sep="\t",
                                                           index=False)


def _collect(**outputs):
    return outputs


def _run(tmp_path, **kwargs):
    _write_inputs(tmp_path)
    kin = init_pet_kinetics_wf(atlas_name="sim", suvr_window=(1500.0, 3300.0), **kwargs)
    inputs = kin.inputs.inputnode
    inputs.tacs_tsv, inputs.ref_tacs_tsv = str(tmp_path / "tacs.tsv"), str(tmp_path / "ref.tsv")
    inputs.pet_file, inputs.t1w_ref = str(tmp_path / "pet.nii.gz"), str(tmp_path / "t1w.nii.gz")
    inputs.pet_to_t1w_matrix = str(tmp_path / "xfm.txt")
    inputs.frame_start, inputs.frame_duration = STARTS.tolist(), DURATIONS.tolist()
    inputs.injected_radioactivity_bq, inputs.body_weight_kg = 370e6, 70.0
    fields = ["kinpar_files", "kinpar_entities", "kinpar_jsons", "mimap_files", "mimap_entities"]
    collect = pe.Node(niu.Function(input_names=fields, output_names=["outputs"],
                                   function=_collect), name="collect")
    wrapper = pe.Workflow(name="wrapper", base_dir=str(tmp_path / "work"))
    wrapper.connect([(kin, collect, [(f"outputnode.{f}", f) for f in fields])])
    graph = wrapper.run(plugin="Linear")
    node = next(n for n in graph.nodes() if n.name == "collect")
    return node.result.outputs.outputs


def test_kinetics_workflow_regional_and_t1w_maps(tmp_path):
    out = _run(tmp_path, models=("suvr", "suv"))
    assert out["kinpar_entities"] == [{"atlas": "sim", "model": "suvr"},
                                      {"atlas": "sim", "model": "suv"}]
    suvr = pd.read_csv(out["kinpar_files"][0], sep="\t", na_values="n/a")
    assert list(suvr.columns) == ["region", "SUVR", "r2", "aic", "n_frames_used"]
    np.testing.assert_allclose(suvr["SUVR"], [1.3, 0.8], rtol=1e-5)
    # Window 1500-3300 s: half of frame 1200-1800, frames 1800-3000, half of 3000-3600.
    assert suvr["n_frames_used"].tolist() == [4, 4]
    mean_ref = (0.5 * 1000 + 950 + 900 + 0.5 * 850) / 3.0
    suv = pd.read_csv(out["kinpar_files"][1], sep="\t")
    np.testing.assert_allclose(suv["SUV"], np.array([1.3, 0.8]) * mean_ref * 70e3 / 370e6,
                               rtol=1e-5)
    settings = json.loads(open(out["kinpar_jsons"][0]).read())
    assert (settings["WindowStart"], settings["ReferenceRegion"]) == (1500.0, "wholebrain")
    assert out["mimap_entities"] == [{"space": "T1w", "model": "suvr", "param": "SUVR"},
                                     {"space": "T1w", "model": "suv", "param": "SUV"}]
    image = nib.load(out["mimap_files"][0])
    np.testing.assert_allclose(image.affine, T1W_AFFINE)
    data = np.asanyarray(image.dataobj)
    assert data.dtype == np.float32
    x = _grid(T1W_AFFINE, data.shape)
    inv = np.linalg.inv(B)
    p = x @ inv[:3, :3].T + inv[:3, 3]  # PET-world point B⁻¹x of each T1w voxel
    ijk = (p - PET_AFFINE[:3, 3]) / 3.0
    inside = np.all((ijk >= 0) & (ijk <= np.array([8, 8, 6])), axis=-1)
    assert inside.sum() > 500
    np.testing.assert_allclose(data[inside], (p @ GRADIENT + OFFSET)[inside], atol=1e-5)


def test_kinetics_workflow_without_maps(tmp_path):
    out = _run(tmp_path, models=("suvr",), voxelwise_t1w=False)
    assert out["mimap_files"] == [] and out["mimap_entities"] == []
    assert len(out["kinpar_files"]) == 1


def test_unknown_model_fails_at_build():
    from ketpet_bids.errors import InputError

    with pytest.raises(InputError, match="choose from: suv, suvr"):
        init_pet_kinetics_wf(models=("logan2",), atlas_name="sim")
