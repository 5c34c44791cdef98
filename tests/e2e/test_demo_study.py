"""End to end: the demo on a tiny simulated study, checked against the simulator's truth.

One module-scoped run of ``ketpet-bids-demo`` (participant + group level) on a noise-free,
PSF-free study with head motion and a PET pose unlike the T1w's, so that every difference from
the truth comes from the pipeline: motion correction, co-registration, resampling, regional
averaging and the model.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from ketpet_bids.bids.naming import output_path
from ketpet_bids.cli.demo import demo_templates, participant_options
from ketpet_bids.cli.demo import main as demo_main
from ketpet_bids.cli.run import main as ketpet_main

pytestmark = pytest.mark.e2e
GOLDEN = Path(__file__).with_name("golden_outputs.txt")
STATS_COLUMNS = ["analysis", "measure", "region", "contrast", "n", "estimate", "ci_low",
                 "ci_high", "statistic", "p", "q_fdr", "effect_size"]


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    from ketpet_bids.sim import simulate_study

    simulate_study(out / "bids", n_patients=2, n_controls=2, size="tiny", seed=11,
                   preset="k2-ketamine", noise=0.0, psf_fwhm_mm=0.0)
    before = _snapshot(out / "bids")
    code = demo_main([str(out), "--nprocs", "2", "--noise", "0", "--psf-fwhm", "0"])
    return {"out": out, "code": code, "bids_before": before}


def _outputs(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_demo_succeeds_and_leaves_the_input_untouched(demo):
    assert demo["code"] == 0
    assert _snapshot(demo["out"] / "bids") == demo["bids_before"]


def test_outputs_match_the_golden_list(demo):
    written = _outputs(demo["out"] / "derivatives")
    golden = GOLDEN.read_text().split()
    assert written == golden


def test_dataset_description_is_a_derivative(demo):
    desc = json.loads((demo["out"] / "derivatives" / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative"
    assert desc["GeneratedBy"][0]["Name"] == "ketpet_bids"
    assert desc["SourceDatasets"][0]["URL"].endswith("/bids")


def _truth(out: Path, subject: str, session: str, name: str) -> pd.DataFrame:
    path = (out / "bids" / "sourcedata" / "truth" / f"sub-{subject}" / f"ses-{session}"
            / f"sub-{subject}_ses-{session}_trc-K2_{name}.tsv")
    return pd.read_csv(path, sep="\t")


def _window_mean(tacs: pd.DataFrame, column: str, window=(1800.0, 3000.0)) -> float:
    start = tacs["frame_start"].to_numpy()
    end = tacs["frame_end"].to_numpy()
    overlap = np.clip(np.minimum(end, window[1]) - np.maximum(start, window[0]), 0, None)
    return float(np.sum(overlap * tacs[column].to_numpy()) / overlap.sum())


def _reference_ratio(out: Path, sub: str, session: str) -> float:
    """Measured / true whole-brain reference activity over the SUVR window (its PVE bias)."""
    src = f"sub-{sub}_ses-{session}_trc-K2"
    measured = pd.read_csv(out / "derivatives" / output_path(
        "ref_tacs", subject=sub, session=session, src=src, ref="wholebrain"), sep="\t")
    true = _truth(out, sub, session, "label-wholebrain_desc-true_tacs")
    return _window_mean(measured, measured.columns[2]) / _window_mean(true, true.columns[2])


@pytest.mark.parametrize("session", ["baseline", "post"])
def test_voxelwise_suvr_inside_regions_matches_truth(demo, session):
    """Deep inside large regions (≥ 8 mm from any edge, i.e. beyond two 4 mm PET voxels) there is
    no partial-volume mixing, so SUVR × (measured / true reference) must equal the true SUVR.
    Tolerance 2%: the registration error measured here is ~0.1–0.4 mm and trilinear resampling
    of a noise-free image is exact in region interiors, so what is left is interpolation at the
    eroded edge and float32 rounding."""
    out, sub = demo["out"], "01"
    der = out / "derivatives"
    src = f"sub-{sub}_ses-{session}_trc-K2"
    suvr_map = nib.load(der / output_path("mimap", subject=sub, session=session, src=src,
                                          space="T1w", model="suvr", param="SUVR"))
    labels_img = nib.load(der / output_path("dseg", subject=sub, atlas="sim"))
    names = pd.read_csv(der / output_path("dseg_tsv", subject=sub, atlas="sim"), sep="\t")
    true = _truth(out, sub, session, "desc-true_kinpar").set_index("region")["SUVR"]
    ref_ratio = _reference_ratio(out, sub, session)
    labels = np.asarray(labels_img.dataobj)
    values = np.asarray(suvr_map.dataobj)
    erosion = int(round(8.0 / labels_img.header.get_zooms()[0]))
    checked = 0
    for index, name in zip(names["index"], names["name"], strict=True):
        core = ndimage.binary_erosion(labels == index, iterations=erosion)
        if core.sum() < 50:
            continue
        estimate = float(np.median(values[core])) * ref_ratio
        assert estimate == pytest.approx(true[name], rel=0.02), name
        checked += 1
    assert checked >= 3


def test_template_space_suvr_inside_large_regions_matches_truth(demo):
    """The MNI152NLin2009cAsym SUVR map (T1w map through the SyN transform onto the 2 mm
    template's res-02 grid, here 4 mm) equals truth deep inside the template's white matter
    and cerebellar cortex (aseg labels of the demo's phantom template, ≥ 2 map voxels from any
    edge), after the same reference correction as in T1w space. Tolerance 3%: the T1w-space
    tolerance (2%) plus one more trilinear resampling through a nonlinear warp."""
    out, sub, session = demo["out"], "01", "baseline"
    der = out / "derivatives"
    src = f"sub-{sub}_ses-{session}_trc-K2"
    suvr_map = nib.load(der / output_path("mimap", subject=sub, session=session, src=src,
                                          space="MNI152NLin2009cAsym", model="suvr",
                                          param="SUVR"))
    aseg = nib.load(next((out / "templateflow").rglob("*_res-01_seg-aseg_dseg.nii.gz")))
    ijk = np.indices(suvr_map.shape[:3]).reshape(3, -1)
    to_aseg = np.linalg.inv(aseg.affine) @ suvr_map.affine
    at = to_aseg[:3, :3] @ ijk + to_aseg[:3, 3:]
    labels = ndimage.map_coordinates(np.asarray(aseg.dataobj), at, order=0,
                                     cval=0).reshape(suvr_map.shape[:3])
    true = _truth(out, sub, session, "desc-true_kinpar").set_index("region")["SUVR"]
    ref_ratio = _reference_ratio(out, sub, session)
    values = np.asarray(suvr_map.dataobj)
    for name, aseg_labels in (("white-matter", (2, 41)), ("cerebellum", (8, 47))):
        core = ndimage.binary_erosion(np.isin(labels, aseg_labels), iterations=2)
        assert core.sum() >= 20, name
        estimate = float(np.nanmedian(values[core])) * ref_ratio
        assert estimate == pytest.approx(true[name], rel=0.03), name


def test_default_atlas_in_t1w_space_overlaps_truth(demo):
    """The default atlas reaches each subject's T1w through SyN: every region ≥ 1 cm³ that
    exists in the phantom has Dice ≥ 0.80 with truth and each habenula's centre is within
    2 mm (issue 4; the aseg stand-ins for nuclei the phantom lacks are left out, see
    tests/workflows/test_anat_template_truth.py)."""
    from ketpet_bids.sim.templateflow import STAND_INS, default_atlas_truth

    der = demo["out"] / "derivatives"
    for sub in ("01", "03"):
        img = nib.load(der / output_path("dseg", subject=sub, atlas="default"))
        labels = np.asarray(img.dataobj).astype(int)
        table = pd.read_csv(der / output_path("dseg_tsv", subject=sub, atlas="default"),
                            sep="\t").set_index("name")["index"]
        voxel = float(img.header.get_zooms()[0])
        truth, truth_table = default_atlas_truth(labels.shape, voxel)
        stand_ins = {f"{n}-{side}" for n in STAND_INS for side in ("left", "right")}
        for _, row in truth_table[~truth_table["name"].isin(stand_ins)].iterrows():
            true_mask, found = truth == row["index"], labels == table[row["name"]]
            if true_mask.sum() * voxel**3 >= 1000:
                dice = 2 * (true_mask & found).sum() / (true_mask.sum() + found.sum())
                assert dice >= 0.80, (sub, row["name"])
            if row["name"].startswith("habenula"):
                shift = (np.argwhere(true_mask).mean(0) - np.argwhere(found).mean(0)) * voxel
                assert np.linalg.norm(shift) <= 2.0, (sub, row["name"])


@pytest.mark.parametrize("session", ["baseline", "post"])
def test_voxelwise_logan_vt_inside_regions_matches_logan_on_the_true_curves(demo, session):
    """Preset k2 adds Logan VT with the arterial input when blood data exist.

    Logan itself underestimates the true VT = K1/k2·(1 + k3/k4) of these slow 2TCM curves on a
    60-min scan (the plot is not yet linear; measured −6% to −9% here, a model property, not a
    pipeline error). So the reference is Logan applied to the true regional TACs with the
    true, noise-free blood samples and the t* the pipeline chose; deep inside large regions the
    VT map must match it within 2% (registration and trilinear resampling of a noise-free
    image); and the model bias against truth must stay within the measured 0 to −12%."""
    from ketpet_bids.core.blood import plasma_input
    from ketpet_bids.core.kinetics.base import Frames, ModelInputs
    from ketpet_bids.core.kinetics.registry import get_model

    out, sub = demo["out"], "01"
    der = out / "derivatives"
    src = f"sub-{sub}_ses-{session}_trc-K2"
    vt_map = nib.load(der / output_path("mimap", subject=sub, session=session, src=src,
                                        space="T1w", model="logan", param="VT"))
    sidecar = json.loads((der / output_path("kinpar", subject=sub, session=session, src=src,
                                            atlas="sim", model="logan")
                          ).with_suffix(".json").read_text())
    labels_img = nib.load(der / output_path("dseg", subject=sub, atlas="sim"))
    names = pd.read_csv(der / output_path("dseg_tsv", subject=sub, atlas="sim"), sep="\t")
    kinpar = _truth(out, sub, session, "desc-true_kinpar").set_index("region")
    tacs = _truth(out, sub, session, "desc-true_tacs")
    # The study is noise-free, so the recorded samples are the true ones.
    blood = out / "bids" / f"sub-{sub}" / f"ses-{session}" / "pet" / f"{src}_recording-manual_blood.tsv"
    frames = Frames.from_lists(tacs["frame_start"], tacs["frame_end"] - tacs["frame_start"])
    plasma, _ = plasma_input([blood], scan_end_s=float(tacs["frame_end"].iloc[-1]),
                             half_life_s=sidecar["HalfLife"])
    regions = [n for n in names["name"] if n in tacs.columns]
    model = get_model("logan", input_kind="plasma")
    expected = model.fit_regional(tacs[regions].to_numpy().T, frames,
                                  ModelInputs(plasma=plasma, tstar=sidecar["TStar"]))["VT"]
    expected = dict(zip(regions, expected, strict=True))
    labels = np.asarray(labels_img.dataobj)
    values = np.asarray(vt_map.dataobj)
    erosion = int(round(8.0 / labels_img.header.get_zooms()[0]))
    checked = 0
    for index, name in zip(names["index"], names["name"], strict=True):
        core = ndimage.binary_erosion(labels == index, iterations=erosion)
        if core.sum() < 50 or kinpar.loc[name, "VT"] <= 0.5:
            continue
        assert float(np.median(values[core])) == pytest.approx(expected[name], rel=0.02), name
        assert -0.12 < expected[name] / kinpar.loc[name, "VT"] - 1 <= 0.0, name
        checked += 1
    assert checked >= 3


def test_reference_tac_matches_truth_within_partial_volume_bias(demo):
    """The whole-brain reference mixes in CSF and skull at its 4 mm PET-voxel border; we measured
    a −4 to −6% bias in late frames on this phantom, so ±8% bounds it with room for motion."""
    out = demo["out"]
    src = "sub-01_ses-baseline_trc-K2"
    measured = pd.read_csv(out / "derivatives" / output_path(
        "ref_tacs", subject="01", session="baseline", src=src, ref="wholebrain"), sep="\t")
    true = _truth(out, "01", "baseline", "label-wholebrain_desc-true_tacs")
    late = measured["frame_start"] >= 600
    ratio = measured.loc[late].iloc[:, 2].to_numpy() / true.loc[late].iloc[:, 2].to_numpy()
    assert np.all(np.abs(ratio - 1) < 0.08), ratio


def test_confounds_follow_the_contract(demo):
    path = demo["out"] / "derivatives" / output_path(
        "confounds", subject="01", session="baseline", src="sub-01_ses-baseline_trc-K2")
    table = pd.read_csv(path, sep="\t")
    assert list(table.columns) == ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z",
                                   "framewise_displacement"]
    truth = json.loads((demo["out"] / "bids" / "sourcedata" / "truth" / "sub-01"
                        / "ses-baseline" / "sub-01_ses-baseline_trc-K2_desc-true_pet.json")
                       .read_text())
    assert len(table) == len(truth["frame_start"])


def test_group_tables_follow_the_contract(demo):
    stats = sorted((demo["out"] / "derivatives" / "group").glob("*_stats.tsv"))
    assert stats
    for path in stats:
        assert list(pd.read_csv(path, sep="\t").columns) == STATS_COLUMNS
    assert (demo["out"] / "derivatives" / "group" / "group.html").stat().st_size > 0


def test_rerun_resumes_from_the_work_directory(demo):
    """A second run reuses every cached node: no motion estimate is recomputed, and the
    outputs are byte-identical."""
    out = demo["out"]
    der = out / "derivatives"
    results = sorted((out / "work").rglob("_estimate_motion*/result_*.pklz"))
    assert results
    stamps = [p.stat().st_mtime_ns for p in results]
    kinpar = sorted(der.rglob("*_kinpar.tsv"))
    contents = [p.read_bytes() for p in kinpar]
    options = participant_options(out / "bids", out / "work", 2, 0.0)
    with demo_templates(out / "templateflow"):
        code = ketpet_main([str(out / "bids"), str(der), "participant", *options,
                            "--no-progress", "--skip-bids-validation"])
    assert code == 0
    assert [p.stat().st_mtime_ns for p in results] == stamps
    assert [p.read_bytes() for p in kinpar] == contents


@pytest.fixture(scope="module")
def gtm_run(tmp_path_factory):
    """One noise-free scan blurred by a known 6 mm PSF, processed with GTM."""
    from ketpet_bids.sim import simulate_study

    out = tmp_path_factory.mktemp("gtm")
    simulate_study(out / "bids", n_patients=0, n_controls=1, size="tiny", seed=5, noise=0.0,
                   psf_fwhm_mm=6.0)
    code = ketpet_main([str(out / "bids"), str(out / "der"), "participant", "-w",
                        str(out / "work"), "--preset", "k2", "--models", "suvr",
                        "--pvc", "gtm", "--pvc-psf", "6", "--no-progress",
                        "--skip-bids-validation",
                        "--anat-derivatives", str(out / "bids" / "derivatives" / "sim-anat")])
    return {"out": out, "code": code}


def test_gtm_recovers_regional_suvr_that_the_psf_biases(gtm_run):
    """With the PSF known, GTM-corrected SUVR of every brain region ≥ 1 cm³ is within 3% of
    truth, where uncorrected values are biased by up to ~30%, and the 64 mm³ habenula within
    15% (uncorrected −39%). Measured: −2.7% to +1.2%, habenula −3.3%/−1.7%. The correction
    alone is ≤ 0.25% (tests/interfaces/test_pvc_on_simulator.py); the rest comes from the
    motion-corrected frames (linear resampling of 4 mm voxels widens the effective PSF) and
    0.1–0.4 mm co-registration error. CSF (true SUVR ≈ 0.07) is left out: a relative error of
    near-zero activity says nothing."""
    assert gtm_run["code"] == 0
    out = gtm_run["out"]
    src = "sub-01_ses-baseline_trc-K2"

    def suvr(pvc):
        path = out / "der" / output_path("kinpar", subject="01", session="baseline", src=src,
                                         atlas="sim", model="suvr", pvc=pvc)
        return pd.read_csv(path, sep="\t", keep_default_na=False).set_index("region")["SUVR"]

    truth = _truth(out, "01", "baseline", "desc-true_kinpar").set_index("region")
    corrected, uncorrected = suvr("gtm"), suvr(None)
    large = truth.index[(truth["volume_mm3"] >= 1000) & truth.index.isin(corrected.index)
                        & (truth["SUVR"] > 0.2)]
    assert len(large) >= 8
    for region in large:
        assert corrected[region] == pytest.approx(truth.loc[region, "SUVR"], rel=0.03), region
    assert max(abs(uncorrected[r] / truth.loc[r, "SUVR"] - 1) for r in large) > 0.10
    for side in ("habenula-left", "habenula-right"):
        error = abs(corrected[side] - truth.loc[side, "SUVR"])
        assert error < abs(uncorrected[side] - truth.loc[side, "SUVR"]), side
        assert error < 0.15 * truth.loc[side, "SUVR"], side


def test_every_report_links_only_local_non_empty_files(demo):
    """Each participant report and the group report: every src/href that is not an anchor is a
    local file that exists and is non-empty; nothing is fetched from the network."""
    import re

    der = demo["out"] / "derivatives"
    pages = sorted(der.glob("sub-*.html")) + [der / "group" / "group.html"]
    assert len(pages) == 5
    for page in pages:
        links = re.findall(r'(?:src|href)="([^"]+)"', page.read_text())
        assert links, page.name
        assert not [link for link in links if "://" in link or link.startswith("//")], page.name
        for link in (link for link in links if not link.startswith("#")):
            target = page.parent / link
            assert target.is_file() and target.stat().st_size > 0, (page.name, link)
