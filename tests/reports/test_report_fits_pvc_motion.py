"""Report sections "Model fits", "PVC comparison" and the before/after motion figure.

The participant output is built directly (no pipeline run): TACs are the simulator's
noise-free frame means (one-tissue targets and reference, where SRTM is exact), fitted by the
pipeline's own FitRegionalModel; PVC tables are the TACs times known factors; the PET is a
small blob whose frames are shifted by known whole voxels before correction.
"""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from ketpet_bids.bids import naming
from ketpet_bids.interfaces.kinetics import FitRegionalModel
from ketpet_bids.reports import figures
from ketpet_bids.reports.participant import (
    build_participant_report,
    figure_path,
    fit_regions,
    most_displaced_frames,
)
from ketpet_bids.sim import kinetics as sk
from ketpet_bids.sim.acquisition import SIZES

SUBJECT, SRC = "02", "sub-02_trc-K2"
IDS = {"subject": SUBJECT, "session": None, "src": SRC}
START, END = SIZES["standard"].frame_times()
WINDOW = (1800.0, 3000.0)
REGIONS = {"cortex": (0.12, 0.5), "putamen": (0.10, 1.0), "habenula": (0.09, 2.0)}
PVC_FACTORS = {"cortex": 1.1, "putamen": 1.25, "habenula": 2.0}


