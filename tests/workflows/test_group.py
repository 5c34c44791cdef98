"""Group level on a small seeded cohort with planted effects.

Planted: patients' cortex 10% below controls at baseline (noise SD 3%); under ketamine the
cortex rises 8% (placebo 0%), and the MADRS change is −1.5 points per % of cortical change;
the region ``null`` has no effect anywhere. Every statistic is recomputed here with
scipy/statsmodels directly on the same values (tolerance 1e-5 relative: the tables store
6 significant digits). The same cohort is written with its MADRS scores in each of the three
symptom layouts (per-subject ``sessions.tsv``, long and wide ``phenotype/`` tables).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats
from statsmodels.stats.multitest import multipletests

from ketpet_bids.bids.naming import output_path
from ketpet_bids.core.stats import hedges_g
from ketpet_bids.errors import InputError
from ketpet_bids.workflows.group import (
    STATS_COLUMNS,
    infer_spec,
    load_group_spec,
    parse_entities,
    read_symptom_scores,
    run_group,
)

REGIONS = ["cortex", "null", "putamen", "thalamus"]
RTOL = 1e-5
LAYOUTS = ("sessions", "long", "wide")


def _cohort(root, seed=7, layout="long"):
    """Write a BIDS dir + participant outputs (scores in ``layout``); return the truth used."""
    rng = np.random.default_rng(seed)
    bids, out = root / "bids", root / "out"
    n_pat, n_con = 16, 18
    ids = [f"{i:02d}" for i in range(1, n_pat + n_con + 1)]
    group = ["patient"] * n_pat + ["control"] * n_con
    arm = ["ketamine", "placebo"] * (n_pat // 2) + ["n/a"] * n_con
    participants = pd.DataFrame({"participant_id": [f"sub-{s}" for s in ids], "group": group,
                                 "arm": arm, "age": rng.uniform(20, 60, len(ids)).round(1),
                                 "sex": rng.choice(["F", "M"], len(ids))})
    bids.mkdir()
    participants.to_csv(bids / "participants.tsv", sep="\t", index=False)
    values, madrs = [], []
    for i, sub in enumerate(ids):
        patient = group[i] == "patient"
        base = 1.0 + 0.002 * (participants["age"][i] - 40) + rng.normal(0, 0.03, len(REGIONS))
        base[0] -= 0.10 * patient
        sessions = {"baseline": base}
        if patient and sub != "03":  # sub-03 has no post scan
            change_pct = (8.0 if arm[i] == "ketamine" else 0.0) + rng.normal(0, 2.0)
            post = base * (1 + rng.normal(0, 0.01, len(REGIONS)))
            post[0] = base[0] * (1 + change_pct / 100)
            sessions["post"] = post
            score0 = rng.uniform(25, 35)
            score1 = score0 - 1.5 * change_pct + rng.normal(0, 2.0)
            madrs += [(sub, "baseline", score0), (sub, "post", score1 if sub != "05" else None)]
        for ses, vals in sessions.items():
            (bids / f"sub-{sub}" / f"ses-{ses}").mkdir(parents=True)
            src = f"sub-{sub}_ses-{ses}_trc-K2"
            for pvc, factor in ((None, 1.0), ("gtm", 1.2)):
                path = out / output_path("kinpar", subject=sub, session=ses, src=src,
                                         atlas="sim", pvc=pvc, model="suvr")
                path.parent.mkdir(parents=True, exist_ok=True)
                pd.DataFrame({"region": REGIONS, "SUVR": vals * factor, "r2": np.nan,
                              "aic": np.nan, "n_frames_used": 4}).to_csv(
                    path, sep="\t", index=False, na_rep="n/a", float_format="%.10g")
            values += [{"subject": sub, "session": ses, "region": r, "value": v}
                       for r, v in zip(REGIONS, vals, strict=True)]
    madrs = pd.DataFrame(madrs, columns=["subject", "session", "madrs"])
    _write_scores(bids, madrs, layout)
    return bids, out, participants.set_index(participants["participant_id"].str[4:]), \
        pd.DataFrame(values), madrs


def _write_scores(bids, madrs, layout):
    """Write ``madrs`` (``subject session madrs``; None = n/a) in one symptom layout.

    ``sessions``: every subject's ``sessions.tsv`` lists its sessions with a numeric
    ``weight_kg`` that is not a score; only subjects with scores have a ``madrs`` column.
    """
    if layout == "sessions":
        for sub_dir in sorted(bids.glob("sub-*")):
            sessions = sorted(p.name for p in sub_dir.glob("ses-*"))
            table = pd.DataFrame({"session_id": sessions, "weight_kg": 70.0 + len(sessions)})
            mine = madrs[madrs["subject"] == sub_dir.name[4:]]
            if len(mine):
                table["madrs"] = table["session_id"].str[4:].map(
                    mine.set_index("session")["madrs"])
            table.to_csv(sub_dir / f"{sub_dir.name}_sessions.tsv", sep="\t", index=False,
                         na_rep="n/a")
        return
    (bids / "phenotype").mkdir()
    if layout == "long":
        table = pd.DataFrame({"participant_id": "sub-" + madrs["subject"],
                              "session_id": "ses-" + madrs["session"], "madrs": madrs["madrs"]})
    else:
        table = madrs.pivot(index="subject", columns="session", values="madrs").add_prefix(
            "madrs_").reset_index()
        table.insert(0, "participant_id", "sub-" + table.pop("subject"))
    table.to_csv(bids / "phenotype" / "madrs.tsv", sep="\t", index=False, na_rep="n/a")


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory):
    """The same cohort with its scores in each layout: ``{layout: (result, tables, truth…)}``."""
    runs = {}
    for layout in LAYOUTS:
        bids, out, participants, values, madrs = _cohort(tmp_path_factory.mktemp(layout),
                                                         layout=layout)
        result = run_group(out, bids)
        tables = {p.name: pd.read_csv(p, sep="\t", keep_default_na=False, na_values=["n/a"])
                  for p in result.stats_files}
        runs[layout] = result, tables, participants, values, madrs
    return runs


@pytest.fixture(scope="module")
def cohort(cohorts):
    return cohorts["sessions"]


def _table(tables, analysis, contrast):
    t = tables[f"analysis-{analysis}_meas-SUVR+pvcnone_stats.tsv"]
    return t[t["contrast"] == contrast].set_index("region").loc[REGIONS]


def test_parse_entities_without_session_or_pvc():
    assert parse_entities("sub-7_trc-FDG_seg-aseg_model-suv_kinpar.tsv") == {
        "sub": "7", "trc": "FDG", "seg": "aseg", "model": "suv", "suffix": "kinpar"}


def test_inferred_spec_finds_the_scores_in_each_layout_and_says_where(cohorts):
    tables = {"sessions": "sub-*/sub-*_sessions.tsv", "long": "phenotype/madrs.tsv",
              "wide": "phenotype/madrs.tsv"}
    for layout, (result, *_) in cohorts.items():
        assert result.spec == {"group_column": "group", "patient_label": "patient",
                               "control_label": "control", "arm_column": "arm",
                               "covariates": ["age", "sex"], "baseline_session": "baseline",
                               "post_session": "post", "symptom_column": "madrs",
                               "symptom_layout": layout, "symptom_table": tables[layout]}
        assert f"symptoms: 'madrs' per session from {tables[layout]} ({layout} layout)" in \
            result.notes


def test_files_and_columns(cohort):
    _, tables, *_ = cohort
    assert sorted(tables) == sorted(f"analysis-{a}_meas-SUVR+pvc{p}_stats.tsv"
                                    for a in ("baseline", "change", "symptoms")
                                    for p in ("gtm", "none"))
    assert all(list(t.columns) == STATS_COLUMNS for t in tables.values())


def test_baseline_matches_statsmodels_and_detects_the_planted_difference(cohort):
    _, tables, participants, values, _ = cohort
    table = _table(tables, "baseline", "patient-control")
    base = values[values["session"] == "baseline"].pivot(index="subject", columns="region",
                                                         values="value")
    design = participants.loc[base.index]
    patient = (design["group"] == "patient").to_numpy()
    x = sm.add_constant(np.column_stack([patient.astype(float), design["age"],
                                         (design["sex"] == "M").astype(float)]))
    for region in REGIONS:
        fit = sm.OLS(base[region].to_numpy(), x).fit()
        row = table.loc[region]
        np.testing.assert_allclose(
            [row.estimate, row.ci_low, row.ci_high, row.statistic, row.p, row.effect_size],
            [fit.params[1], *fit.conf_int()[1], fit.tvalues[1], fit.pvalues[1],
             hedges_g(base[region][patient].to_numpy(), base[region][~patient].to_numpy())[0]],
            rtol=RTOL)
        assert row.n == 34
    np.testing.assert_allclose(table["q_fdr"], multipletests(table["p"], method="fdr_bh")[1],
                               rtol=RTOL)
    assert table.loc["cortex", "q_fdr"] < 0.05
    assert table.loc["cortex", "ci_low"] < -0.10 < table.loc["cortex", "ci_high"]
    assert table.loc["null", "q_fdr"] > 0.05
    welch = _table(tables, "baseline", "patient-control:welch")
    ref = stats.ttest_ind(base["cortex"][patient], base["cortex"][~patient], equal_var=False)
    assert welch.loc["cortex", "statistic"] == pytest.approx(ref.statistic, rel=RTOL)


def test_change_matches_ttest_rel_and_reports_the_missing_post_scan(cohort):
    result, tables, participants, values, _ = cohort
    wide = values.pivot_table(index="subject", columns=["session", "region"], values="value")
    for arm in ("ketamine", "placebo"):
        table = _table(tables, "change", f"post-baseline:{arm}")
        members = [s for s in participants.index[participants["arm"] == arm] if s != "03"]
        for region in REGIONS:
            before = wide.loc[members, ("baseline", region)]
            after = wide.loc[members, ("post", region)]
            ref = stats.ttest_rel(after, before)
            row = table.loc[region]
            np.testing.assert_allclose([row.estimate, row.statistic, row.p, row.ci_low,
                                        row.ci_high],
                                       [(after - before).mean(), ref.statistic, ref.pvalue,
                                        *ref.confidence_interval()], rtol=RTOL)
            assert row.n == len(members)
    assert _table(tables, "change", "post-baseline:ketamine").loc["cortex", "q_fdr"] < 0.05
    assert _table(tables, "change", "post-baseline:ketamine").loc["null", "q_fdr"] > 0.05
    assert _table(tables, "change", "post-baseline:placebo").loc["cortex", "q_fdr"] > 0.05
    assert result.excluded["no 'post' scan"] == ["03"]
    assert any("change (ketamine): 1 of 8 subjects left out (no 'post' scan): sub-03" == n
               for n in result.notes)


def test_symptom_correlation_is_the_same_from_every_layout_and_matches_scipy(cohorts):
    reference = None
    for layout, (result, tables, _, values, madrs) in cohorts.items():
        wide = values.pivot_table(index="subject", columns=["session", "region"],
                                  values="value")
        score = madrs.pivot(index="subject", columns="session", values="madrs")
        used = [s for s in score.index if s not in ("03", "05")]
        symptom = (score.loc[used, "post"] - score.loc[used, "baseline"]).astype(float)
        pear = _table(tables, "symptoms", "pearson")
        spear = _table(tables, "symptoms", "spearman")
        for region in REGIONS:
            change = wide.loc[used, ("post", region)] - wide.loc[used, ("baseline", region)]
            ref = stats.pearsonr(change, symptom)
            ci = ref.confidence_interval()
            np.testing.assert_allclose(
                [pear.loc[region, c] for c in ("estimate", "p", "ci_low", "ci_high")],
                [ref.statistic, ref.pvalue, ci.low, ci.high], rtol=RTOL, err_msg=layout)
            ref_s = stats.spearmanr(change, symptom)
            np.testing.assert_allclose([spear.loc[region, "estimate"], spear.loc[region, "p"]],
                                       [ref_s.statistic, ref_s.pvalue], rtol=RTOL,
                                       err_msg=layout)
            assert pear.loc[region, "n"] == len(used) == 14
        assert pear.loc["cortex", "q_fdr"] < 0.05 and pear.loc["cortex", "estimate"] < -0.5
        assert pear.loc["null", "q_fdr"] > 0.05
        assert result.excluded["no symptom score at both sessions"] == ["05"]
        assert ("symptoms: 1 of 16 subjects left out (no symptom score at both sessions): "
                "sub-05") in result.notes
        both = pd.concat([pear, spear])
        if reference is None:
            reference = both
        pd.testing.assert_frame_equal(both, reference)  # identical, not merely close


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    from ketpet_bids.sim import simulate_study

    return simulate_study(tmp_path_factory.mktemp("sim") / "bids", n_patients=2,
                          n_controls=2, seed=1)


def test_simulated_dataset_scores_are_found_in_sessions_tsv(simulated, tmp_path):
    """The simulator writes MADRS both to sessions.tsv and a wide phenotype table: the spec
    prefers sessions.tsv, and both give the simulator's truth exactly (integer scores)."""
    spec = infer_spec(simulated)
    assert (spec["symptom_column"], spec["symptom_layout"], spec["symptom_table"],
            spec["baseline_session"], spec["post_session"]) == (
        "madrs", "sessions", "sub-*/sub-*_sessions.tsv", "baseline", "post")
    truth = pd.read_csv(simulated / "sourcedata" / "truth" / "cohort.tsv", sep="\t",
                        na_values=["n/a"], keep_default_na=False)
    expected = truth.set_index(truth["participant_id"].str[4:].rename("subject"))[
        ["madrs_baseline", "madrs_post"]].set_axis(["baseline", "post"], axis=1).astype(float)
    assert expected.notna().sum().to_dict() == {"baseline": 4, "post": 2}
    scores = read_symptom_scores(simulated, spec)[["baseline", "post"]]
    pd.testing.assert_frame_equal(scores, expected, check_names=False)
    spec_file = tmp_path / "spec.yml"
    spec_file.write_text("symptom_layout: wide\n")
    wide_spec = load_group_spec(spec_file, simulated)
    assert (wide_spec["symptom_column"], wide_spec["symptom_table"]) == (
        "madrs", "phenotype/madrs.tsv")
    pd.testing.assert_frame_equal(read_symptom_scores(simulated, wide_spec)[
        ["baseline", "post"]], expected, check_names=False)
    spec_file.write_text("symptom_column: hamd\n")
    with pytest.raises(InputError, match="no symptom table matches.*hamd.*sessions: madrs"):
        load_group_spec(spec_file, simulated)


