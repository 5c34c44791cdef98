"""Measured regional error of the participant level against the simulator's truth.

``run``: for each seed, simulate a ``k2-ketamine`` study (``--size tiny``: 2 mm T1w, 4 mm PET,
14 frames; ``standard``: 1 mm T1w, 2 mm PET, 31 frames) with the simulator's defaults
(``noise = 1``, "realistic": 15% CoV in a 2 mm voxel at 10 kBq/mL in a 5-min late frame;
6 mm PSF; ≤ 4 mm motion; "average" voxel sampling; arterial blood with 3% sample noise) and
run the participant level exactly as ``ketpet-bids-demo`` does (``demo_templates``,
``participant_options``: ``--preset k2`` whole-brain SUVR, Logan VT from the blood data, the
simulator's anatomy, default atlas, GTM with the simulator's PSF), i.e.::

    ketpet-bids-sim OUT/seed-S/bids --preset k2-ketamine --n-patients 3 --n-controls 3 --seed S
    TEMPLATEFLOW_HOME=OUT/templateflow ketpet-bids OUT/seed-S/bids OUT/seed-S/derivatives \\
        participant -w OUT/seed-S/work --nprocs 2 --preset k2 \\
        --anat-derivatives OUT/seed-S/bids/derivatives/sim-anat --atlas default \\
        --voxelwise both --pvc gtm --pvc-psf 6.0

``analyse``: read every scan's ``atlas-sim`` kinpar tables (SUVR and Logan VT, without PVC
and with GTM) and the truth ``desc-true_kinpar.tsv``, and write per scan and region the
relative error ``measured / true − 1`` on three scales (VT; SUVR with the whole-brain
reference; SUVR relative to the cerebellum = SUVR_wb(r) / SUVR_wb(cerebellum), the ratio of
the same late-window means). Per pipeline variant, scale and region it estimates

    log(measured / true) = b_r + u_scan + e_{scan, r},   u ~ N(0, σ_u²),  e ~ N(0, σ_r²),

the relative bias ``b_r`` (95% t CI), a scan-common component ``u`` (SUVR reference noise,
blood-curve noise for VT: shared by every region of a scan; method-of-moments estimate from
the scan means of the regions ≥ 1 cm³ excluding CSF) and the region-specific SD ``σ_r``
(95% χ² CI; the SD of the residual after removing the scan mean, corrected for the scan
mean's own share). The table is the error model of ``group_planted.py``
(``results/regional_noise.json``).

Run (``nice -n 19``): ``python benchmarks/regional_noise.py run OUT --seeds 1 2`` then
``python benchmarks/regional_noise.py analyse OUT``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

ATLAS_SIM = "sim"
SCALES = ("VT", "SUVR-wholebrain", "SUVR-cerebellum")
VARIANTS = ("none", "gtm")
LARGE_MM3 = 1000.0
PSF_FWHM_MM = 6.0  # the simulator's default PSF (ketpet_bids.sim.study.simulate_study)
NOISE = 1.0  # the simulator's default ("realistic") noise scale


def run(out: Path, seeds: list[int], n_patients: int, n_controls: int, nprocs: int,
        size: str) -> None:
    """Simulate one study of ``size`` per seed and run the demo's participant level on it."""
    from ketpet_bids.cli.demo import demo_templates, participant_options
    from ketpet_bids.cli.run import main as ketpet_main
    from ketpet_bids.sim import simulate_study

    log = []
    for seed in seeds:
        root = (out / f"seed-{seed}").absolute()
        bids, derivatives, work = root / "bids", root / "derivatives", root / "work"
        started = time.perf_counter()
        if not (bids / "dataset_description.json").exists():
            simulate_study(bids, n_patients=n_patients, n_controls=n_controls, size=size,
                           seed=seed, preset="k2-ketamine", noise=NOISE, psf_fwhm_mm=PSF_FWHM_MM)
        simulated = time.perf_counter()
        with demo_templates(out.absolute() / "templateflow"):
            code = ketpet_main([str(bids), str(derivatives), "participant", "--no-progress",
                                *participant_options(bids, work, nprocs, PSF_FWHM_MM)])
        log.append({"seed": seed, "size": size, "exit": code, "simulate_s": round(simulated - started, 1),
                    "participant_s": round(time.perf_counter() - simulated, 1),
                    "scans": len(list((bids / "sourcedata" / "truth").rglob(
                        "*_desc-true_kinpar.tsv")))})
        print(log[-1], flush=True)
    with open(out / "run_log.jsonl", "a") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in log)



