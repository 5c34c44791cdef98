"""Speed of the group level: 1,000 participants × 100 regions.

Writes a synthetic derivatives tree (400 patients with baseline and post scans, 200 per arm,
600 controls; one ``_kinpar.tsv`` with 100 regions per scan, 1,400 tables; one
``morph.tsv`` of region volumes per subject), a ``participants.tsv`` (group, arm, age, sex)
and per-subject ``sessions.tsv`` with MADRS, then times ``run_group`` (the inferred
volume-weighted composite ``cortex`` of the 10 ``ctx-`` regions, so 101 regions; every
regional analysis: baseline OLS + Welch, paired absolute and
percent change per arm, mixed-model interaction, Pearson/Spearman/partial pooled and per arm;
reading the tables and writing the outputs included). Response prediction is timed
separately (``--prediction-permutations``), since its cost scales with the permutations.

Run: ``nice -n 19 /work/venv/bin/python -W ignore benchmarks/group_speed.py``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ketpet_bids.bids.naming import output_path
from ketpet_bids.workflows.group import run_group


def write_cohort(root: Path, n_patients: int, n_controls: int, n_regions: int, seed: int = 0
                 ) -> tuple[Path, Path]:
    """Synthetic BIDS skeleton and participant tables; returns (bids_dir, output_dir)."""
    rng = np.random.default_rng(seed)
    bids, out = root / "bids", root / "out"
    n = n_patients + n_controls
    labels = [f"{i:04d}" for i in range(1, n + 1)]
    patient = np.arange(n) < n_patients
    arm = np.where(patient, np.where(np.arange(n) % 2 == 0, "ketamine", "placebo"), "n/a")
    bids.mkdir(parents=True)
    pd.DataFrame({"participant_id": [f"sub-{s}" for s in labels],
                  "group": np.where(patient, "patient", "control"), "arm": arm,
                  "age": rng.integers(18, 70, n), "sex": rng.choice(["F", "M"], n)}).to_csv(
        bids / "participants.tsv", sep="\t", index=False)
    regions = [f"{'ctx-' if r < 10 else ''}region{r:03d}" for r in range(n_regions)]
    for i, sub in enumerate(labels):
        morph = out / output_path("morph", subject=sub, atlas="sim")
        morph.parent.mkdir(parents=True)
        pd.DataFrame({"index": range(1, n_regions + 1), "name": regions,
                      "volume_mm3": rng.uniform(500, 20000, n_regions)}).to_csv(
            morph, sep="\t", index=False)
        base = rng.lognormal(0.3, 0.1) * rng.lognormal(0.0, 0.05, n_regions)
        sessions = {"baseline": base}
        if patient[i]:
            effect = 1.08 if arm[i] == "ketamine" else 1.0
            sessions["post"] = base * effect * rng.lognormal(0.0, 0.04, n_regions)
        for ses, values in sessions.items():
            (bids / f"sub-{sub}" / f"ses-{ses}").mkdir(parents=True)
            path = out / output_path("kinpar", subject=sub, session=ses,
                                     src=f"sub-{sub}_ses-{ses}_trc-K2", atlas="sim",
                                     model="suvr")
            path.parent.mkdir(parents=True, exist_ok=True)
            pd.DataFrame({"region": regions, "SUVR": values}).to_csv(path, sep="\t",
                                                                    index=False)
        madrs = [30.0, 20.0 - 60 * (sessions["post"][:10].mean() / base[:10].mean() - 1)
                 + rng.normal(0, 4)] if patient[i] else [3.0]
        pd.DataFrame({"session_id": [f"ses-{s}" for s in sessions],
                      "madrs": np.round(madrs)}).to_csv(
            bids / f"sub-{sub}" / f"sub-{sub}_sessions.tsv", sep="\t", index=False)
    return bids, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=400)
    parser.add_argument("--controls", type=int, default=600)
    parser.add_argument("--regions", type=int, default=100)
    parser.add_argument("--prediction-permutations", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        bids, out = write_cohort(Path(tmp), args.patients, args.controls, args.regions)
        t1 = time.perf_counter()
        result = run_group(out, bids, spec={"prediction": False})
        t2 = time.perf_counter()
        rows = sum(len(pd.read_csv(p, sep="\t")) for p in result.stats_files)
        print(f"write inputs: {t1 - t0:.1f} s")
        print(f"run_group without prediction: {t2 - t1:.1f} s "
              f"({len(result.stats_files)} tables, {rows} rows)")
        if args.prediction_permutations:
            t3 = time.perf_counter()
            run_group(out, bids, spec={"prediction": True,
                                       "n_permutations": args.prediction_permutations})
            print(f"run_group with prediction ({args.prediction_permutations} permutations): "
                  f"{time.perf_counter() - t3:.1f} s")


if __name__ == "__main__":
    main()
