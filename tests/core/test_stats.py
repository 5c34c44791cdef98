"""Group statistics against scipy/statsmodels called directly and hand computations.

Tolerance 1e-10 relative: the same double-precision quantities computed two ways (different
operation order) agree to ~1e-14; 1e-10 leaves room without hiding a wrong formula.
"""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats
from statsmodels.stats.multitest import multipletests

from ketpet_bids.core import stats as ks

RTOL = 1e-10
rng = np.random.default_rng(42)


def test_hedges_g_by_hand():
    x = np.array([5.0, 7.0, 6.0, 9.0])     # mean 6.75, var 2.9166667
    y = np.array([4.0, 5.0, 3.0, 4.0, 6.0])  # mean 4.4, var 1.3
    pooled = np.sqrt((3 * 35 / 12 + 4 * 1.3) / 7)
    d = (6.75 - 4.4) / pooled
    g = d * (1 - 3 / (4 * 9 - 9))
    se = np.sqrt(9 / 20 + g**2 / 18)
    got = ks.hedges_g(x, y)
    np.testing.assert_allclose(got, [g, g - 1.959963984540054 * se,
                                     g + 1.959963984540054 * se], rtol=RTOL)


def test_group_difference_equals_statsmodels_ols():
    n = 40
    patient = np.arange(n) < 18
    age = rng.uniform(20, 60, n)
    male = (rng.uniform(size=n) < 0.5).astype(float)
    y = 1.0 + 0.2 * patient + 0.01 * age + 0.05 * male + rng.normal(0, 0.1, n)
    fit = sm.OLS(y, sm.add_constant(np.column_stack([patient.astype(float), age, male]))).fit()
    res = ks.group_difference(y, patient, np.column_stack([age, male]))
    assert res.n == n
    np.testing.assert_allclose([res.estimate, res.statistic, res.p], [fit.params[1],
                               fit.tvalues[1], fit.pvalues[1]], rtol=RTOL)
    np.testing.assert_allclose([res.ci_low, res.ci_high], fit.conf_int()[1], rtol=RTOL)
    adjusted = (1 - 3 / (4 * fit.df_resid - 1)) * fit.params[1] / np.sqrt(fit.scale)
    assert res.effect_size == pytest.approx(adjusted, rel=RTOL)


def test_adjusted_and_unadjusted_effect_sizes_differ_in_sign_under_confounding():
    """Constructed: patients are 20 years older and the outcome falls 0.01/year, so the raw
    difference is −0.2 + 0.1 = −0.1 while the age-adjusted difference is +0.1 (noise SD 0.02).
    The OLS row's effect size (adjusted g = J·β/σ̂) is positive like its estimate; Welch's
    (Hedges' g, unadjusted) is negative like the raw difference; without covariates the OLS
    effect size equals Hedges' g exactly."""
    n = 60
    patient = np.arange(n) < 30
    age = np.where(patient, 60.0, 40.0) + rng.uniform(-5, 5, n)
    y = 1.0 + 0.1 * patient - 0.01 * age + rng.normal(0, 0.02, n)
    adjusted = ks.group_difference(y, patient, age[:, None])
    welch = ks.welch_difference(y[patient], y[~patient])
    assert adjusted.estimate == pytest.approx(0.1, abs=0.03) and adjusted.effect_size > 2
    assert welch.estimate == pytest.approx(-0.1, abs=0.03) and welch.effect_size < -1
    assert welch.effect_size == pytest.approx(ks.hedges_g(y[patient], y[~patient])[0],
                                              rel=RTOL)
    plain = ks.group_difference(y, patient)
    assert plain.effect_size == pytest.approx(ks.hedges_g(y[patient], y[~patient])[0],
                                              rel=RTOL)