def _tacs(noise: float = 0.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Regional and reference TAC tables (Bq/mL); ``noise``: relative Gaussian SD."""
    grid = sk.time_grid(float(END[-1]))
    blood = sk.blood_curves(grid, sk.InputParams(scale=1000.0, delay_s=12.0))

    def means(k1: float, vt: float) -> np.ndarray:
        curve = sk.tissue_curve(sk.RegionParams(k1, k1 / vt, 0.0, 0.0, 0.0),
                                blood["parent_plasma"], blood["whole_blood"], 1.0)
        return sk.interval_means(curve, 1.0, START, END)

    rng = np.random.default_rng(3)
    times = {"frame_start": START, "frame_end": END}
    tacs = pd.DataFrame({**times, **{r: means(k1, 1.25 * (1 + bp)) * (
        1 + noise * rng.standard_normal(START.size)) for r, (k1, bp) in REGIONS.items()}})
    return tacs, pd.DataFrame({**times, "wholebrain": means(0.10, 1.25)})


def _write(root: Path, key: str, table: pd.DataFrame, **entities: str | None) -> Path:
    path = root / naming.output_path(key, **IDS, **entities)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, sep="\t", index=False, na_rep="n/a")
    return path


def _model_outputs(root: Path, tacs: pd.DataFrame, ref: pd.DataFrame, work: Path,
                   models: tuple[str, ...] = ("srtm", "logan", "suvr"),
                   pvc: str | None = None) -> None:
    """Run FitRegionalModel as the pipeline does and put its files under contract names."""
    work.mkdir(exist_ok=True)
    tacs_tsv = _write(root, "tacs", tacs, atlas="sim", pvc=pvc)
    ref_tsv = _write(root, "ref_tacs", ref, ref="wholebrain", pvc=pvc)
    for model in models:
        out = FitRegionalModel(model=model, window=WINDOW, tacs_tsv=str(tacs_tsv),
                               ref_tacs_tsv=str(ref_tsv), input_kind="reference"
                               ).run(cwd=str(work)).outputs
        kinpar = root / naming.output_path("kinpar", **IDS, atlas="sim", model=model, pvc=pvc)
        shutil.copy(out.kinpar_tsv, kinpar)
        shutil.copy(out.kinpar_json, naming.sidecar_path(kinpar))
        if model != "suvr":
            fit = root / naming.output_path("model_fit", **IDS, atlas="sim", model=model,
                                            pvc=pvc)
            shutil.copy(out.fit_tsv, fit)
            shutil.copy(out.fit_json, naming.sidecar_path(fit))


def _run(**extra) -> dict:
    return {"src": SRC, "session": None, "atlases": ["sim"], "models": ["srtm", "logan", "suvr"],
            **extra}


def _links(page: Path) -> set[str]:
    links = set(re.findall(r'<img src="([^"]+)"', page.read_text()))
    for link in links:
        assert (page.parent / link).stat().st_size > 0, link
    return links


def _caption(page: Path, figure: Path) -> str:
    match = re.search(rf'<img src="{re.escape(figure.as_posix())}" alt="([^"]*)"',
                      page.read_text())
    assert match, figure
    return match.group(1)


def test_fit_figures_show_zero_residuals_for_noise_free_srtm(tmp_path: Path) -> None:
    """SRTM on curves it describes exactly: the caption's largest weighted residual, computed
    from the written fit table, is ≤ 0.05 % of the peak (measured 0.01 %: the basis-function
    grid), r² ≥ 0.9999; Logan's caption names its t*. SUVR gets a sentence, not a figure."""
    tacs, ref = _tacs()
    _model_outputs(tmp_path, tacs, ref, tmp_path / "work")
    page = build_participant_report(tmp_path, SUBJECT, [_run()])
    links = _links(page)
    srtm = figure_path(SUBJECT, SRC, "fit", "srtm", "sim")
    logan = figure_path(SUBJECT, SRC, "fit", "logan", "sim")
    assert {srtm.as_posix(), logan.as_posix()} <= links
    assert not [lk for lk in links if "fitSuvr" in lk]
    caption = _caption(page, srtm)
    residual = float(re.search(r"largest \|weighted residual\| ([0-9.]+)%", caption).group(1))
    assert residual <= 0.05
    r2_low = float(re.search(r"r² ([0-9.]+) to", caption).group(1))
    assert r2_low >= 0.9999
    assert "all frames (t* = 0)" in caption and "all regions" in caption
    tstar = json.loads(naming.sidecar_path(tmp_path / naming.output_path(
        "kinpar", **IDS, atlas="sim", model="logan")).read_text())["TStar"]
    assert f"t* = {tstar:g} s" in _caption(page, logan)
    text = page.read_text()
    assert "suvr: an average over a time window" in text and "Could not" not in text
    # Three regions, each an observed/predicted panel and a residual panel.
    svg = (tmp_path / srtm).read_text()
    assert all(region in svg for region in REGIONS)


def test_weighted_residuals_carry_the_fit_diagnostics(tmp_path: Path) -> None:
    """On noisy TACs (2 % SD), Σ(weighted residual²) × mean weight = WRSS, which the
    parameter table gives through its AIC: WRSS = n·exp((AIC − 2p)/n), p = 3 for SRTM
    (AIC written with 6 significant digits → 1e-3 relative)."""
    tacs, ref = _tacs(noise=0.02)
    _model_outputs(tmp_path, tacs, ref, tmp_path / "work", models=("srtm",))
    fit = pd.read_csv(tmp_path / naming.output_path("model_fit", **IDS, atlas="sim",
                                                    model="srtm"), sep="\t")
    kinpar = pd.read_csv(tmp_path / naming.output_path("kinpar", **IDS, atlas="sim",
                                                       model="srtm"), sep="\t")
    residual = figures.weighted_residuals(fit)
    for region, rows in fit.groupby("region", sort=False):
        n = len(rows)
        wrss = (residual[rows.index] ** 2).sum() * rows["weight"].mean()
        aic = kinpar.loc[kinpar["region"] == region, "aic"].item()
        assert wrss == pytest.approx(n * np.exp((aic - 6) / n), rel=1e-3)
        assert np.abs(residual[rows.index]).max() > 0.001 * rows["observed"].max()


def test_fit_regions_keep_largest_and_habenula() -> None:
    names = [f"r{i}" for i in range(20)] + ["habenulaL", "habenulaR"]
    volumes = {n: float(i) for i, n in enumerate(names)} | {"habenulaL": 0.1, "habenulaR": 0.1}
    assert fit_regions(names, volumes) == [f"r{i}" for i in range(12, 20)] + ["habenulaL",
                                                                             "habenulaR"]
    assert fit_regions(names[:16]) == names[:16]
    assert fit_regions(names, None)[:8] == names[:8]


def test_pvc_comparison_reports_known_changes(tmp_path: Path) -> None:
    """Corrected TACs = uncorrected × (1.1, 1.25, 2): the table shows +10 %, +25 %, +100 %
    over the SUVR window read from the SUVR sidecar; without PVC the section says so."""
    tacs, ref = _tacs()
    _model_outputs(tmp_path, tacs, ref, tmp_path / "work", models=("suvr",))
    corrected = tacs.assign(**{r: tacs[r] * f for r, f in PVC_FACTORS.items()})
    _write(tmp_path, "tacs", corrected, atlas="sim", pvc="gtm")
    page = build_participant_report(tmp_path, SUBJECT, [_run(models=["suvr"], pvc=["gtm"])])
    figure = figure_path(SUBJECT, SRC, "pvc", "sim")
    assert figure.as_posix() in _links(page)
    text = page.read_text()
    assert "the SUVR window (1800-3000 s)" in text
    table = pd.read_html(io.StringIO(text.split('id="pvc"')[1].split("</section>")[0]))[0]
    np.testing.assert_allclose(table["gtm change (%)"], [10.0, 25.0, 100.0], atol=5e-3)
    page = build_participant_report(tmp_path, SUBJECT, [_run(models=["suvr"])])
    assert "No partial-volume correction ran" in page.read_text()


SHAPE = (16, 18, 14)
SHIFTS = {4: 3, 5: -2}  # frame index → shift along the first voxel axis (voxels)
AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])


