"""Planted cohort effects: arms, treatment effects, symptom correlation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from ketpet_bids.sim import truth_path
from ketpet_bids.sim.cohort import (
    K2_PARAMS,
    PRESETS,
    assign_madrs,
    draw_subjects,
    rng_for,
    session_parameters,
)
from ketpet_bids.sim.phantom import CORTICAL


def test_arms_balanced_and_effects_planted():
    """34 patients → 17 ketamine / 17 placebo; a ketamine patient's post VT equals baseline VT
    × (treatment × session) factor ratio exactly; placebo has no treatment factor."""
    spec = PRESETS["k2-ketamine"]
    subjects = draw_subjects(spec, spec.n_patients, spec.n_controls, seed=1)
    arms = [s.arm for s in subjects]
    assert arms.count("ketamine") == arms.count("placebo") == 17
    assert arms.count("n/a") == 49
    effects = np.array([np.mean([s.treatment[r] for r in CORTICAL])
                        for s in subjects if s.arm == "ketamine"])
    assert abs(effects.mean() - 0.08) < 0.02  # 17 draws of SD 0.03: SE 0.007
    hab = np.array([s.treatment["habenula-left"] for s in subjects if s.arm == "ketamine"])
    assert abs(hab.mean() + 0.10) < 0.02
    ketamine = next(s for s in subjects if s.arm == "ketamine")
    base, fb = session_parameters(ketamine, "baseline", spec, rng_for(1, 9))
    post, fp = session_parameters(ketamine, "post", spec, rng_for(1, 10))
    for region in CORTICAL:
        ratio = post[region].VT / base[region].VT
        expected = (fp[region]["session"] * fp[region]["treatment"]
                    / fb[region]["session"])
        assert np.isclose(ratio, expected, rtol=1e-9)
        assert np.isclose(fp[region]["treatment"], 1 + ketamine.treatment[region])
        group = 1 + spec.group_effect.get(region, 0.0)
        assert np.isclose(base[region].VT, K2_PARAMS[region].VT * fb[region]["subject"] * group
                          * fb[region]["session"], rtol=1e-9)
    placebo = next(s for s in subjects if s.arm == "placebo")
    _, f = session_parameters(placebo, "post", spec, rng_for(1, 11))
    assert all(v["treatment"] == 1.0 for v in f.values())


def test_madrs_change_correlates_with_cortical_change():
    """Δ MADRS vs cortical change: r = −0.6 up to integer rounding (|error| < 0.05)."""
    spec = PRESETS["k2-ketamine"]
    subjects = draw_subjects(spec, 34, 5, seed=2)
    rng = np.random.default_rng(0)
    change = {s.label: float(rng.normal(0.04, 0.04)) for s in subjects if s.group == "patient"}
    scores = assign_madrs(subjects, change, spec, seed=2)
    delta = [scores[k]["post"] - scores[k]["baseline"] for k in change]
    r = np.corrcoef(delta, list(change.values()))[0, 1]
    assert abs(r + 0.6) < 0.05
    base = [scores[k]["baseline"] for k in change]
    assert 25 < np.mean(base) < 35


def test_cohort_truth_files(preset_study):
    """cohort.tsv/json record arms, planted effects and true changes consistent with kinpar.

    The true cortical change is the volume-weighted composite's (the group level's ``cortex``).
    """
    table = pd.read_csv(preset_study / truth_path("cohort_tsv"), sep="\t")
    doc = json.loads((preset_study / truth_path("cohort_json")).read_text())
    assert doc["spec"]["treatment_effect"]["frontal"] == 0.08
    for row in table[table["group"] == "patient"].itertuples():
        label = row.participant_id[4:]
        kp = {ses: pd.read_csv(preset_study / truth_path("kinpar", label, ses), sep="\t")
              .set_index("region") for ses in ("baseline", "post")}
        volumes = pd.Series(doc["region_volumes_mm3"])[list(CORTICAL)]
        suvr = ((kp["post"].loc[list(CORTICAL), "SUVR"] * volumes).sum()
                / (kp["baseline"].loc[list(CORTICAL), "SUVR"] * volumes).sum() - 1)
        assert np.isclose(row.true_cortical_suvr_change, suvr, rtol=1e-5)
        madrs = pd.read_csv(preset_study / "sub-" f"{label}" / f"sub-{label}_sessions.tsv",
                            sep="\t")
        assert row.madrs_change == madrs["madrs"].iloc[1] - madrs["madrs"].iloc[0]
        planted = doc["subjects"][label]["treatment_effect"]
        assert (row.arm == "ketamine") == bool(planted)