def test_group_difference_without_covariates_is_the_pooled_t_test():
    y = rng.normal(size=30)
    patient = np.arange(30) % 3 == 0
    res = ks.group_difference(y, patient)
    ref = stats.ttest_ind(y[patient], y[~patient])
    np.testing.assert_allclose([res.statistic, res.p], [ref.statistic, ref.pvalue], rtol=RTOL)
    assert res.estimate == pytest.approx(y[patient].mean() - y[~patient].mean(), rel=RTOL)


def test_welch_equals_scipy():
    x, y = rng.normal(1, 1, 12), rng.normal(0, 2, 20)
    res = ks.welch_difference(x, y)
    ref = stats.ttest_ind(x, y, equal_var=False)
    ci = ref.confidence_interval()
    np.testing.assert_allclose([res.statistic, res.p, res.ci_low, res.ci_high],
                               [ref.statistic, ref.pvalue, ci.low, ci.high], rtol=RTOL)


def test_paired_change_equals_scipy_ttest_rel_and_dz_by_hand():
    before = rng.normal(1, 0.2, 15)
    after = before + rng.normal(0.05, 0.05, 15)
    res = ks.paired_change(before, after)
    ref = stats.ttest_rel(after, before)
    ci = ref.confidence_interval()
    diff = after - before
    np.testing.assert_allclose(
        [res.estimate, res.statistic, res.p, res.ci_low, res.ci_high, res.effect_size],
        [diff.mean(), ref.statistic, ref.pvalue, ci.low, ci.high, diff.mean() / diff.std(ddof=1)],
        rtol=RTOL)


def test_pearson_and_spearman_equal_scipy_with_fisher_ci():
    x = rng.normal(size=25)
    y = -0.6 * x + rng.normal(0, 0.8, 25)
    res = ks.pearson(x, y)
    ref = stats.pearsonr(x, y)
    ci = ref.confidence_interval()  # scipy's Fisher-z interval
    np.testing.assert_allclose([res.estimate, res.p, res.ci_low, res.ci_high],
                               [ref.statistic, ref.pvalue, ci.low, ci.high], rtol=RTOL)
    assert res.statistic == pytest.approx(ref.statistic * np.sqrt(23 / (1 - ref.statistic**2)),
                                          rel=RTOL)
    sp = ks.spearman(x, y)
    ref_s = stats.spearmanr(x, y)
    half = 1.959963984540054 * np.sqrt(1.06 / 22)
    np.testing.assert_allclose([sp.estimate, sp.p, sp.ci_low, sp.ci_high],
                               [ref_s.statistic, ref_s.pvalue,
                                np.tanh(np.arctanh(ref_s.statistic) - half),
                                np.tanh(np.arctanh(ref_s.statistic) + half)], rtol=RTOL)


def test_fdr_bh_equals_statsmodels_and_keeps_nan():
    p = rng.uniform(size=57) ** 3
    np.testing.assert_allclose(ks.fdr_bh(p), multipletests(p, method="fdr_bh")[1], rtol=RTOL)
    with_nan = np.r_[p[:10], np.nan, p[10:20]]
    q = ks.fdr_bh(with_nan)
    assert np.isnan(q[10])
    np.testing.assert_allclose(np.delete(q, 10), multipletests(p[:20], method="fdr_bh")[1],
                               rtol=RTOL)


def test_percent_change_is_the_one_sample_t_test_of_percent_changes():
    before = rng.uniform(0.8, 1.2, 12)
    after = before * (1.05 + rng.normal(0, 0.03, 12))
    res = ks.percent_change(before, after)
    pct = 100 * (after - before) / before
    ref = stats.ttest_1samp(pct, 0.0)
    ci = ref.confidence_interval()
    np.testing.assert_allclose(
        [res.estimate, res.statistic, res.p, res.ci_low, res.ci_high, res.effect_size],
        [pct.mean(), ref.statistic, ref.pvalue, ci.low, ci.high, pct.mean() / pct.std(ddof=1)],
        rtol=RTOL)