def collect(out: Path) -> pd.DataFrame:
    """Measured and true values per seed, scan, PVC variant, scale and region (long table)."""
    rows = []
    for truth_file in sorted(out.glob("seed-*/bids/sourcedata/truth/sub-*/ses-*/"
                                      "*_desc-true_kinpar.tsv")):
        seed = int(truth_file.parts[-7].removeprefix("seed-"))
        subject, session = truth_file.parts[-3].removeprefix("sub-"), \
            truth_file.parts[-2].removeprefix("ses-")
        truth = pd.read_csv(truth_file, sep="\t").set_index("region")
        pet = out / f"seed-{seed}" / "derivatives" / f"sub-{subject}" / f"ses-{session}" / "pet"
        if not list(pet.glob(f"*_seg-{ATLAS_SIM}_*kinpar.tsv")):
            print(f"not processed (skipped): {pet}")
            continue
        for variant in VARIANTS:
            pvc = "" if variant == "none" else f"_pvc-{variant}"
            tables = {}
            for model, param in (("suvr", "SUVR"), ("logan", "VT")):
                found = sorted(pet.glob(f"*_seg-{ATLAS_SIM}{pvc}_model-{model}_kinpar.tsv"))
                if len(found) != 1:
                    raise FileNotFoundError(f"{pet}: {len(found)} {variant} {model} tables")
                tables[param] = pd.read_csv(found[0], sep="\t").set_index("region")[param]
            suvr = tables["SUVR"]
            measured = {"VT": tables["VT"], "SUVR-wholebrain": suvr,
                        "SUVR-cerebellum": suvr / suvr["cerebellum"]}
            true = {"VT": truth["VT"], "SUVR-wholebrain": truth["SUVR"],
                    "SUVR-cerebellum": truth["SUVR"] / truth.loc["cerebellum", "SUVR"]}
            for scale in SCALES:
                for region, value in measured[scale].items():
                    if scale == "SUVR-cerebellum" and region == "cerebellum":
                        continue
                    rows.append({"seed": seed, "subject": subject, "session": session,
                                 "variant": variant, "scale": scale, "region": region,
                                 "volume_mm3": float(truth.loc[region, "volume_mm3"]),
                                 "measured": float(value), "true": float(true[scale][region])})
    table = pd.DataFrame(rows)
    table["log_error"] = np.log(table["measured"] / table["true"])
    return table


REFITS = (("logan", "truth"), ("ma1", "truth"), ("ma1", "gtm"))
"""VT refits (model, curves): the noise-free true TACs give each model's own bias; the
pipeline's GTM-corrected regional TACs give MA1's error in the pipeline (variant
``<model>-<curves>``)."""


