"""Planted-effect detection of the group level on cohorts with the study's shape, 20 seeds.

Each seed draws the ``k2-ketamine`` cohort (34 patients: ketamine/placebo, 49 controls) with
the simulator's own code (``ketpet_bids.sim.cohort`` and ``simulate_scan_truth``, the same
random streams as ``simulate_study(..., preset="k2-ketamine", seed=seed)``: between-subject,
session and treatment variability exactly as simulated), takes each scan's TRUE regional
values and writes participant-level ``_kinpar.tsv`` tables (seg-sim regions, plus each
subject's ``morph.tsv`` volumes) after the pipeline's MEASURED regional error instead of
running the imaging pipeline (117 scans × 20 seeds would take hours):

    measured = true × (1 + b_r) × exp(u + e),  u ~ N(0, σ_u²) per scan (shared by its regions),
    e ~ N(0, σ_r²) independent per scan and region,

with the relative bias ``b_r``, the scan-common SD ``σ_u`` and the region-specific SD ``σ_r``
of each scale measured by ``regional_noise.py`` on full simulations (noise 1, 6 mm PSF,
motion) run through the demo's participant level (``results/regional_noise.md``; ``--variant
gtm``, the demo's PVC; ``none`` is optimistic: without PVC spill-over dilutes changes, which
a bias-and-noise model does not represent). Session 1 assumed 4% (8% habenula) instead.

Three scales, each a separate group-level run (its own output directory):

- ``VT`` — Logan VT with arterial input: the scale on which the group and treatment effects
  are planted (exact nulls);
- ``SUVR-cerebellum`` — late-window SUVR (1800–3000 s) with the cerebellum as reference
  (``--models suvr --ref-region cerebellum``): the simulator plants nothing in the
  cerebellum, so the reference does not move and non-planted regions are null;
- ``SUVR-wholebrain`` — the ``k2`` preset's SUVR with the whole-brain pseudo-reference: the
  scale on which the symptom correlation is planted (MADRS change vs the relative change of
  the volume-weighted cortical composite's SUVR, the group level's ``cortex``), but ketamine (+8% in cortex) and the group
  differences move the reference, so no region is null for those contrasts.

The group level (inferred composites: ``cortex`` = volume-weighted frontal … insula,
``habenula`` = left + right) runs on the measured tables and on the noise-free tables of the
same subjects, whose estimates are the cohort's true effects ("sample truth"). Recorded per
seed, scale, analysis and contrast: planted effects detected at q < 0.05, 95% CIs covering the
sample truth (and the planted population value where one exists), null regions flagged, and
per planted region the estimate and CI half-width (for the power computation of ``summary``).

Run: ``nice -n 19 /work/venv/bin/python -W ignore benchmarks/group_planted.py --seeds 20``
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from ketpet_bids.bids.naming import output_path
from ketpet_bids.sim import acquisition as acq
from ketpet_bids.sim import phantom
from ketpet_bids.sim.cohort import (
    HABENULA,
    assign_madrs,
    cohort_spec,
    draw_subjects,
    rng_for,
)
from ketpet_bids.sim.study import _KINETICS, simulate_scan_truth, true_changes
from ketpet_bids.workflows.group import run_group

ATLAS = [r.name for r in phantom.REGIONS if r.in_atlas]
CORTICAL = list(phantom.CORTICAL)
SPEC = cohort_spec("k2-ketamine")
GROUP_SPEC = {"prediction": False, "covariates": ["age", "sex"]}
SCALES = ("VT", "SUVR-cerebellum", "SUVR-wholebrain")
PRIMARY = {"baseline": "patient-control", "ketamine": "post-baseline:ketamine",
           "percent": "post-baseline:ketamine:percent",
           "interaction": "interaction:ketamine-placebo", "placebo": "post-baseline:placebo",
           "pearson": "pearson", "partial": "partial"}
"""Contrasts evaluated (the Welch, Spearman and per-arm rows are checks, not planted tests)."""


def planted(scale: str, analysis: str, contrast: str) -> tuple[set[str], set[str]]:
    """(regions with a planted effect, regions planted null) for one scale and contrast.

    Composites carry the effect of their members (``cortex`` has the baseline effect of four
    of its six members). The pooled symptom correlation is planted in the cortex; the
    habenula is not a null there (its change differs by arm, so it correlates with symptoms
    through the arm). On the whole-brain SUVR scale only the placebo change has nulls.
    """
    regions = set(ATLAS) | {"cortex", "habenula"}
    treated = set(CORTICAL) | set(HABENULA) | {"cortex", "habenula"}
    if analysis == "baseline":
        effect = set(SPEC.group_effect) | {"cortex", "habenula"}
    elif contrast in (PRIMARY["ketamine"], PRIMARY["percent"], PRIMARY["interaction"]):
        effect = treated
    elif analysis == "change":
        effect = set()
    else:
        effect = set(CORTICAL) | {"cortex"}
    nulls = regions - effect - (set(HABENULA) | {"habenula"} if analysis == "symptoms" else set())
    if scale == "SUVR-wholebrain" and contrast != PRIMARY["placebo"]:
        nulls = set()
    if scale == "SUVR-cerebellum":
        effect, nulls = effect - {"cerebellum"}, nulls - {"cerebellum"}
    return effect, nulls


POPULATION = {PRIMARY["percent"]: {**{r: 8.0 for r in CORTICAL}, **{r: -10.0 for r in HABENULA},
                                   "cortex": 8.0, "habenula": -10.0}}
"""Planted population values (VT and SUVR-cerebellum percent change; SUVR's late-window
ratio is close to, not exactly, proportional to VT)."""


DONE_WHEN = {
    ("VT", "patient-control"): [*SPEC.group_effect, "habenula", "cortex"],
    ("VT", PRIMARY["ketamine"]): [*CORTICAL, "cortex", *HABENULA, "habenula"],
    ("VT", PRIMARY["interaction"]): ["cortex", "habenula"],
    ("SUVR-wholebrain", "pearson"): ["cortex"],
    ("SUVR-wholebrain", "partial"): ["cortex"],
}
"""The issue's criterion, planted effect by planted effect: (scale, contrast) → regions.

