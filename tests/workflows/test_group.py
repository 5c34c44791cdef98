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

from ketpet_bids.bids.naming import group_measure, group_stats_path, output_path
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
VT = "trc-K2_model-logan_meas-VT"  # measure label of the voxelwise test's maps
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


def _measure(pvc=None):
    return group_measure("SUVR", trc="K2", seg="sim", pvc=pvc, model="suvr")


def _table(tables, analysis, contrast):
    t = tables[group_stats_path(analysis, _measure()).name]
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
                               "placebo_label": "placebo",
                               "covariates": ["age", "sex"], "baseline_session": "baseline",
                               "post_session": "post", "symptom_column": "madrs",
                               "symptom_layout": layout, "symptom_table": tables[layout],
                               "composites": {}, "key_regions": None, "prediction": True,
                               "responder_threshold": 0.5, "cv_folds": 5,
                               "n_permutations": 1000, "seed": 0}
        assert f"symptoms: 'madrs' per session from {tables[layout]} ({layout} layout)" in \
            result.notes


def test_files_and_columns(cohort):
    _, tables, *_ = cohort
    assert sorted(tables) == sorted(f"trc-K2_seg-sim{p}_model-suvr_analysis-{a}_meas-SUVR"
                                    "_stats.tsv"
                                    for a in ("baseline", "change", "symptoms", "prediction")
                                    for p in ("_pvc-gtm", ""))
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
             (1 - 3 / (4 * fit.df_resid - 1)) * fit.params[1] / np.sqrt(fit.scale)],
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
    assert welch.loc["cortex", "effect_size"] == pytest.approx(hedges_g(
        base["cortex"][patient].to_numpy(), base["cortex"][~patient].to_numpy())[0], rel=RTOL)


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
    baseline = pd.read_csv(out / group_stats_path("baseline", _measure()), sep="\t",
                           keep_default_na=False)
    assert (baseline["n"] == 32).all()


def test_percent_change_and_interaction_match_scipy_and_statsmodels(cohort):
    """Percent change = ttest_1samp of 100·Δ/baseline (1e-5: 6 significant digits in the
    table). The interaction = statsmodels MixedLM (REML, random intercept) on every patient's
    rows, including sub-03 who has only a baseline scan: estimate to 1e-5, z and log p to
    2e-3 (statsmodels' SEs come from the full Hessian, see tests/core/test_stats.py)."""
    import warnings

    _, tables, participants, values, _ = cohort
    wide = values.pivot_table(index="subject", columns=["session", "region"], values="value")
    for arm in ("ketamine", "placebo"):
        table = _table(tables, "change", f"post-baseline:{arm}:percent")
        members = [s for s in participants.index[participants["arm"] == arm] if s != "03"]
        for region in REGIONS:
            before = wide.loc[members, ("baseline", region)]
            pct = 100 * (wide.loc[members, ("post", region)] - before) / before
            ref = stats.ttest_1samp(pct, 0.0)
            row = table.loc[region]
            np.testing.assert_allclose([row.estimate, row.statistic, row.p, row.ci_low,
                                        row.ci_high], [pct.mean(), ref.statistic, ref.pvalue,
                                                       *ref.confidence_interval()], rtol=RTOL)
    assert _table(tables, "change", "post-baseline:ketamine:percent").loc[
        "cortex", "ci_low"] < 8.0 < _table(tables, "change", "post-baseline:ketamine:percent"
                                           ).loc["cortex", "ci_high"]
    table = _table(tables, "change", "interaction:ketamine-placebo")
    patients = participants.index[participants["group"] == "patient"]
    long = values[values["subject"].isin(patients)]
    for region in REGIONS:
        rows = long[long["region"] == region]
        active = (participants.loc[rows["subject"], "arm"] == "ketamine").to_numpy(float)
        post = (rows["session"] == "post").to_numpy(float)
        x = np.column_stack([np.ones(len(rows)), post, active, post * active])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = sm.MixedLM(rows["value"].to_numpy(), x, groups=rows["subject"]).fit(reml=True)
        row = table.loc[region]
        assert row.estimate == pytest.approx(fit.params[3], rel=RTOL, abs=1e-7)
        if np.asarray(fit.cov_re)[0, 0] > 1e-4:  # statsmodels at an interior optimum
            np.testing.assert_allclose([row.statistic, np.log(row.p)],
                                       [fit.tvalues[3], np.log(fit.pvalues[3])], rtol=2e-3)
        assert row.n == 16
    assert table.loc["cortex", "q_fdr"] < 0.05 and table.loc["null", "q_fdr"] > 0.05


