"""PVC through the pipeline's interfaces on simulator data: PSF known, noise-free, no motion.

``ketpet_bids.sim`` renders each PET voxel as the mean of the activity blurred on the T1w
grid (tiny: 2 mm T1w, 4 mm PET, 6 mm FWHM, so the PSF is only 1.5 PET voxels wide) and
leaves skull and scalp unlabelled in the ``seg-sim`` atlas, where they fall into the
background shells. ``PreparePVC``/``ApplyPVC`` run on the raw 4D PET (14 frames) with the
true PET→T1w pose, so what is measured is the correction alone (registration and motion
correction are tested elsewhere).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from ketpet_bids.interfaces.pvc import ApplyPVC, PreparePVC, load_setup

FWHM = 6.0


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from ketpet_bids.sim import simulate_study

    base = tmp_path_factory.mktemp("pvcsim")
    sim = simulate_study(base / "bids", n_patients=0, n_controls=1, size="tiny", seed=5,
                         noise=0.0, psf_fwhm_mm=FWHM, max_motion_mm=0.0)
    truth_dir = sim / "sourcedata" / "truth" / "sub-01" / "ses-baseline"
    src = "sub-01_ses-baseline_trc-K2"
    pose = np.array(json.loads((truth_dir / f"{src}_desc-true_pet.json").read_text())
                    ["pet_to_t1w"])
    np.savetxt(base / "pose.txt", pose)
    anat = sim / "derivatives" / "sim-anat" / "sub-01" / "anat"
    pet = sim / "sub-01" / "ses-baseline" / "pet" / f"{src}_pet.nii.gz"
    timing = json.loads(pet.with_name(f"{src}_pet.json").read_text())
    cwd = Path.cwd()
    try:
        os.chdir(base)
        setup_file = PreparePVC(
            pet_file=str(pet), pet_to_t1w_matrix=str(base / "pose.txt"),
            dseg=str(anat / "sub-01_seg-sim_dseg.nii.gz"),
            dseg_tsv=str(anat / "sub-01_seg-sim_dseg.tsv"),
            brain_mask=str(anat / "sub-01_desc-brain_mask.nii.gz"), methods=["gtm", "rbv"],
            psf_fwhm_mm=[FWHM]).run().outputs.setup_file
        outputs = {}
        for method in ("gtm", "rbv"):
            (base / method).mkdir()
            os.chdir(base / method)
            outputs[method] = ApplyPVC(
                setup_file=setup_file, pet_file=str(pet), method=method,
                frame_start=timing["FrameTimesStart"],
                frame_duration=timing["FrameDuration"]).run().outputs
    finally:
        os.chdir(cwd)
    return {"pet": pet, "setup": load_setup(Path(setup_file))[0], "out": outputs,
            "truth": pd.read_csv(truth_dir / f"{src}_desc-true_tacs.tsv", sep="\t"),
            "ref": pd.read_csv(truth_dir / f"{src}_label-wholebrain_desc-true_tacs.tsv",
                               sep="\t")["wholebrain"].to_numpy(),
            "volumes": pd.read_csv(truth_dir / f"{src}_desc-true_kinpar.tsv", sep="\t")
            .set_index("region")["volume_mm3"]}


def test_gtm_recovers_regional_means(run):
    """Every region ≥ 1 cm³ within 1 % of truth in all 14 frames (measured ≤ 0.25 %), the
    64 mm³ habenula within 15 % (measured ≤ 1 %), where uncorrected fractional means are
    biased by more than 30 % (cortex) and the habenula by more than 30 % in every frame.

    CSF (true activity 0.4–6 % of cortex, next to the unlabelled skull) is held to 1 % of the
    whole-brain reference instead: its residual (measured +3…+21 % of its own tiny value,
    ≤ 0.3 % of the reference) comes from skull and scalp not being uniform within the
    distance shells of the background model; with skull and scalp labelled, every region,
    CSF included, is exact to 1e-4 (the spread functions reproduce the simulator's
    rendering).
    """
    setup, truth = run["setup"], run["truth"]
    tacs = pd.read_csv(run["out"]["gtm"].tacs_tsv, sep="\t")
    frames = np.asarray(nib.load(run["pet"]).dataobj, dtype=np.float32)
    names = setup.regions.names
    uncorrected = np.array([setup.regions.means(frames[..., f])
                            for f in range(frames.shape[-1])])
    large = [r for r in tacs.columns[2:] if run["volumes"][r] >= 1000 and r != "csf"]
    assert len(large) == 12
    for region in large:
        np.testing.assert_allclose(tacs[region], truth[region], rtol=0.01, err_msg=region)
    bias = [np.abs(uncorrected[:, names.index(r)] / truth[r] - 1).max() for r in large]
    assert max(bias) > 0.3
    for side in ("habenula-left", "habenula-right"):
        np.testing.assert_allclose(tacs[side], truth[side], rtol=0.15, err_msg=side)
        assert np.all(uncorrected[:, names.index(side)] / truth[side] < 0.7)
    assert np.all(np.abs(tacs["csf"] - truth["csf"]) <= 0.01 * run["ref"])


def test_rbv_voxels_deep_in_wide_regions(run):
    """RBV voxel values within 5 % of truth in every PET voxel lying wholly inside a region
    and at least one FWHM from its edge (regions ≥ 2 × FWHM wide: cerebellum 33, brainstem
    29, white matter 7985 such voxels), in every frame. Measured ≤ 0.03 %, so 0.5 % is
    asserted (the model is exact there up to the background shells, far away); uncorrected
    voxels so deep err by only up to 1.9 %."""
    setup, truth = run["setup"], run["truth"]
    regions = setup.regions
    corrected = np.asarray(nib.load(run["out"]["rbv"].pvc_pet).dataobj, dtype=np.float32)
    observed = np.asarray(nib.load(run["pet"]).dataobj, dtype=np.float32)
    voxel = np.asarray(setup.psf.voxel_mm)
    checked, worst, worst_raw = [], 0.0, 0.0
    for k, name in enumerate(regions.names):
        if name not in truth or name == "csf":  # near-zero activity: see the GTM test
            continue
        pure = (regions.fractions[[k]].toarray() >= 0.999).reshape(regions.pet_shape)
        deep = ndimage.distance_transform_edt(pure, sampling=voxel) >= FWHM
        if not deep.any():
            continue
        checked.append(name)
        true = truth[name].to_numpy()
        worst = max(worst, np.abs(corrected[deep] / true - 1).max())
        worst_raw = max(worst_raw, np.abs(observed[deep] / true - 1).max())
    assert checked == ["cerebellum", "brainstem", "white-matter"]
    assert worst <= 0.005 and worst_raw > 0.01