Group and treatment effects on the scale where they are planted (VT: exact nulls), each named
region and the composites; the arm × time interaction on the composites (single regions are
reported, at 0.95–0.99 power); the symptom correlation on the variable it is planted on, the
cortical composite's whole-brain SUVR change."""


def done_when(power: pd.DataFrame) -> pd.DataFrame:
    """The :data:`DONE_WHEN` rows of the power table, with ``all_seeds`` = detected every seed."""
    keys = pd.DataFrame([{"scale": scale, "contrast": contrast, "region": region}
                         for (scale, contrast), regions in DONE_WHEN.items()
                         for region in regions])
    rows = keys.merge(power, on=["scale", "contrast", "region"], how="left")
    rows["all_seeds"] = rows["detected"] == rows["seeds"]
    return rows[["scale", "contrast", "region", "seeds", "detected", "covered", "power_bh",
                 "all_seeds"]]


def simulate_cohort(seed: int, geometry: acq.Geometry, volumes: dict[str, float]
                    ) -> tuple[pd.DataFrame, dict, list]:
    """True values per subject, session and region on every scale; MADRS; subjects."""
    starts, ends = geometry.frame_times()
    subjects = draw_subjects(SPEC, SPEC.n_patients, SPEC.n_controls, seed)
    rows, truths = [], {}
    for i, s in enumerate(subjects):
        for j, ses in enumerate(s.sessions):
            truth = simulate_scan_truth(s, ses, SPEC, rng_for(seed, _KINETICS, i, j), starts,
                                        ends, volumes)
            truths[(s.label, ses)] = truth
            rows += [{"subject": s.label, "session": ses, "region": r,
                      "SUVR-wholebrain": truth.suvr[r], "VT": truth.params[r].VT,
                      "SUVR-cerebellum": truth.suvr[r] / truth.suvr["cerebellum"]}
                     for r in ATLAS]
    change = {label: c["cortical_suvr"]
              for label, c in true_changes(subjects, truths, volumes).items()}
    return pd.DataFrame(rows), assign_madrs(subjects, change, SPEC, seed), subjects


def write_dataset(root: Path, values: pd.DataFrame, scale: str, madrs: dict, subjects: list,
                  volumes: dict[str, float]) -> tuple[Path, Path]:
    """BIDS skeleton (participants, sessions.tsv with MADRS), kinpar tables and morph.tsv."""
    bids, out = root / "bids", root / "out"
    bids.mkdir(parents=True)
    pd.DataFrame([{"participant_id": f"sub-{s.label}", "group": s.group, "arm": s.arm,
                   "age": s.age, "sex": s.sex} for s in subjects]).to_csv(
        bids / "participants.tsv", sep="\t", index=False, na_rep="n/a")
    for s in subjects:
        for ses in s.sessions:
            (bids / f"sub-{s.label}" / f"ses-{ses}").mkdir(parents=True)
        pd.DataFrame({"session_id": [f"ses-{x}" for x in s.sessions],
                      "madrs": [madrs[s.label][x] for x in s.sessions]}).to_csv(
            bids / f"sub-{s.label}" / f"sub-{s.label}_sessions.tsv", sep="\t", index=False)
        morph = out / output_path("morph", subject=s.label, atlas="sim")
        morph.parent.mkdir(parents=True)
        pd.DataFrame({"index": range(1, len(ATLAS) + 1), "name": ATLAS,
                      "volume_mm3": [volumes[r] for r in ATLAS]}).to_csv(morph, sep="\t",
                                                                        index=False)
    model, param = ("logan", "VT") if scale == "VT" else ("suvr", "SUVR")
    keep = values if scale != "SUVR-cerebellum" else values[values["region"] != "cerebellum"]
    for (sub, ses), table in keep.groupby(["subject", "session"]):
        path = out / output_path("kinpar", subject=sub, session=ses,
                                 src=f"sub-{sub}_ses-{ses}_trc-K2", atlas="sim", model=model)
        path.parent.mkdir(parents=True, exist_ok=True)
        table[["region", scale]].rename(columns={scale: param}).to_csv(
            path, sep="\t", index=False, float_format="%.8g")
    return bids, out