def test_partial_and_per_arm_correlations_match_statsmodels(cohort):
    """Partial r's t and p = the t and p of the change in OLS ``madrs_change ~ change + age +
    sex`` (statsmodels); per-arm Pearson = scipy on the arm's patients."""
    _, tables, participants, values, madrs = cohort
    wide = values.pivot_table(index="subject", columns=["session", "region"], values="value")
    score = madrs.pivot(index="subject", columns="session", values="madrs")
    used = [s for s in score.index if s not in ("03", "05")]
    symptom = (score.loc[used, "post"] - score.loc[used, "baseline"]).astype(float)
    design = participants.loc[used]
    cov = np.column_stack([design["age"], (design["sex"] == "M").astype(float)])
    partial = _table(tables, "symptoms", "partial")
    for region in REGIONS:
        change = (wide.loc[used, ("post", region)] - wide.loc[used, ("baseline", region)])
        fit = sm.OLS(symptom.to_numpy(), sm.add_constant(np.column_stack([change, cov]))).fit()
        np.testing.assert_allclose([partial.loc[region, "statistic"], partial.loc[region, "p"]],
                                   [fit.tvalues[1], fit.pvalues[1]], rtol=RTOL)
        for arm in ("ketamine", "placebo"):
            members = [s for s in used if participants.loc[s, "arm"] == arm]
            ref = stats.pearsonr(change[members], symptom[members])
            row = _table(tables, "symptoms", f"pearson:{arm}").loc[region]
            np.testing.assert_allclose([row.estimate, row.p], [ref.statistic, ref.pvalue],
                                       rtol=RTOL)
            assert row.n == len(members)
    assert partial.loc["cortex", "q_fdr"] < 0.05 and partial.loc["cortex", "estimate"] < -0.5


def test_prediction_table_uses_the_responders_defined_by_the_scores(cohort):
    """Responders = MADRS reduction ≥ 50% of baseline, by hand; the table's rows equal
    predict_response on the same values (same seed), with FDR across regions."""
    from ketpet_bids.core.stats import predict_response

    result, tables, _, values, madrs = cohort
    wide = values.pivot_table(index="subject", columns=["session", "region"], values="value")
    score = madrs.pivot(index="subject", columns="session", values="madrs").astype(float)
    used = sorted(s for s in score.index if s not in ("03", "05"))
    responder = ((score.loc[used, "baseline"] - score.loc[used, "post"])
                 / score.loc[used, "baseline"] >= 0.5).to_numpy()
    assert f"prediction: {responder.sum()} responders (≥ 50% reduction) of 14 patients; " \
           "5-fold CV, 1000 permutations (seed 0)" in result.notes
    table = _table(tables, "prediction", "responder:baseline+change")
    for region in REGIONS:
        before = wide.loc[used, ("baseline", region)].to_numpy()
        x = np.column_stack([before, wide.loc[used, ("post", region)].to_numpy() - before])
        ref = predict_response(x, responder, n_permutations=1000, seed=0)
        np.testing.assert_allclose(table.loc[region, ["estimate", "ci_low", "ci_high", "p"]]
                                   .to_numpy(float), [ref.estimate, ref.ci_low, ref.ci_high,
                                                      ref.p], rtol=RTOL)
    np.testing.assert_allclose(table["q_fdr"], multipletests(table["p"], method="fdr_bh")[1],
                               rtol=RTOL)


def test_scatter_figure_is_drawn_for_each_measure(cohort):
    result, *_ = cohort
    out = result.stats_files[0].parents[1]
    from ketpet_bids.bids.naming import group_figure_path

    for pvc in ("none", "gtm"):
        svg = out / group_figure_path("symptoms", _measure(pvc), "scatter")
        assert svg.stat().st_size > 0 and "cortex" in svg.read_text()