def vt_refit(out: Path, model: str, curves: str) -> pd.DataFrame:
    """VT of ``model`` fitted by the pipeline's kinetics interface (auto t*, same frames).

    ``curves="truth"``: ``desc-true_tacs.tsv`` with the true blood (``desc-true_blood.tsv``
    and the raw blood sidecar), no image or blood noise; ``"gtm"``: the participant level's
    ``seg-sim_pvc-gtm`` TACs with the recorded (noisy) blood, i.e. what ``--models <model>``
    would give.
    """
    import shutil
    import tempfile

    from ketpet_bids.interfaces.kinetics import FitRegionalModel

    rows = []
    for truth_file in sorted(out.glob("seed-*/bids/sourcedata/truth/sub-*/ses-*/"
                                      "*_desc-true_kinpar.tsv")):
        seed = int(truth_file.parts[-7].removeprefix("seed-"))
        subject, session = truth_file.parts[-3], truth_file.parts[-2]
        stem = truth_file.name.removesuffix("_desc-true_kinpar.tsv")
        raw = out / f"seed-{seed}" / "bids" / subject / session / "pet"
        truth = pd.read_csv(truth_file, sep="\t").set_index("region")
        if curves == "truth":
            tacs = truth_file.with_name(f"{stem}_desc-true_tacs.tsv")
            blood_tsv = truth_file.with_name(f"{stem}_recording-manual_desc-true_blood.tsv")
        else:
            tacs = (out / f"seed-{seed}" / "derivatives" / subject / session / "pet"
                    / f"{stem}_seg-{ATLAS_SIM}_pvc-gtm_desc-preproc_tacs.tsv")
            blood_tsv = raw / f"{stem}_recording-manual_blood.tsv"
        with tempfile.TemporaryDirectory() as tmp:
            blood = Path(tmp) / f"{stem}_recording-manual_blood.tsv"
            shutil.copy(blood_tsv, blood)
            shutil.copy(raw / f"{stem}_recording-manual_blood.json", blood.with_suffix(".json"))
            result = FitRegionalModel(model=model, window=(1800.0, 3000.0),
                                      blood_files=[str(blood)], tacs_tsv=str(tacs)).run(cwd=tmp)
            fitted = pd.read_csv(result.outputs.kinpar_tsv, sep="\t").set_index("region")["VT"]
        rows += [{"seed": seed, "subject": subject.removeprefix("sub-"),
                  "session": session.removeprefix("ses-"), "variant": f"{model}-{curves}",
                  "scale": "VT", "region": region,
                  "volume_mm3": float(truth.loc[region, "volume_mm3"]),
                  "measured": float(fitted[region]), "true": float(truth.loc[region, "VT"])}
                 for region in truth.index
                 if region in fitted.index and region not in ("skull", "scalp")]
    table = pd.DataFrame(rows)
    table["log_error"] = np.log(table["measured"] / table["true"])
    return table


def change_attenuation(table: pd.DataFrame) -> pd.DataFrame:
    """Measured vs true post − baseline change per subject, variant, scale and region:
    ``log(measured_post/measured_base) − log(true_post/true_base)`` summarised as mean and SD
    (the error of a within-subject log change; compare with ``√2·σ_total`` to see whether
    a subject's two scans share error) and the mean true log change.
    """
    wide = table.pivot_table(index=["variant", "scale", "region", "seed", "subject"],
                             columns="session", values=["log_error", "true"]).dropna()
    true_change = np.log(wide[("true", "post")] / wide[("true", "baseline")])
    error = wide[("log_error", "post")] - wide[("log_error", "baseline")]
    frame = pd.DataFrame({"true_change": true_change, "error": error}).reset_index()
    return frame.groupby(["variant", "scale", "region"]).apply(
        lambda g: pd.Series({"n": len(g), "mean_true_change": g["true_change"].mean(),
                             "mean_error": g["error"].mean(),
                             "sd_error": g["error"].std(ddof=1)}),
        include_groups=False)


