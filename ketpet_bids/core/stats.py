"""Group statistics for one region at a time, and FDR across regions.

Every test returns a :class:`TestResult` whose fields are the columns of the group tables
(DESIGN.md §5): ``n estimate ci_low ci_high statistic p effect_size``. Confidence intervals are
two-sided at ``confidence`` (default 95%).

- :func:`group_difference` — OLS ``y ~ 1 + patient + covariates``; estimate = adjusted
  difference patients − controls, t statistic; effect size Hedges' g (:func:`hedges_g`).
- :func:`welch_difference` — Welch's unequal-variance t-test (the unadjusted check).
- :func:`paired_change` — paired t-test on ``after − before``; effect size Cohen's d_z.
- :func:`pearson`, :func:`spearman` — correlation with a Fisher-z CI; statistic ``t``.
- :func:`fdr_bh` — Benjamini–Hochberg q-values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class TestResult:
    """One row of a group table (without analysis/measure/region/contrast/q_fdr)."""

    __test__ = False  # not a pytest class

    n: int
    estimate: float
    ci_low: float
    ci_high: float
    statistic: float
    p: float
    effect_size: float


def _z(confidence: float) -> float:
    return float(stats.norm.ppf(0.5 + confidence / 2))


def hedges_g(x: np.ndarray, y: np.ndarray, confidence: float = 0.95
             ) -> tuple[float, float, float]:
    """Hedges' g of ``x − y`` with a normal-approximation CI.

    ``d = (mean(x) − mean(y)) / s_pooled`` with the pooled SD on ``n_x + n_y − 2`` degrees of
    freedom; ``g = J·d`` with ``J = 1 − 3 / (4(n_x + n_y) − 9)``;
    ``SE(g) = sqrt((n_x + n_y)/(n_x n_y) + g² / (2(n_x + n_y)))`` (Hedges & Olkin 1985).

    Parameters
    ----------
    x, y : np.ndarray, shape (n_x,), (n_y,)
        The two samples (NaN-free).

    Returns
    -------
    g, ci_low, ci_high : float
    """
    nx, ny = len(x), len(y)
    pooled = np.sqrt(((nx - 1) * np.var(x, ddof=1) + (ny - 1) * np.var(y, ddof=1))
                     / (nx + ny - 2))
    g = (1 - 3 / (4 * (nx + ny) - 9)) * (np.mean(x) - np.mean(y)) / pooled
    se = np.sqrt((nx + ny) / (nx * ny) + g**2 / (2 * (nx + ny)))
    half = _z(confidence) * se
    return float(g), float(g - half), float(g + half)


def group_difference(y: np.ndarray, patient: np.ndarray, covariates: np.ndarray | None = None,
                     confidence: float = 0.95) -> TestResult:
    """Covariate-adjusted difference patients − controls by ordinary least squares.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        Outcome per subject.
    patient : np.ndarray of bool, shape (n,)
        True for patients, False for controls.
    covariates : np.ndarray, shape (n, k), optional
        Numeric covariates (dummy-coded categories), no intercept column.

    Returns
    -------
    TestResult
        Estimate, CI, t and p of the patient coefficient; effect size Hedges' g (unadjusted).
    """
    import statsmodels.api as sm

    patient = np.asarray(patient, dtype=bool)
    columns = [np.ones(len(y)), patient.astype(float)]
    if covariates is not None and covariates.size:
        columns.extend(np.asarray(covariates, dtype=float).T)
    fit = sm.OLS(np.asarray(y, dtype=float), np.column_stack(columns)).fit()
    low, high = fit.conf_int(alpha=1 - confidence)[1]
    g = hedges_g(y[patient], y[~patient], confidence)[0]
    return TestResult(n=len(y), estimate=float(fit.params[1]), ci_low=float(low),
                      ci_high=float(high), statistic=float(fit.tvalues[1]),
                      p=float(fit.pvalues[1]), effect_size=g)


def welch_difference(x: np.ndarray, y: np.ndarray, confidence: float = 0.95) -> TestResult:
    """Welch's t-test of ``mean(x) − mean(y)``; effect size Hedges' g."""
    test = stats.ttest_ind(x, y, equal_var=False)
    ci = test.confidence_interval(confidence)
    return TestResult(n=len(x) + len(y), estimate=float(np.mean(x) - np.mean(y)),
                      ci_low=float(ci.low), ci_high=float(ci.high),
                      statistic=float(test.statistic), p=float(test.pvalue),
                      effect_size=hedges_g(x, y, confidence)[0])


def paired_change(before: np.ndarray, after: np.ndarray, confidence: float = 0.95
                  ) -> TestResult:
    """Paired t-test of ``after − before``.

    Returns
    -------
    TestResult
        Mean change with its t-based CI, t, p; effect size Cohen's
        ``d_z = mean(change) / sd(change)``.
    """
    change = np.asarray(after, dtype=float) - np.asarray(before, dtype=float)
    n = len(change)
    mean, sd = float(np.mean(change)), float(np.std(change, ddof=1))
    se = sd / np.sqrt(n)
    t = mean / se
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * se
    return TestResult(n=n, estimate=mean, ci_low=mean - half, ci_high=mean + half,
                      statistic=float(t), p=float(2 * stats.t.sf(abs(t), n - 1)),
                      effect_size=mean / sd)


def _correlation_result(r: float, p: float, n: int, se_z: float, confidence: float
                        ) -> TestResult:
    z, half = np.arctanh(r), _z(confidence) * se_z
    t = r * np.sqrt((n - 2) / (1 - r**2))
    return TestResult(n=n, estimate=float(r), ci_low=float(np.tanh(z - half)),
                      ci_high=float(np.tanh(z + half)), statistic=float(t), p=float(p),
                      effect_size=float(r))


def pearson(x: np.ndarray, y: np.ndarray, confidence: float = 0.95) -> TestResult:
    """Pearson r (estimate and effect size), Fisher-z CI (SE ``1/sqrt(n−3)``), t and p."""
    r, p = stats.pearsonr(x, y)
    return _correlation_result(float(r), float(p), len(x), 1 / np.sqrt(len(x) - 3), confidence)


def spearman(x: np.ndarray, y: np.ndarray, confidence: float = 0.95) -> TestResult:
    """Spearman ρ with a Fisher-z CI (SE ``sqrt(1.06/(n−3))``, Fieller et al. 1957), t, p."""
    rho, p = stats.spearmanr(x, y)
    return _correlation_result(float(rho), float(p), len(x), np.sqrt(1.06 / (len(x) - 3)),
                               confidence)


def fdr_bh(p: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg q-values; NaN p-values stay NaN and do not count in ``m``.

    Parameters
    ----------
    p : np.ndarray, shape (m,)

    Returns
    -------
    np.ndarray, shape (m,)
        ``q_(i) = min_{j ≥ i} m·p_(j)/j`` capped at 1, in the input order.

    Examples
    --------
    >>> fdr_bh(np.array([0.01, 0.04, 0.03, np.nan])).round(3).tolist()
    [0.03, 0.04, 0.04, nan]
    """
    p = np.asarray(p, dtype=float)
    q = np.full(p.shape, np.nan)
    valid = np.flatnonzero(np.isfinite(p))
    if valid.size == 0:
        return q
    order = valid[np.argsort(p[valid])]
    m = valid.size
    scaled = p[order] * m / np.arange(1, m + 1)
    q[order] = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    return q