def _write_maps(out, rng, shape=(8, 9, 7), effect=0.2):
    """Synthetic MNI-space ``_mimap`` VT maps with planted blobs; return (truth masks).

    20 patients (10 per arm), 12 controls. Baseline: patients ``effect`` (20%) lower in
    ``group_blob``. Post: ketamine +``effect`` in ``change_blob``; everything else is noise
    (CoV 5% between subjects, 2% between sessions). Voxels outside the brain (the first
    x-plane) are 0 in every map and NaN in one.
    """
    import nibabel as nib

    grid = np.indices(shape)
    group_blob = (grid[0] < 3) & (grid[1] < 3)
    change_blob = (grid[0] >= 5) & (grid[0] < shape[0] - 1) & (grid[2] >= 4)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    participants = pd.DataFrame({"participant_id": [f"sub-{i:02d}" for i in range(1, 33)],
                                 "group": ["patient"] * 20 + ["control"] * 12,
                                 "arm": ["ketamine", "placebo"] * 10 + ["n/a"] * 12})
    for _, row in participants.iterrows():
        sub = row["participant_id"][4:]
        subject_map = 4.0 * (1 + 0.05 * rng.normal(size=shape))
        if row["group"] == "patient":
            subject_map = subject_map * np.where(group_blob, 1 - effect, 1.0)
        sessions = {"baseline": subject_map * (1 + 0.02 * rng.normal(size=shape))}
        if row["group"] == "patient":
            change = np.where(change_blob, 1 + effect, 1.0) if row["arm"] == "ketamine" else 1
            sessions["post"] = subject_map * change * (1 + 0.02 * rng.normal(size=shape))
        for ses, data in sessions.items():
            path = out / output_path("mimap", subject=sub, session=ses,
                                     src=f"sub-{sub}_ses-{ses}_trc-K2",
                                     space="MNI152NLin2009cAsym", model="logan", param="VT")
            path.parent.mkdir(parents=True, exist_ok=True)
            data[-1] = np.nan if sub == "07" else 0.0
            nib.save(nib.Nifti1Image(data.astype(np.float32), affine), path)
    return participants, group_blob, change_blob


def test_voxelwise_maps_find_planted_blobs_and_match_ols(tmp_path):
    """Blobs of 63 and 54 voxels in a 441-voxel mask (see :func:`_write_maps`): every
    planted voxel has q < 0.05 and p_FWE < 0.05; null voxels with
    q < 0.05 make at most 10% of the discoveries (FDR 5%; seeded); t at any voxel equals
    statsmodels OLS on that voxel."""
    import json

    import nibabel as nib

    from ketpet_bids.bids.naming import group_statmap_path
    from ketpet_bids.workflows.group import GroupResult, run_voxelwise

    rng = np.random.default_rng(3)
    out = tmp_path / "out"
    participants, group_blob, change_blob = _write_maps(out, rng)
    subjects = participants.set_index(participants["participant_id"].str[4:])
    spec = {"group_column": "group", "patient_label": "patient", "control_label": "control",
            "arm_column": "arm", "placebo_label": "placebo", "covariates": [],
            "baseline_session": "baseline", "post_session": "post", "seed": 0}
    result = GroupResult()
    written = run_voxelwise(out, subjects, spec, result, space="MNI152NLin2009cAsym",
                            n_permutations=100)
    names = {p.relative_to(out) for p in written}
    expected = {group_statmap_path("baseline", VT, "patientMinuscontrol"),
                group_statmap_path("change", VT, "postMinusbaselineKetamine"),
                group_statmap_path("change", VT, "postMinusbaselinePlacebo"),
                group_statmap_path("change", VT, "interactionKetamineMinusplacebo")}
    assert names == expected
    for rel, blob in ((group_statmap_path("baseline", VT, "patientMinuscontrol"), group_blob),
                      (group_statmap_path("change", VT, "interactionKetamineMinusplacebo"),
                       change_blob)):
        img = nib.load(out / rel)
        data = img.get_fdata()
        sidecar = json.loads((out / rel).with_name(rel.name.replace(".nii.gz", ".json"))
                             .read_text())
        assert sidecar["Volumes"] == ["t", "estimate", "p", "q_fdr", "p_fwe"]
        t, q, p_fwe = data[..., 0], data[..., 3], data[..., 4]
        assert (q[blob] < 0.05).all() and (p_fwe[blob] < 0.05).all()
        false = ((q < 0.05) & ~blob).sum()
        assert false <= 0.1 * (q < 0.05).sum()
        assert img.get_data_dtype() == np.float32
    # t of one voxel by statsmodels: baseline, voxel (0, 0, 0) in the group blob.
    base = np.array([nib.load(out / output_path(
        "mimap", subject=s, session="baseline", src=f"sub-{s}_ses-baseline_trc-K2",
        space="MNI152NLin2009cAsym", model="logan", param="VT")).get_fdata()[0, 0, 0]
        for s in subjects.index])
    fit = sm.OLS(base, sm.add_constant((subjects["group"] == "patient").to_numpy(float))).fit()
    t = nib.load(out / group_statmap_path("baseline", VT, "patientMinuscontrol")).get_fdata()
    assert t[0, 0, 0, 0] == pytest.approx(fit.tvalues[1], rel=1e-5)  # float32 storage
    assert t[0, 0, 0, 1] == pytest.approx(fit.params[1], rel=1e-5)