def group_tables(root: Path, values: pd.DataFrame, scale: str, madrs: dict, subjects: list,
                 volumes: dict[str, float]) -> pd.DataFrame:
    bids, out = write_dataset(root, values, scale, madrs, subjects, volumes)
    result = run_group(out, bids, spec=GROUP_SPEC)
    tables = pd.concat([pd.read_csv(p, sep="\t", keep_default_na=False, na_values=["n/a"])
                        for p in result.stats_files], ignore_index=True)
    return tables[tables["contrast"].isin(PRIMARY.values())]


def add_noise(values: pd.DataFrame, errors: dict, seed: int) -> pd.DataFrame:
    """Apply the measured error model (``regional_noise.json``, one PVC variant) per scale.

    ``errors[scale]`` holds ``sd_common`` (σ_u) and per region ``bias`` and ``sd_region``
    (σ_r); regions without an entry (the SUVR-cerebellum reference itself) stay exact.
    """
    rng = np.random.default_rng([seed, 99])
    noisy = values.copy()
    scan = noisy.groupby(["subject", "session"], sort=False).ngroup().to_numpy()
    for column in SCALES:
        model = errors[column]
        table = pd.DataFrame.from_dict(model["regions"], orient="index").reindex(
            noisy["region"])
        known = table["sd_region"].notna().to_numpy()
        common = model["sd_common"] * rng.standard_normal(scan.max() + 1)[scan] * known
        noisy[column] = noisy[column] * (1 + table["bias"].fillna(0).to_numpy()) * np.exp(
            common + table["sd_region"].fillna(0).to_numpy() * rng.standard_normal(len(noisy)))
    return noisy


def evaluate(measured: pd.DataFrame, truth: pd.DataFrame, scale: str, seed: int
             ) -> tuple[list[dict], list[dict]]:
    """Per-contrast records and per-planted-region rows of one seed and scale."""
    keys = ["analysis", "contrast", "region"]
    both = measured.merge(truth[keys + ["estimate"]], on=keys, suffixes=("", "_truth"))
    records, regions = [], []
    for (analysis, contrast), rows in both.groupby(keys[:2]):
        effect, nulls = planted(scale, analysis, contrast)
        rows = rows.set_index("region")
        effect, nulls = effect & set(rows.index), nulls & set(rows.index)
        hit = rows["q_fdr"] < 0.05
        covered = (rows["ci_low"] <= rows["estimate_truth"]) & (
            rows["estimate_truth"] <= rows["ci_high"])
        records.append({"seed": seed, "scale": scale, "analysis": analysis,
                        "contrast": contrast, "n_planted": len(effect),
                        "detected": int(hit[list(effect)].sum()),
                        "covered_planted": int(covered[list(effect)].sum()),
                        "covered_all": int(covered.sum()), "n_regions": len(rows),
                        "n_null": len(nulls), "null_flagged": int(hit[list(nulls)].sum()),
                        "discoveries": int(hit.sum()),
                        "flagged_not_planted": ",".join(sorted(set(rows.index[hit]) - effect))})
        population = POPULATION.get(contrast, {}) if scale != "SUVR-wholebrain" else {}
        for region in sorted(effect):
            row = rows.loc[region]
            regions.append({
                "seed": seed, "scale": scale, "analysis": analysis, "contrast": contrast,
                "region": region, "n": int(row["n"]), "m": len(rows),
                "estimate": float(row["estimate"]), "truth": float(row["estimate_truth"]),
                "half_width": float(row["ci_high"] - row["ci_low"]) / 2,
                "detected": bool(hit[region]), "covered": bool(covered[region]),
                "population": population.get(region),
                "covered_population": (None if region not in population else bool(
                    row["ci_low"] <= population[region] <= row["ci_high"]))})
    return records, regions