def _two_arm_long(n_sub=30, drop=(5, 11), seed=3):
    """Long data of a two-arm pre/post study; subjects in ``drop`` lack the post session."""
    r = np.random.default_rng(seed)
    subject = np.repeat(np.arange(n_sub), 2)
    post = np.tile([False, True], n_sub)
    active = subject % 2 == 0
    y = np.column_stack([1 + 0.08 * post * active + r.normal(0, sd_subject, n_sub)[subject]
                         + r.normal(0, 0.04, 2 * n_sub) for sd_subject in (0.1, 0.05)])
    keep = ~(post & np.isin(subject, drop))
    return y[keep], subject[keep], post[keep], active[keep]


def test_arm_time_interaction_equals_statsmodels_mixedlm():
    """Fixed effects agree to 1e-6: both maximise the same REML likelihood (ours to a
    1e-12 bracket on log γ). SEs, z and p agree to 1e-3 only: statsmodels inverts the full
    observed Hessian (β and variance parameters), ours is σ²(XᵀW⁻¹X)⁻¹ at the optimum."""
    import warnings

    y, subject, post, active = _two_arm_long()
    res = ks.arm_time_interaction(y, subject, post, active)
    x = np.column_stack([np.ones(len(post)), post, active, post * active]).astype(float)
    for r, row in enumerate(res):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = sm.MixedLM(y[:, r], x, groups=subject).fit(reml=True)
        assert np.asarray(fit.cov_re)[0, 0] > 1e-3  # interior optimum
        assert row.estimate == pytest.approx(fit.params[3], rel=1e-6)
        np.testing.assert_allclose([row.statistic, row.p], [fit.tvalues[3], fit.pvalues[3]],
                                   rtol=1e-3)
        np.testing.assert_allclose([row.ci_low, row.ci_high], fit.conf_int()[3], rtol=1e-3)
        assert row.n == 30
    full = ks.random_intercept_model(y, x, subject)
    for r in range(2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = sm.MixedLM(y[:, r], x, groups=subject).fit(reml=True)
        np.testing.assert_allclose(full.params[r], fit.params[:4], rtol=1e-6, atol=1e-7)
        assert full.scale[r] == pytest.approx(fit.scale, rel=1e-4)
        assert full.re_var[r] == pytest.approx(np.asarray(fit.cov_re)[0, 0], rel=1e-3)


def test_interaction_recovers_a_planted_effect_within_its_ci():
    """Planted 0.08 change difference; 95% Wald CIs cover it in ≥ 17 of 20 seeds (binomial
    P(X ≤ 16 | n=20, p=0.95) = 1.6%)."""
    covered = 0
    for seed in range(20):
        y, subject, post, active = _two_arm_long(seed=100 + seed)
        row = ks.arm_time_interaction(y[:, :1], subject, post, active)[0]
        covered += row.ci_low < 0.08 < row.ci_high
    assert covered >= 17


def test_partial_correlation_equals_ols_t_and_residual_correlation():
    n = 40
    age = rng.uniform(20, 60, n)
    male = (rng.uniform(size=n) < 0.5).astype(float)
    x = 0.02 * age + rng.normal(size=n)
    y = -0.5 * x + 0.03 * age + 0.4 * male + rng.normal(size=n)
    cov = np.column_stack([age, male])
    res = ks.partial_correlation(x, y, cov)
    fit = sm.OLS(y, sm.add_constant(np.column_stack([x, cov]))).fit()
    np.testing.assert_allclose([res.statistic, res.p], [fit.tvalues[1], fit.pvalues[1]],
                               rtol=RTOL)
    rx = sm.OLS(x, sm.add_constant(cov)).fit().resid
    ry = sm.OLS(y, sm.add_constant(cov)).fit().resid
    assert res.estimate == pytest.approx(stats.pearsonr(rx, ry).statistic, rel=RTOL)
    half = 1.959963984540054 / np.sqrt(n - 5)
    np.testing.assert_allclose([res.ci_low, res.ci_high],
                               np.tanh(np.arctanh(res.estimate) + np.array([-half, half])),
                               rtol=RTOL)
    plain = ks.partial_correlation(x, y, None)
    ref = ks.pearson(x, y)
    np.testing.assert_allclose([plain.estimate, plain.p, plain.ci_low, plain.statistic],
                               [ref.estimate, ref.p, ref.ci_low, ref.statistic], rtol=RTOL)


def test_logistic_ridge_equals_statsmodels_logit_and_the_penalised_optimum():
    """λ = 0 is maximum likelihood (statsmodels Logit, 1e-6); λ = 2 matches scipy's BFGS on
    the same penalised objective (1e-4: BFGS stops at gradient norm 1e-8)."""
    from scipy.optimize import minimize

    x = rng.normal(size=(60, 2))
    y = (x @ [1.0, -0.5] + rng.normal(size=60) > 0).astype(float)
    ref = sm.Logit(y, sm.add_constant(x)).fit(disp=0)
    np.testing.assert_allclose(ks.logistic_ridge(x, y, penalty=0.0), ref.params, rtol=1e-6)
    design = sm.add_constant(x)

    def objective(beta):
        eta = design @ beta
        return -(y * eta - np.logaddexp(0, eta)).sum() + (beta[1:] ** 2).sum()  # λ/2 = 1

    best = minimize(objective, np.zeros(3), method="BFGS", options={"gtol": 1e-8}).x
    np.testing.assert_allclose(ks.logistic_ridge(x, y, penalty=2.0), best, rtol=1e-4)
    batch = ks.logistic_ridge(x, np.vstack([y, 1 - y]), penalty=2.0)
    np.testing.assert_allclose(batch[1], -best, rtol=1e-4)  # flipped labels flip every sign


def test_auc_equals_mann_whitney_with_ties():
    scores = np.round(rng.normal(size=(3, 25)), 1)  # rounding makes ties
    labels = rng.uniform(size=(3, 25)) < 0.4
    got = ks.auc(scores, labels)
    for b in range(3):
        pos, neg = scores[b][labels[b]], scores[b][~labels[b]]
        ref = stats.mannwhitneyu(pos, neg).statistic / (len(pos) * len(neg))
        assert got[b] == pytest.approx(ref, rel=RTOL)


def test_stratified_folds_balance_each_class():
    y = np.vstack([np.r_[np.ones(7), np.zeros(16)], np.r_[np.zeros(16), np.ones(7)]])
    folds = ks.stratified_folds(y, 5, np.random.default_rng(0))
    for b in range(2):
        for cls in (0, 1):
            counts = np.bincount(folds[b][y[b] == cls], minlength=5)
            assert counts.max() - counts.min() <= 1 and counts.sum() == (y[b] == cls).sum()


def test_predict_response_equals_a_plain_loop_and_detects_a_real_predictor():
    """The batched permutation test equals per-permutation cross-validation done one by one
    with the same seeded labels and folds; a feature that determines response up to noise
    gives AUC > 0.9 and the smallest possible p, 1/(B + 1)."""
    n, n_perm = 30, 40
    x = rng.normal(size=(n, 2))
    responder = x[:, 0] + rng.normal(0, 0.2, n) > 0.3
    res = ks.predict_response(x, responder, n_permutations=n_perm, seed=5)
    z = (x - x.mean(axis=0)) / x.std(axis=0)
    r = np.random.default_rng(5)
    y = responder.astype(float)
    labels = np.vstack([y, *(r.permutation(y) for _ in range(n_perm))])
    folds = ks.stratified_folds(labels, 5, r)
    areas = [ks.auc(ks.cross_validated_scores(z, labels[b][None], folds[b][None]),
                    labels[b][None])[0] for b in range(n_perm + 1)]
    n1 = int(y.sum())
    assert res.estimate == pytest.approx(areas[0], rel=RTOL)
    assert res.p == pytest.approx((1 + np.sum(np.array(areas[1:]) >= areas[0])) / (n_perm + 1))
    assert res.statistic == pytest.approx(areas[0] * n1 * (n - n1), rel=RTOL)
    assert res.estimate > 0.9 and res.p == pytest.approx(1 / (n_perm + 1))
    assert res.effect_size == pytest.approx(2 * res.estimate - 1)


def test_mass_univariate_glm_equals_statsmodels_per_voxel():
    n, v = 24, 50
    patient = np.arange(n) < 11
    age = rng.uniform(20, 60, n)
    x = np.column_stack([np.ones(n), age, patient])
    y = rng.normal(size=(n, v)) + 0.8 * patient[:, None] * (np.arange(v) < 10)
    maps = ks.mass_univariate_glm(y, x, np.array([0.0, 0.0, 1.0]))
    for voxel in (0, 9, 10, 49):
        fit = sm.OLS(y[:, voxel], x).fit()
        np.testing.assert_allclose([maps.estimate[voxel], maps.t[voxel], maps.p[voxel]],
                                   [fit.params[2], fit.tvalues[2], fit.pvalues[2]], rtol=RTOL)
    assert maps.df == n - 3


@pytest.mark.parametrize("design", ["two-sample", "one-sample"])
def test_max_t_fwe_flags_a_planted_blob_and_controls_the_null_voxels(design):
    """Effect 4 SD (two-sample) or 3 SD (one-sample) in 20 of 400 voxels, 20 subjects:
    every blob voxel has p_FWE < 0.05 and no
    null voxel does (seeded; under the null any voxel is flagged with probability ≤ 5%)."""
    r = np.random.default_rng(11)
    n, v = 20, 400
    blob = np.arange(v) < 20
    if design == "two-sample":
        group = np.arange(n) % 2 == 0
        x = np.column_stack([np.ones(n), group])
        y = r.normal(size=(n, v)) + 4.0 * group[:, None] * blob
        contrast = np.array([0.0, 1.0])
    else:
        x = np.ones((n, 1))
        y = r.normal(size=(n, v)) + 3.0 * blob
        contrast = np.array([1.0])
    p_fwe = ks.max_t_fwe(y, x, contrast, n_permutations=200, seed=1)
    assert (p_fwe[blob] < 0.05).all()
    assert not (p_fwe[~blob] < 0.05).any()
    assert p_fwe.min() == pytest.approx(1 / 201)


def test_perfect_rank_order_gives_infinite_t_not_an_error():
    """Four patients in perfect rank order (small demo cohorts): Spearman ρ = 1 exactly, as
    scipy says; the t statistic is infinite and the Fisher-z interval collapses to [1, 1]."""
    x, y = np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.1, 0.5, 0.7, 2.0])
    res = ks.spearman(x, y)
    assert res.estimate == stats.spearmanr(x, y)[0] == 1.0
    assert res.statistic == np.inf and res.ci_low == res.ci_high == 1.0


def test_columns_too_short_for_a_test_get_nan_rows_and_the_others_their_values():
    """A group table column with 3 observations cannot carry a Fisher-z interval: its row keeps
    n = 3 with NaN statistics, while a full column equals scipy's Pearson r and p."""
    import pandas as pd

    from ketpet_bids.workflows import group

    rng = np.random.default_rng(3)
    symptom = pd.Series(rng.normal(size=8))
    full = symptom * 0.5 + rng.normal(size=8)
    short = full.where(np.arange(8) < 3)
    wide = pd.DataFrame({("SUVR", "cortex"): full, ("SUVR", "habenula"): short})
    rows = group._rows("symptoms", "pearson", wide, group._correlate(ks.pearson, symptom))
    r, p = stats.pearsonr(full, symptom)
    assert rows[0]["estimate"] == pytest.approx(r) and rows[0]["p"] == pytest.approx(p)
    row = ks.TestResult(**{k: rows[1][k] for k in ("n", "estimate", "ci_low", "ci_high",
                                                    "statistic", "p", "effect_size")})
    assert row.n == 3 and all(np.isnan(v) for v in (row.estimate, row.p, row.ci_low))