def _composite_dataset(root, with_morph=True):
    """6 subjects (3 patients), baseline only: SUVR of regions computed from TACs over a late
    window and a reference TAC, a k2 column, and per-subject region volumes (morph.tsv)."""
    rng = np.random.default_rng(11)
    regions = ["frontal", "insula", "thalamus", "habenula-left", "habenula-right"]
    bids, out = root / "bids", root / "out"
    bids.mkdir(parents=True)
    ids = [f"{i}" for i in range(1, 7)]
    pd.DataFrame({"participant_id": [f"sub-{s}" for s in ids],
                  "group": ["patient"] * 3 + ["control"] * 3}).to_csv(
        bids / "participants.tsv", sep="\t", index=False)
    t = np.linspace(0, 60, 61)
    late = t >= 30
    truth = {}
    for sub in ids:
        volumes = rng.uniform(100, 5000, len(regions))
        tacs = rng.uniform(1, 3, (len(regions), 1)) * (1 - np.exp(-t / rng.uniform(5, 20, (
            len(regions), 1))))
        reference = tacs.mean(axis=0) * 0.8
        suvr = tacs[:, late].mean(axis=1) / reference[late].mean()
        composite = (volumes[:2] @ tacs[:2])  / volumes[:2].sum()  # the union's TAC
        truth[sub] = {"cortex": composite[late].mean() / reference[late].mean(),
                      "habenula": (volumes[3:] @ tacs[3:])[late].mean() / volumes[3:].sum()
                      / reference[late].mean()}
        src = f"sub-{sub}_trc-K2"
        path = out / output_path("kinpar", subject=sub, src=src, atlas="sim", model="suvr")
        path.parent.mkdir(parents=True)
        pd.DataFrame({"region": regions, "SUVR": suvr, "k2": rng.uniform(0.1, 0.2, 5)}).to_csv(
            path, sep="\t", index=False, float_format="%.12g")
        if with_morph:
            morph = out / output_path("morph", subject=sub, atlas="sim")
            morph.parent.mkdir(parents=True)
            pd.DataFrame({"index": range(1, 6), "name": regions, "volume_mm3": volumes}).to_csv(
                morph, sep="\t", index=False, float_format="%.12g")
    return bids, out, truth


def test_composites_are_inferred_and_equal_the_suvr_of_the_union_curve(tmp_path):
    """The SUVR of a volume-weighted composite equals the SUVR of the union's TAC (the mean
    activity over its voxels) to 1e-9: 12 significant digits in the tables. Rate constants get
    no composite; the inferred spec names cortex and the bilateral habenula."""
    from ketpet_bids.workflows.group import GroupResult, add_composites, read_measures

    bids, out, truth = _composite_dataset(tmp_path)
    spec = infer_spec(bids, out)
    assert spec["composites"] == {"cortex": ["frontal", "insula"],
                                  "habenula": ["habenula-left", "habenula-right"]}
    result = GroupResult()
    measures = add_composites(read_measures(out, "sub-*/**/*_kinpar.tsv"), spec["composites"],
                              out, result)
    added = measures[measures["region"].isin(["cortex", "habenula"])]
    assert set(added["param"]) == {"SUVR"} and len(added) == 12
    for row in added.itertuples():
        assert row.value == pytest.approx(truth[row.subject][row.region], rel=1e-9)
    assert any("composite 'cortex' = volume-weighted mean of frontal, insula" in n
               for n in result.notes)
    # In the tables like any region: the Welch row of cortex is the difference of the means.
    run = run_group(out, bids, spec={"covariates": []})
    table = pd.read_csv(run.stats_files[0], sep="\t")
    welch = table[(table["contrast"] == "patient-control:welch") & (table["region"] == "cortex")]
    cortex = np.array([truth[s]["cortex"] for s in "123456"])
    assert welch["estimate"].iloc[0] == pytest.approx(cortex[:3].mean() - cortex[3:].mean(),
                                                      rel=1e-5)
    assert run.spec["composites"] == spec["composites"]