def decompose(errors: pd.DataFrame, volumes: pd.Series) -> tuple[pd.DataFrame, dict]:
    """Bias, scan-common SD and region-specific SD of one variant and scale.

    Parameters
    ----------
    errors
        ``log(measured / true)``, shape (n_scans, n_regions).
    volumes
        Region volumes (mm³) indexed like ``errors``' columns.

    Returns
    -------
    regions
        Per region: n, bias (relative, ``exp(b) − 1``) with its 95% t CI, total SD of the log
        error, region-specific SD ``σ_r`` with its 95% χ² CI.
    common
        ``sd_common`` (σ_u, log scale) with a 95% CI from the χ² interval of the scan means'
        variance, the pooled regions and the mean residual correlation between regions.

    The common component is the mean residual of the pooled regions L (≥ 1 cm³, no CSF):
    ``m_s = mean_{l∈L}(d_{s,l} − b_l)``, ``Var(m) = σ_u² + Σ_L σ_l² / |L|²``; the residual
    ``d − b − m`` has variance ``σ_r²(1 − 2/|L|·[r∈L]) + Σ_L σ_l²/|L|²``, solved for ``σ_r²``.
    """
    n = len(errors)
    pooled = [r for r in errors.columns if volumes[r] >= LARGE_MM3 and r != "csf"]
    centred = errors - errors.mean()
    common = centred[pooled].mean(axis=1)
    resid_var = (centred.sub(common, axis=0) ** 2).sum() / (n - 1)
    in_l = pd.Series([r in pooled for r in errors.columns], index=errors.columns)
    k = len(pooled)
    # Solve for the pooled σ_l²: v_l = σ_l²(1 − 2/k) + S/k², S = Σ σ_l²  →  Σ v_l = S(1 − 1/k).
    shared = resid_var[pooled].sum() / (1 - 1 / k) / k**2
    sigma2 = (resid_var - shared).where(~in_l, (resid_var - shared) / (1 - 2 / k)).clip(lower=0)
    var_common = float(common.var(ddof=1))
    sd_u2 = max(var_common - shared, 0.0)
    chi = stats.chi2.ppf([0.975, 0.025], n - 1)
    t = stats.t.ppf(0.975, n - 1)
    bias, se = errors.mean(), errors.std(ddof=1) / np.sqrt(n)
    regions = pd.DataFrame({
        "volume_mm3": volumes[errors.columns], "n": n, "bias": np.expm1(bias),
        "bias_low": np.expm1(bias - t * se), "bias_high": np.expm1(bias + t * se),
        "sd_total": errors.std(ddof=1), "sd_region": np.sqrt(sigma2),
        "sd_region_low": np.sqrt(sigma2 * (n - 1) / chi[0]),
        "sd_region_high": np.sqrt(sigma2 * (n - 1) / chi[1])})
    residual = centred.sub(common, axis=0)[pooled].corr().to_numpy()
    info = {"n_scans": n, "sd_common": float(np.sqrt(sd_u2)),
            "sd_common_low": float(np.sqrt(max(var_common * (n - 1) / chi[0] - shared, 0))),
            "sd_common_high": float(np.sqrt(max(var_common * (n - 1) / chi[1] - shared, 0))),
            "pooled_regions": pooled,
            "mean_residual_corr": float(residual[np.triu_indices(k, 1)].mean())}
    return regions, info


def markdown(model: dict, variant: str) -> str:
    """Bias and region-specific SD (%, 95% CIs) per region and scale of one variant."""
    scales = [s for s in SCALES if s in model[variant]]
    regions = model[variant][scales[0]]["regions"]
    order = sorted(regions, key=lambda r: -regions[r]["volume_mm3"])
    lines = ["| region | volume (cm³) | " + " | ".join(
        f"{s} bias | {s} σ_r" for s in scales) + " |",
        "|---|---|" + "---|---|" * len(scales)]
    for region in order:
        cells = []
        for scale in scales:
            row = model[variant][scale]["regions"].get(region)
            cells += (["—", "—"] if row is None else [
                f"{100 * row['bias']:+.1f} [{100 * row['bias_low']:+.1f}, "
                f"{100 * row['bias_high']:+.1f}]",
                f"{100 * row['sd_region']:.1f} [{100 * row['sd_region_low']:.1f}, "
                f"{100 * row['sd_region_high']:.1f}]"])
        lines.append(f"| {region} | {regions[region]['volume_mm3'] / 1000:.3g} | "
                     + " | ".join(cells) + " |")
    lines.append("| scan-common σ_u | | " + " | ".join(
        f"| {100 * model[variant][s]['sd_common']:.1f} [{100 * model[variant][s]['sd_common_low']:.1f}, "
        f"{100 * model[variant][s]['sd_common_high']:.1f}]" for s in scales) + " |")
    return "\n".join(lines)