def power_table(regions: pd.DataFrame) -> pd.DataFrame:
    """Detection rate, CI coverage and the power the design has for each planted effect.

    Power uses the mean sample-truth effect over seeds and the mean standard error of the
    measured estimates (CI half-width / z₀.₉₇₅): ``δ = |effect| / SE``; for correlations the
    mean *measured* r (measurement noise attenuates r, so the noise-free r would overstate
    the power) on the Fisher-z scale, ``δ = |atanh r|·√(n−3)``. Power ``Φ(δ − z_{1−a/2})`` at
    ``a = 0.05`` and at the BH threshold when every planted effect of the family is
    discovered, ``a = 0.05·k/m`` (k planted of m regions; an upper bound when fewer are
    found). ``n_for_80`` scales the current sample size to 80% power at that threshold
    (``n·((z_{1−a/2} + z₀.₈)/δ)²``).
    """
    rows = []
    for (scale, analysis, contrast, region), g in regions.groupby(
            ["scale", "analysis", "contrast", "region"]):
        n, m = int(g["n"].iloc[0]), int(g["m"].iloc[0])
        k = int(regions[(regions["scale"] == scale) & (regions["contrast"] == contrast)
                        & (regions["seed"] == g["seed"].iloc[0])]["region"].nunique())
        if analysis == "symptoms":
            delta = abs(np.arctanh(g["estimate"].mean())) * np.sqrt(n - 3)
        else:
            delta = abs(g["truth"].mean()) / (g["half_width"].mean() / stats.norm.ppf(0.975))
        z_bh = stats.norm.ppf(1 - 0.05 * k / m / 2)
        rows.append({
            "scale": scale, "analysis": analysis, "contrast": contrast, "region": region,
            "seeds": len(g), "detected": int(g["detected"].sum()),
            "covered": int(g["covered"].sum()),
            "covered_population": (int(g["covered_population"].sum())
                                   if g["population"].notna().all() else None),
            "mean_truth": float(g["truth"].mean()), "mean_estimate": float(g["estimate"].mean()),
            "power_05": float(stats.norm.cdf(delta - stats.norm.ppf(0.975))),
            "power_bh": float(stats.norm.cdf(delta - z_bh)),
            "n_for_80": int(np.ceil(n * ((z_bh + stats.norm.ppf(0.8)) / delta) ** 2))})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--noise-model", type=Path,
                        default=Path("benchmarks/results/regional_noise_standard.json"),
                        help="measured regional error model (regional_noise.py analyse); "
                        "the default is the standard size (2 mm PET), regional_noise.json the "
                        "tiny size (4 mm PET)")
    parser.add_argument("--variant", choices=("gtm", "none"), default="gtm",
                        help="PVC variant of the measured error model")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/group_planted.json"))
    args = parser.parse_args()
    noise_model = json.loads(args.noise_model.read_text())
    errors = noise_model["model"][args.variant]
    geometry = acq.SIZES[noise_model["simulation"]["size"]]
    labels = phantom.build_labels(geometry.t1w_shape, geometry.t1w_voxel_mm)
    volumes = phantom.region_volumes(labels, geometry.t1w_voxel_mm)
    records, regions, started = [], [], time.perf_counter()
    for seed in range(args.seeds):
        values, madrs, subjects = simulate_cohort(seed, geometry, volumes)
        noisy = add_noise(values, errors, seed)
        for scale in SCALES:
            with tempfile.TemporaryDirectory() as tmp:
                truth = group_tables(Path(tmp) / "truth", values, scale, madrs, subjects,
                                     volumes)
                measured = group_tables(Path(tmp) / "noisy", noisy, scale, madrs, subjects,
                                        volumes)
            got = evaluate(measured, truth, scale, seed)
            records += got[0]
            regions += got[1]
        print(f"seed {seed} done ({time.perf_counter() - started:.0f} s)", flush=True)
    table, power = pd.DataFrame(records), power_table(pd.DataFrame(regions))
    verdict = done_when(power)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"noise_model": str(args.noise_model), "variant": args.variant,
                                    "errors": errors,
                                    "seeds": args.seeds, "records": records,
                                    "planted_effects": power.to_dict("records"),
                                    "done_when": verdict.to_dict("records")}, indent=1))
    summary = table.groupby(["scale", "analysis", "contrast"]).agg(
        planted=("n_planted", "sum"), detected=("detected", "sum"),
        covered=("covered_planted", "sum"), null=("n_null", "sum"),
        null_flagged=("null_flagged", "sum"), discoveries=("discoveries", "sum"),
        seeds_with_false=("null_flagged", lambda x: int((x > 0).sum())))
    table["fdp"] = table["null_flagged"] / table["discoveries"].clip(lower=1)
    summary["mean_fdp"] = table.groupby(["scale", "analysis", "contrast"])["fdp"].mean()
    pd.set_option("display.width", 200)
    print(summary.to_string())
    print(power.round(3).to_string())
    print(verdict.round(3).to_string())
    print(f"Done-when: {int(verdict['all_seeds'].sum())} of {len(verdict)} planted effects "
          f"detected in every seed")
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
