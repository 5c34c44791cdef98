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
    assert res.effect_size == pytest.approx(ks.hedges_g(y[patient], y[~patient])[0], rel=RTOL)


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