def test_group_spec_yaml_overrides_and_rejects_unknown_keys(tmp_path):
    bids = tmp_path / "b"
    bids.mkdir()
    pd.DataFrame({"participant_id": ["sub-1"], "dx": ["MDD"]}).to_csv(
        bids / "participants.tsv", sep="\t", index=False)
    assert infer_spec(bids)["group_column"] == "dx"
    spec_file = tmp_path / "spec.yml"
    spec_file.write_text("control_label: HC\ncovariates: []\n")
    spec = load_group_spec(spec_file, bids)
    assert (spec["control_label"], spec["covariates"], spec["patient_label"]) == ("HC", [],
                                                                                   "MDD")
    spec_file.write_text("groups: x\n")
    with pytest.raises(InputError, match="unknown keys"):
        load_group_spec(spec_file, bids)


def test_missing_covariate_and_unknown_group_are_counted_not_dropped_silently(tmp_path):
    bids, out, *_ = _cohort(tmp_path)
    table = pd.read_csv(bids / "participants.tsv", sep="\t", dtype=str)
    table.loc[table["participant_id"] == "sub-20", "age"] = "n/a"
    table.loc[table["participant_id"] == "sub-21", "group"] = "n/a"
    table.to_csv(bids / "participants.tsv", sep="\t", index=False)
    result = run_group(out, bids)
    assert result.excluded["missing covariate"] == ["20"]
    assert result.excluded["no patient/control group"] == ["21"]
    baseline = pd.read_csv(out / "group" / "analysis-baseline_meas-SUVR+pvcnone_stats.tsv",
                           sep="\t", keep_default_na=False)
    assert (baseline["n"] == 32).all()