def _motion_outputs(root: Path, skipped: str | None = None) -> Path:
    """Six frames of a blob; frames 5 and 6 moved before correction. Returns the raw PET."""
    grid = np.indices(SHAPE).astype(np.float32)
    blob = np.exp(-(((grid - np.array([7, 9, 7])[:, None, None, None]) / 2.5) ** 2).sum(0))
    blob += 0.5 * np.exp(-(((grid - np.array([10, 6, 7])[:, None, None, None]) / 2) ** 2).sum(0))
    scale = np.array([0.2, 0.6, 1.0, 1.0, 0.9, 0.8])
    after = blob[..., None] * scale
    before = np.stack([np.roll(after[..., i], SHIFTS.get(i, 0), axis=0)
                       for i in range(scale.size)], axis=-1)
    raw = root / "bids" / "sub-02_trc-K2_pet.nii.gz"
    raw.parent.mkdir(parents=True)
    nib.save(nib.Nifti1Image(before.astype(np.float32), AFFINE), raw)
    for key, data in (("preproc_pet", after), ("petref", after.mean(-1))):
        path = root / naming.output_path(key, **IDS)
        path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(data.astype(np.float32), AFFINE), path)
    timing = {"FrameTimesStart": [0, 60, 120, 300, 600, 1200],
              "FrameDuration": [60, 60, 180, 300, 600, 600], "Sources": [str(raw)]}
    (root / naming.sidecar_path(naming.output_path("preproc_pet", **IDS))).write_text(
        json.dumps(timing))
    confounds = pd.DataFrame(0.0, index=range(6), columns=list(figures.MOTION_COLUMNS))
    for frame, shift in SHIFTS.items():
        confounds.loc[frame, "trans_x"] = 2.0 * shift
    confounds_tsv = _write(root, "confounds", confounds)
    naming.sidecar_path(confounds_tsv).write_text(json.dumps({"HMCSkipped": skipped}))
    return raw


def test_motion_before_after_shows_the_moved_frames_aligned_after(tmp_path: Path) -> None:
    """The moved frames (5, 6) are outlined, and every frame correlates with the reference
    at least as well after as before (mean correlation higher after); the raw PET is found
    through the sidecar's Sources."""
    _motion_outputs(tmp_path)
    page = build_participant_report(tmp_path, SUBJECT, [_run(models=[], atlases=[])])
    figure = figure_path(SUBJECT, SRC, "motionframes")
    assert figure.as_posix() in _links(page)
    caption = _caption(page, figure)
    assert "displaced most (4, 5, 6)" in caption
    before, after = map(float, re.search(r"mean ([0-9.]+) before and ([0-9.]+) after",
                                         caption).groups())
    assert after > 0.99 and before < after - 0.05


def test_motion_frames_are_skipped_when_hmc_was_off(tmp_path: Path) -> None:
    _motion_outputs(tmp_path, skipped="disabled (--hmc-off)")
    page = build_participant_report(tmp_path, SUBJECT, [_run(models=[], atlases=[])])
    assert "Head-motion correction did not run (disabled (--hmc-off))" in page.read_text()
    assert not (tmp_path / figure_path(SUBJECT, SRC, "motionframes")).exists()


def test_most_displaced_frames_prefer_motion_then_late_frames() -> None:
    table = pd.DataFrame(0.0, index=range(5), columns=list(figures.MOTION_COLUMNS))
    assert most_displaced_frames(table, 5) == [2, 3, 4]
    table.loc[1, "rot_z"] = 0.01  # 0.5 mm at 50 mm
    table.loc[0, "trans_y"] = 0.4
    assert most_displaced_frames(table, 5, count=2) == [0, 1]