def test_composites_from_the_spec_without_volumes_are_unweighted_and_say_so(tmp_path):
    from ketpet_bids.workflows.group import GroupResult, add_composites, read_measures

    bids, out, _ = _composite_dataset(tmp_path, with_morph=False)
    spec_file = tmp_path / "spec.yml"
    spec_file.write_text("composites: {deep: [thalamus, habenula-left], absent: [x, y]}\n")
    spec = load_group_spec(spec_file, bids)
    assert spec["composites"] == {"deep": ["thalamus", "habenula-left"], "absent": ["x", "y"]}
    result = GroupResult()
    measures = read_measures(out, "sub-*/**/*_kinpar.tsv")
    added = add_composites(measures, spec["composites"], out, result)
    deep = added[added["region"] == "deep"].set_index("subject")["value"]
    wide = measures[measures["param"] == "SUVR"].pivot(index="subject", columns="region",
                                                       values="value")
    np.testing.assert_allclose(deep[wide.index], (wide["thalamus"] + wide["habenula-left"]) / 2,
                               rtol=1e-12)
    assert any("no morph.tsv for 6 of 6 subjects" in n for n in result.notes)
    assert any("composite 'absent': no measure has all of its regions" in n
               for n in result.notes)
    spec_file.write_text("composites: {deep: thalamus}\n")
    with pytest.raises(InputError, match="composites must map a name"):
        load_group_spec(spec_file, bids)


VOXEL_SPEC = {"group_column": "group", "patient_label": "patient", "control_label": "control",
              "arm_column": "arm", "placebo_label": "placebo", "covariates": [],
              "baseline_session": "baseline", "post_session": "post", "seed": 0}


def test_voxelwise_family_wise_error_holds_on_null_maps(tmp_path):
    """No planted effect: over 3 seeds × 4 contrasts (12 families of 7 × 9 × 7 = 441 voxels),
    max-T (40 permutations) flags a voxel at p_FWE < 0.05 in ≤ 2 families (expected 0.6;
    binomial P(≥ 3 | 12, 0.05) = 0.02). The mask drops the out-of-brain plane (0 everywhere,
    NaN in one subject)."""
    import nibabel as nib

    from ketpet_bids.workflows.group import GroupResult, run_voxelwise

    families = flagged = 0
    for seed in range(3):
        out = tmp_path / f"s{seed}"
        participants, *_ = _write_maps(out, np.random.default_rng(100 + seed), effect=0.0)
        subjects = participants.set_index(participants["participant_id"].str[4:])
        for path in run_voxelwise(out, subjects, {**VOXEL_SPEC, "seed": seed}, GroupResult(),
                                  space="MNI152NLin2009cAsym", n_permutations=40):
            data = nib.load(path).get_fdata()
            assert np.isnan(data[-1]).all() and np.isfinite(data[:-1]).all()
            families += 1
            flagged += bool((data[..., 4] < 0.05).any())
    assert families == 12 and flagged <= 2


def test_group_run_writes_statmaps_and_the_report_shows_their_slices(tmp_path):
    """``run_group(voxelwise_space=…)`` finds the maps beside the regional tables; the report
    embeds one slice view per statmap (the figure the group level drew)."""
    from ketpet_bids.reports.group import build_group_report

    bids, out, *_ = _cohort(tmp_path)
    participants, group_blob, _ = _write_maps(out, np.random.default_rng(5))
    participants.to_csv(bids / "participants.tsv", sep="\t", index=False)
    result = run_group(out, bids, spec={**VOXEL_SPEC, "symptom_column": None,
                                        "prediction": False},
                       voxelwise_space="MNI152NLin2009cAsym")
    assert len(result.statmaps) == 4
    page = build_group_report(out, result.stats_files, result.notes, result.statmaps)
    text = page.read_text()
    for path in result.statmaps:
        stem = path.name.replace("_statmap.nii.gz", "")
        svg = out / "group" / "figures" / f"{stem}_desc-slices.svg"
        assert svg.stat().st_size > 0 and f"figures/{svg.name}" in text
