"""Planted-effect detection of the group level on cohorts with the study's shape, 20 seeds.

Each seed draws the ``k2-ketamine`` cohort (34 patients: ketamine/placebo, 49 controls) with
the simulator's own code (``ketpet_bids.sim.cohort`` and ``simulate_scan_truth``, the same
random streams as ``simulate_study(..., preset="k2-ketamine", seed=seed)``), takes each scan's
TRUE regional SUVR and VT, and writes participant-level ``_kinpar.tsv`` tables (seg-sim
regions) after a measurement-noise model instead of running the imaging pipeline (117 scans
× 20 seeds would take hours):

    measured = true × (1 + CoV·ε),  ε ~ N(0, 1) independent per scan and region,
    CoV = 4% (``--cov``), 8% for the habenula nuclei (``--cov-small``).

The 4% is an assumption within the 3–5% range the brief names for regional test–retest
variability of PET outcome measures; the habenula, tens of mm³ and far below PET resolution,
is given twice that. (This benchmark does not claim a literature value for [11C]K-2.)

The group level then runs twice per seed: on the measured tables, and on the noise-free true
tables of the same subjects, whose estimates are the cohort's true effects ("sample truth").
Recorded per seed and analysis: planted effects detected at q < 0.05, 95% CIs covering the
sample truth (and, for the VT percent change, the planted population value +8% / −10%),
and null regions flagged vs the nominal FDR.

Run: ``nice -n 10 /work/venv/bin/python benchmarks/group_planted.py --seeds 20``
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

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
from ketpet_bids.sim.study import _KINETICS, simulate_scan_truth
from ketpet_bids.workflows.group import run_group

ATLAS = [r.name for r in phantom.REGIONS if r.in_atlas]
CORTICAL = list(phantom.CORTICAL)
SPEC = cohort_spec("k2-ketamine")
GROUP_SPEC = {"prediction": False, "covariates": ["age", "sex"]}


def planted(analysis: str, contrast: str) -> tuple[set[str], set[str]]:
    """(regions with a planted effect, regions planted null) for one analysis/contrast.

    The pooled change-vs-symptom correlation is planted for the cortex; the habenula is
    excluded from its nulls (its change differs by arm, so it correlates with symptoms through
    the arm). Under whole-brain SUVR normalisation no region is null for the ketamine or group
    contrasts (the reference moves): those nulls are judged on VT only.
    """
    treated = set(CORTICAL) | set(HABENULA)
    if analysis == "baseline":
        effect = set(SPEC.group_effect)
    elif contrast.startswith("interaction") or contrast.endswith(":ketamine") or \
            contrast.endswith(":ketamine:percent"):
        effect = treated
    elif analysis == "change":
        effect = set()
    else:
        effect = set(CORTICAL)
    nulls = set(ATLAS) - effect - (set(HABENULA) if analysis == "symptoms" else set())
    return effect, nulls


def simulate_cohort(seed: int, volumes: dict[str, float]) -> tuple[pd.DataFrame, dict, list]:
    """True SUVR/VT per subject, session and region; MADRS; subjects (as simulate_study)."""
    geometry = acq.SIZES["tiny"]
    starts, ends = geometry.frame_times()
    subjects = draw_subjects(SPEC, SPEC.n_patients, SPEC.n_controls, seed)
    rows, truths = [], {}
    for i, s in enumerate(subjects):
        for j, ses in enumerate(s.sessions):
            truth = simulate_scan_truth(s, ses, SPEC, rng_for(seed, _KINETICS, i, j), starts,
                                        ends, volumes)
            truths[(s.label, ses)] = truth
            rows += [{"subject": s.label, "session": ses, "region": r, "SUVR": truth.suvr[r],
                      "VT": truth.params[r].VT} for r in ATLAS]
    change = {s.label: float(np.mean([truths[(s.label, "post")].suvr[r]
                                      / truths[(s.label, "baseline")].suvr[r] - 1
                                      for r in CORTICAL]))
              for s in subjects if "post" in s.sessions}
    return pd.DataFrame(rows), assign_madrs(subjects, change, SPEC, seed), subjects


def write_dataset(root: Path, values: pd.DataFrame, madrs: dict, subjects: list) -> tuple:
    """BIDS skeleton (participants, sessions.tsv with MADRS) and the kinpar tables."""
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
    for (sub, ses), table in values.groupby(["subject", "session"]):
        src = f"sub-{sub}_ses-{ses}_trc-K2"
        for model, param in (("suvr", "SUVR"), ("logan", "VT")):
            path = out / output_path("kinpar", subject=sub, session=ses, src=src, atlas="sim",
                                     model=model)
            path.parent.mkdir(parents=True, exist_ok=True)
            table[["region", param]].to_csv(path, sep="\t", index=False, float_format="%.8g")
    return bids, out


def group_tables(root: Path, values: pd.DataFrame, madrs: dict, subjects: list
                 ) -> pd.DataFrame:
    bids, out = write_dataset(root, values, madrs, subjects)
    result = run_group(out, bids, spec=GROUP_SPEC)
    return pd.concat([pd.read_csv(p, sep="\t", keep_default_na=False, na_values=["n/a"])
                      for p in result.stats_files], ignore_index=True)


def add_noise(values: pd.DataFrame, cov: float, cov_small: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng([seed, 99])
    noisy = values.copy()
    scale = np.where(noisy["region"].isin(HABENULA), cov_small, cov)
    for column in ("SUVR", "VT"):
        noisy[column] = noisy[column] * (1 + scale * rng.standard_normal(len(noisy)))
    return noisy


def evaluate(measured: pd.DataFrame, truth: pd.DataFrame, seed: int) -> list[dict]:
    """One record per (measure, analysis, contrast) of one seed."""
    keys = ["measure", "analysis", "contrast", "region"]
    both = measured.merge(truth[keys + ["estimate"]], on=keys, suffixes=("", "_truth"))
    records = []
    for (measure, analysis, contrast), rows in both.groupby(keys[:3]):
        if contrast.endswith(":welch") or (analysis == "symptoms" and contrast != "pearson"
                                           and contrast != "partial"):
            continue
        effect, nulls = planted(analysis, contrast)
        if measure == "SUVR" and not contrast.startswith("post-baseline:placebo"):
            nulls = set()  # whole-brain normalisation: see planted()
        rows = rows.set_index("region")
        hit = rows["q_fdr"] < 0.05
        covered = (rows["ci_low"] <= rows["estimate_truth"]) & (
            rows["estimate_truth"] <= rows["ci_high"])
        record = {"seed": seed, "measure": measure, "analysis": analysis, "contrast": contrast,
                  "n_planted": len(effect), "detected": int(hit[list(effect)].sum()),
                  "covered_planted": int(covered[list(effect)].sum()),
                  "covered_all": int(covered.sum()), "n_regions": len(rows),
                  "n_null": len(nulls), "null_flagged": int(hit[list(nulls)].sum()),
                  "discoveries": int(hit.sum()),
                  "flagged_not_planted": ",".join(sorted(set(rows.index[hit]) - effect))}
        if measure == "VT" and contrast == "post-baseline:ketamine:percent":
            population = {r: 8.0 for r in CORTICAL} | {r: -10.0 for r in HABENULA}
            record["covered_population"] = int(sum(
                rows.loc[r, "ci_low"] <= v <= rows.loc[r, "ci_high"] for r, v in
                population.items()))
        records.append(record)
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--cov", type=float, default=0.04)
    parser.add_argument("--cov-small", type=float, default=0.08)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/group_planted.json"))
    args = parser.parse_args()
    geometry = acq.SIZES["tiny"]
    labels = phantom.build_labels(geometry.t1w_shape, geometry.t1w_voxel_mm)
    volumes = phantom.region_volumes(labels, geometry.t1w_voxel_mm)
    records, started = [], time.perf_counter()
    for seed in range(args.seeds):
        values, madrs, subjects = simulate_cohort(seed, volumes)
        with tempfile.TemporaryDirectory() as tmp:
            truth = group_tables(Path(tmp) / "truth", values, madrs, subjects)
            measured = group_tables(Path(tmp) / "noisy",
                                    add_noise(values, args.cov, args.cov_small, seed), madrs,
                                    subjects)
        records += evaluate(measured, truth, seed)
        print(f"seed {seed} done ({time.perf_counter() - started:.0f} s)", flush=True)
    table = pd.DataFrame(records)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"cov": args.cov, "cov_small": args.cov_small,
                                    "seeds": args.seeds, "records": records}, indent=1))
    summary = table.groupby(["measure", "analysis", "contrast"]).agg(
        planted=("n_planted", "first"), detected=("detected", "sum"),
        covered=("covered_planted", "sum"), null=("n_null", "first"),
        null_flagged=("null_flagged", "sum"), discoveries=("discoveries", "sum"),
        seeds_with_false=("null_flagged", lambda x: int((x > 0).sum())))
    summary["fdp"] = summary["null_flagged"] / summary["discoveries"].clip(lower=1)
    print(summary.to_string())
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