def simulated_size(out: Path) -> str:
    """The one simulator size of the runs in ``out`` (``run_log.jsonl``; ``tiny`` if unrecorded)."""
    log = [json.loads(line) for line in (out / "run_log.jsonl").read_text().splitlines()]
    sizes = {entry.get("size", "tiny") for entry in log}
    if len(sizes) != 1:
        raise ValueError(f"{out}: runs of several sizes {sorted(sizes)}; analyse them apart")
    return sizes.pop()


def analyse(out: Path, model_file: Path) -> None:
    """Print the error tables and write the error model (JSON) used by group_planted.py."""
    table = pd.concat([collect(out), *(vt_refit(out, m, c) for m, c in REFITS)],
                      ignore_index=True)
    table.to_csv(out / "errors.tsv", sep="\t", index=False)
    model = {}
    for (variant, scale), g in table.groupby(["variant", "scale"]):
        errors = g.pivot_table(index=["seed", "subject", "session"], columns="region",
                               values="log_error")
        volumes = g.groupby("region")["volume_mm3"].first()
        regions, info = decompose(errors, volumes)
        fit = regions.drop(index="csf")
        slope, intercept = np.polyfit(np.log(fit["volume_mm3"]),
                                      np.log(fit["sd_region"].clip(lower=1e-6)), 1)
        info["sd_vs_volume"] = {"exponent": float(slope),
                                "sd_at_1cm3": float(np.exp(intercept) * 1000.0**slope)}
        model.setdefault(variant, {})[scale] = {**info, "regions": regions.to_dict("index")}
        print(f"\n{variant} {scale}: {info}")
        print(regions.drop(columns="n").round(4).to_string())
    change = change_attenuation(table)
    print("\nwithin-subject log change, measured − true (post vs baseline pairs):")
    print(change.round(4).to_string())
    for (variant, scale, region), row in change.iterrows():
        model[variant][scale]["regions"][region]["change"] = row.to_dict()
    for variant in model:
        print(f"\n{variant}:\n{markdown(model, variant)}")
    seeds = sorted(table["seed"].unique().tolist())
    model_file.write_text(json.dumps({
        "date": "2026-11-30", "seeds": seeds, "n_scans": {v: model[v]["VT"]["n_scans"] for v in model},
        "simulation": {"preset": "k2-ketamine", "size": simulated_size(out), "noise": NOISE,
                       "psf_fwhm_mm": PSF_FWHM_MM, "max_motion_mm": 4.0},
        "definition": "log(measured/true) = log(1 + bias_r) + u_scan + e_scan_r; "
                      "u ~ N(0, sd_common^2), e ~ N(0, sd_region^2)",
        "model": model}, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    p_run = sub.add_parser("run")
    p_run.add_argument("out", type=Path)
    p_run.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    p_run.add_argument("--n-patients", type=int, default=3)
    p_run.add_argument("--n-controls", type=int, default=3)
    p_run.add_argument("--nprocs", type=int, default=2)
    p_run.add_argument("--size", choices=("tiny", "standard"), default="tiny")
    p_analyse = sub.add_parser("analyse")
    p_analyse.add_argument("out", type=Path)
    p_analyse.add_argument("--model", type=Path,
                           default=Path("benchmarks/results/regional_noise.json"))
    args = parser.parse_args()
    if args.step == "run":
        run(args.out, args.seeds, args.n_patients, args.n_controls, args.nprocs,
            args.size)
    else:
        analyse(args.out, args.model)


if __name__ == "__main__":
    main()
