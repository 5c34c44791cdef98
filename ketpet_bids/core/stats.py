"""Group statistics for one region at a time, and FDR across regions.

Every test returns a :class:`TestResult` whose fields are the columns of the group tables
(DESIGN.md §5): ``n estimate ci_low ci_high statistic p effect_size``. Confidence intervals are
two-sided at ``confidence`` (default 95%).

- :func:`group_difference` — OLS ``y ~ 1 + patient + covariates``; estimate = adjusted
  difference patients − controls, t statistic; effect size the covariate-adjusted g
  (``J·β/σ̂``, the sign of the estimate).
- :func:`welch_difference` — Welch's unequal-variance t-test (the unadjusted check); effect
  size Hedges' g (:func:`hedges_g`, unadjusted).
- :func:`paired_change`, :func:`percent_change` — one-sample t-test (:func:`one_sample`) of
  ``after − before`` or of ``100·(after − before)/before``; effect size Cohen's d_z.
- :func:`arm_time_interaction` — arm × time interaction of a REML random-intercept mixed model
  (:func:`random_intercept_model`, the model of statsmodels ``MixedLM``, vectorised over
  regions); Wald z.
- :func:`pearson`, :func:`spearman`, :func:`partial_correlation` — correlation with a Fisher-z
  CI; statistic ``t``.
- :func:`predict_response` — cross-validated AUC of an L2 logistic regression
  (:func:`logistic_ridge`, :func:`stratified_folds`, :func:`auc`) with a permutation p-value.
- :func:`mass_univariate_glm`, :func:`max_t_fwe` — voxelwise OLS t-maps and permutation
  max-T family-wise p-values.
- :func:`fdr_bh` — Benjamini–Hochberg q-values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
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

    @classmethod
    def not_estimable(cls, n: int) -> TestResult:
        """The row of a test that ``n`` observations cannot support (all statistics NaN)."""
        nan = float("nan")
        return cls(n=n, estimate=nan, ci_low=nan, ci_high=nan, statistic=nan, p=nan,
                   effect_size=nan)


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
        Estimate, CI, t and p of the patient coefficient; effect size the covariate-adjusted
        standardised difference ``g_adj = J·β / σ̂`` with the residual SD ``σ̂`` and Hedges'
        correction ``J = 1 − 3 / (4·df − 1)`` on the residual degrees of freedom ``df``. It
        has the sign of the estimate; without covariates it equals :func:`hedges_g`. The
        unadjusted Hedges' g (which may have the other sign when a covariate confounds the
        groups) is the effect size of :func:`welch_difference`.
    """
    import statsmodels.api as sm

    patient = np.asarray(patient, dtype=bool)
    columns = [np.ones(len(y)), patient.astype(float)]
    if covariates is not None and covariates.size:
        columns.extend(np.asarray(covariates, dtype=float).T)
    fit = sm.OLS(np.asarray(y, dtype=float), np.column_stack(columns)).fit()
    low, high = fit.conf_int(alpha=1 - confidence)[1]
    g = (1 - 3 / (4 * fit.df_resid - 1)) * fit.params[1] / np.sqrt(fit.scale)
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


def one_sample(values: np.ndarray, confidence: float = 0.95) -> TestResult:
    """One-sample t-test of ``mean(values) ≠ 0``.

    Parameters
    ----------
    values : np.ndarray, shape (n,)
        NaN-free values (e.g. changes).

    Returns
    -------
    TestResult
        Mean with its t-based CI, t on ``n − 1`` df, two-sided p; effect size
        ``mean / sd`` (Cohen's d_z for changes).
    """
    values = np.asarray(values, dtype=float)
    n = len(values)
    mean, sd = np.mean(values), np.std(values, ddof=1)
    se = sd / np.sqrt(n)
    with np.errstate(divide="ignore", invalid="ignore"):  # constant values: t = ±inf or NaN
        t, effect = mean / se, mean / sd
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * se
    return TestResult(n=n, estimate=float(mean), ci_low=float(mean - half),
                      ci_high=float(mean + half), statistic=float(t),
                      p=float(2 * stats.t.sf(abs(t), n - 1)), effect_size=float(effect))


def paired_change(before: np.ndarray, after: np.ndarray, confidence: float = 0.95
                  ) -> TestResult:
    """Paired t-test of ``after − before`` (:func:`one_sample` of the differences).

    Returns
    -------
    TestResult
        Mean change with its t-based CI, t, p; effect size Cohen's
        ``d_z = mean(change) / sd(change)``.
    """
    return one_sample(np.asarray(after, dtype=float) - np.asarray(before, dtype=float),
                      confidence)


def percent_change(before: np.ndarray, after: np.ndarray, confidence: float = 0.95
                   ) -> TestResult:
    """One-sample t-test of the percent change ``100·(after − before)/before``.

    Returns
    -------
    TestResult
        Mean percent change (%) with its t-based CI, t, p; effect size d_z of the percent
        changes.
    """
    before = np.asarray(before, dtype=float)
    return one_sample(100.0 * (np.asarray(after, dtype=float) - before) / before, confidence)


@dataclass(frozen=True)
class MixedFit:
    """REML fit of a linear model with a random intercept per group, for R outcomes.

    Attributes
    ----------
    params, bse : np.ndarray, shape (R, p)
        Fixed effects and their standard errors (``sqrt(diag(σ² (XᵀW⁻¹X)⁻¹))``).
    scale : np.ndarray, shape (R,)
        Residual variance σ².
    re_var : np.ndarray, shape (R,)
        Random-intercept variance τ².
    """

    params: np.ndarray
    bse: np.ndarray
    scale: np.ndarray
    re_var: np.ndarray


def _mixed_moments(y: np.ndarray, x: np.ndarray, groups: np.ndarray) -> dict[str, Any]:
    """Sufficient statistics of the random-intercept model, pooled by group size."""
    _, inverse, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    sums_x = np.zeros((len(sizes), x.shape[1]))
    np.add.at(sums_x, inverse, x)
    sums_y = np.zeros((len(sizes), y.shape[1]))
    np.add.at(sums_y, inverse, y)
    by_size = {}
    for k in np.unique(sizes):
        members = sizes == k
        sx, sy = sums_x[members], sums_y[members]
        by_size[int(k)] = (int(members.sum()), sx.T @ sx, sx.T @ sy, (sy**2).sum(axis=0))
    return {"xx": x.T @ x, "xy": x.T @ y, "yy": (y**2).sum(axis=0), "by_size": by_size,
            "n": len(y), "p": x.shape[1]}


def _mixed_profile(gamma: np.ndarray, m: dict[str, Any]
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Profiled REML log-likelihood (constant dropped) at variance ratios ``gamma`` (R,).

    With ``W_i = I + γ·J`` per group of size k, ``W_i⁻¹ = I − c_k J``, ``c_k = γ/(1 + kγ)``:
    ``A = XᵀW⁻¹X``, ``b = XᵀW⁻¹y``, ``RSS = yᵀW⁻¹y − bᵀA⁻¹b`` and
    ``ℓ = −½[(N − p)·log RSS + Σ_i log(1 + n_iγ) + log|A|]``.

    Returns
    -------
    loglik, beta, rss, a_inv : arrays of shape (R,), (R, p), (R,), (R, p, p)
    """
    a = np.broadcast_to(m["xx"], (len(gamma), *m["xx"].shape)).copy()
    b, yy = m["xy"].T.copy(), m["yy"].copy()
    logdet_w = np.zeros(len(gamma))
    for k, (count, sxx, sxy, syy) in m["by_size"].items():
        c = gamma / (1.0 + k * gamma)
        a -= c[:, None, None] * sxx
        b -= c[:, None] * sxy.T
        yy -= c * syy
        logdet_w += count * np.log1p(k * gamma)
    a_inv = np.linalg.inv(a)
    beta = np.einsum("rij,rj->ri", a_inv, b)
    rss = np.maximum(yy - np.einsum("ri,ri->r", b, beta), np.finfo(float).tiny)
    loglik = -0.5 * ((m["n"] - m["p"]) * np.log(rss) + logdet_w + np.linalg.slogdet(a)[1])
    return loglik, beta, rss, a_inv


def random_intercept_model(y: np.ndarray, x: np.ndarray, groups: np.ndarray) -> MixedFit:
    """REML linear mixed model ``y = Xβ + u_group + e`` for many outcomes at once.

    The model of statsmodels ``MixedLM(y, X, groups).fit(reml=True)`` (random intercept
    only), vectorised over outcomes: the variance ratio ``γ = τ²/σ²`` of each outcome is found
    on a log grid (``γ ∈ {0} ∪ [1e-6, 1e4]``) and refined by golden-section search; β, σ²
    and the standard errors follow in closed form (GLS given γ).

    Parameters
    ----------
    y : np.ndarray, shape (N, R)
        R outcomes (e.g. regions) for N observations, NaN-free.
    x : np.ndarray, shape (N, p)
        Fixed-effects design with its intercept column, full column rank.
    groups : np.ndarray, shape (N,)
        Group (subject) label of each observation.

    Returns
    -------
    MixedFit
    """
    y = np.asarray(y, dtype=float).reshape(len(y), -1)
    m = _mixed_moments(y, np.asarray(x, dtype=float), np.asarray(groups))
    n_out = y.shape[1]
    log_grid = np.linspace(-6.0, 4.0, 41)
    grid = np.concatenate([[0.0], 10.0**log_grid])
    values = np.array([_mixed_profile(np.full(n_out, g), m)[0] for g in grid])
    best = values.argmax(axis=0)
    lo = log_grid[np.clip(best - 2, 0, len(log_grid) - 1)]
    hi = log_grid[np.clip(best, 0, len(log_grid) - 1)]
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    for _ in range(60):  # golden section on log10 γ; bracket shrinks to ~1e-12
        left, right = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        better = (_mixed_profile(10.0**left, m)[0] > _mixed_profile(10.0**right, m)[0])
        hi, lo = np.where(better, right, hi), np.where(better, lo, left)
    gamma = 10.0 ** ((lo + hi) / 2)
    at_zero = values[0] >= _mixed_profile(gamma, m)[0]
    gamma = np.where(at_zero, 0.0, gamma)
    _, beta, rss, a_inv = _mixed_profile(gamma, m)
    scale = rss / (m["n"] - m["p"])
    bse = np.sqrt(scale[:, None] * np.einsum("rii->ri", a_inv))
    return MixedFit(params=beta, bse=bse, scale=scale, re_var=gamma * scale)


def arm_time_interaction(y: np.ndarray, subject: np.ndarray, post: np.ndarray,
                         active: np.ndarray, confidence: float = 0.95) -> list[TestResult]:
    """Arm × time interaction ``(post − baseline)_active − (post − baseline)_comparator``.

    Model ``y ~ 1 + post + active + post:active`` with a random intercept per subject
    (:func:`random_intercept_model`; subjects with one session contribute to the intercepts).

    Parameters
    ----------
    y : np.ndarray, shape (N, R)
        Observations (one row per subject and session), R regions, NaN-free.
    subject : np.ndarray, shape (N,)
        Subject of each row.
    post, active : np.ndarray of bool, shape (N,)
        Row is a post-treatment session; subject is in the active arm.

    Returns
    -------
    list of TestResult, length R
        Interaction estimate with its Wald (normal) CI, z, two-sided p; ``n`` subjects;
        effect size Hedges' g of the change, active vs comparator, among subjects with both
        sessions.
    """
    post, active = np.asarray(post, dtype=float), np.asarray(active, dtype=float)
    x = np.column_stack([np.ones(len(post)), post, active, post * active])
    fit = random_intercept_model(y, x, subject)
    y = np.asarray(y, dtype=float).reshape(len(post), -1)
    frame = pd.DataFrame(y).assign(subject=subject, post=post > 0)
    pre = frame[~frame["post"]].set_index("subject")
    after = frame[frame["post"]].set_index("subject")
    paired = after.index.intersection(pre.index)
    change = after.loc[paired].drop(columns="post") - pre.loc[paired].drop(columns="post")
    is_active = pd.Series(active > 0, index=subject).groupby(level=0).first()[paired]
    z = _z(confidence)
    out = []
    for r in range(y.shape[1]):
        est, se = float(fit.params[r, 3]), float(fit.bse[r, 3])
        g = hedges_g(change[r][is_active.to_numpy()].to_numpy(),
                     change[r][~is_active.to_numpy()].to_numpy(), confidence)[0]
        out.append(TestResult(n=len(np.unique(subject)), estimate=est, ci_low=est - z * se,
                              ci_high=est + z * se, statistic=est / se,
                              p=float(2 * stats.norm.sf(abs(est / se))), effect_size=g))
    return out


def _correlation_result(r: float, p: float, n: int, se_z: float, confidence: float
                        ) -> TestResult:
    r = float(np.clip(r, -1.0, 1.0))
    with np.errstate(divide="ignore"):  # |r| = 1 (perfect rank order): t and z infinite
        z, half = np.arctanh(r), _z(confidence) * se_z
        t = r * np.sqrt(np.float64(n - 2) / np.float64(1 - r**2))
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


def partial_correlation(x: np.ndarray, y: np.ndarray, covariates: np.ndarray | None,
                        confidence: float = 0.95) -> TestResult:
    """Pearson correlation of ``x`` and ``y`` after regressing both on ``1 + covariates``.

    With k covariates: ``t = r·sqrt((n − 2 − k)/(1 − r²))`` on ``n − 2 − k`` df (equal to the
    t of ``x`` in the OLS ``y ~ 1 + x + covariates``); Fisher-z CI with SE ``1/sqrt(n − 3 − k)``.

    Parameters
    ----------
    x, y : np.ndarray, shape (n,)
    covariates : np.ndarray, shape (n, k), optional
        Numeric covariates without an intercept column; ``None`` or k = 0 gives Pearson r.

    Returns
    -------
    TestResult
        Partial r (estimate and effect size), CI, t and p.
    """
    n = len(x)
    design = np.ones((n, 1))
    if covariates is not None and np.size(covariates):
        design = np.column_stack([design, np.asarray(covariates, dtype=float)])
    k = design.shape[1] - 1
    both = np.column_stack([x, y]).astype(float)
    resid = both - design @ np.linalg.lstsq(design, both, rcond=None)[0]
    r = float(np.corrcoef(resid.T)[0, 1])
    df = n - 2 - k
    t = r * np.sqrt(df / (1 - r**2))
    z, half = np.arctanh(r), _z(confidence) / np.sqrt(n - 3 - k)
    return TestResult(n=n, estimate=r, ci_low=float(np.tanh(z - half)),
                      ci_high=float(np.tanh(z + half)), statistic=float(t),
                      p=float(2 * stats.t.sf(abs(t), df)), effect_size=r)


# ----------------------------------------------------------------------- response prediction
def logistic_ridge(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None,
                   penalty: float = 1.0, max_iter: int = 100) -> np.ndarray:
    """L2-penalised logistic regression by Newton's method, batched over label vectors.

    Maximises ``Σ_i w_i [y_i η_i − log(1 + e^{η_i})] − (penalty/2)·‖β_{1:}‖²`` with
    ``η = β_0 + x β_{1:}`` (the intercept is not penalised).

    Parameters
    ----------
    x : np.ndarray, shape (n, d)
        Features (no intercept column).
    y : np.ndarray, shape (B, n) or (n,)
        0/1 labels, one row per problem.
    weights : np.ndarray, shape (B, n) or (n,), optional
        Observation weights (0 leaves a row out, e.g. the test fold); default 1.
    penalty : float
        L2 penalty λ ≥ 0 (λ = 0: maximum likelihood, as statsmodels ``Logit``).

    Returns
    -------
    np.ndarray, shape (B, d + 1) or (d + 1,)
        Intercept then coefficients.
    """
    single = np.ndim(y) == 1
    y = np.atleast_2d(np.asarray(y, dtype=float))
    w = np.ones_like(y) if weights is None else np.broadcast_to(
        np.asarray(weights, dtype=float), y.shape)
    design = np.column_stack([np.ones(len(x)), np.asarray(x, dtype=float)])
    ridge = penalty * np.diag([0.0] + [1.0] * (design.shape[1] - 1))
    d = design.shape[1]
    outer = (design[:, :, None] * design[:, None, :]).reshape(len(design), d * d)
    beta = np.zeros((len(y), d))
    for _ in range(max_iter):
        prob = 1.0 / (1.0 + np.exp(-beta @ design.T))
        grad = (w * (y - prob)) @ design - beta @ ridge
        hess = ((w * prob * (1 - prob)) @ outer).reshape(-1, d, d) + ridge
        step = np.linalg.solve(hess, grad[..., None])[..., 0]
        beta += step
        if np.abs(step).max() < 1e-10:
            break
    return beta[0] if single else beta


def stratified_folds(y: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Stratified k-fold assignment, batched over label vectors.

    Within each class the members are put in random order and dealt to folds 0…k−1 in turn,
    so every fold holds ⌊n_c/k⌋ or ⌈n_c/k⌉ members of class c.

    Parameters
    ----------
    y : np.ndarray, shape (B, n)
        0/1 labels.
    k : int
        Number of folds.

    Returns
    -------
    np.ndarray of int, shape (B, n)
    """
    y = np.atleast_2d(y)
    order = np.argsort(y + rng.random(y.shape), axis=1)  # class, then random
    n_neg = (y == 0).sum(axis=1, keepdims=True)
    position = np.arange(y.shape[1])[None, :]
    rank = np.where(position < n_neg, position, position - n_neg)
    folds = np.empty_like(order)
    np.put_along_axis(folds, order, rank % k, axis=1)
    return folds


def cross_validated_scores(x: np.ndarray, y: np.ndarray, folds: np.ndarray,
                           penalty: float = 1.0) -> np.ndarray:
    """Out-of-fold linear predictors ``η`` of :func:`logistic_ridge`, batched.

    Parameters
    ----------
    x : np.ndarray, shape (n, d)
    y, folds : np.ndarray, shape (B, n)

    Returns
    -------
    np.ndarray, shape (B, n)
        Each subject's score from the model fitted without its fold.
    """
    y, folds = np.atleast_2d(y), np.atleast_2d(folds)
    design = np.column_stack([np.ones(len(x)), x])
    scores = np.empty(y.shape)
    for fold in np.unique(folds):
        test = folds == fold
        beta = logistic_ridge(x, y, weights=~test, penalty=penalty)
        scores[test] = (beta @ design.T)[test]
    return scores


def auc(scores: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Area under the ROC curve by the Mann–Whitney formula, batched over rows.

    ``AUC = (Σ ranks of positives − n₁(n₁+1)/2) / (n₁ n₀)`` with average ranks for ties
    (= ``scipy.stats.mannwhitneyu(pos, neg).statistic / (n₁ n₀)``).

    Parameters
    ----------
    scores, y : np.ndarray, shape (B, n) or (n,)

    Returns
    -------
    np.ndarray, shape (B,) or ()
    """
    y = np.asarray(y, dtype=bool)
    ranks = stats.rankdata(scores, axis=-1)
    n1 = y.sum(axis=-1)
    n0 = y.shape[-1] - n1
    return ((ranks * y).sum(axis=-1) - n1 * (n1 + 1) / 2) / (n1 * n0)


def hanley_mcneil_se(area: float, n1: int, n0: int) -> float:
    """Standard error of an AUC (Hanley & McNeil 1982)."""
    q1, q2 = area / (2 - area), 2 * area**2 / (1 + area)
    return float(np.sqrt((area * (1 - area) + (n1 - 1) * (q1 - area**2)
                          + (n0 - 1) * (q2 - area**2)) / (n1 * n0)))


def predict_response(x: np.ndarray, responder: np.ndarray, *, folds: int = 5,
                     penalty: float = 1.0, n_permutations: int = 1000, seed: int = 0,
                     confidence: float = 0.95) -> TestResult:
    """Cross-validated AUC of an L2 logistic regression with a permutation p-value.

    Features are standardised on the whole sample (label-free, so no label leakage); folds
    are stratified; the observed AUC uses one seeded fold split, and each of the
    ``n_permutations`` permuted label vectors gets its own stratified split.

    Parameters
    ----------
    x : np.ndarray, shape (n, d)
        Features (e.g. a region's baseline value and change), NaN-free.
    responder : np.ndarray of bool, shape (n,)
    folds : int
        k of the stratified k-fold (lowered to the size of the smaller class, at least 2).

    Returns
    -------
    TestResult
        ``estimate`` AUC with a Hanley–McNeil CI (clipped to [0, 1]); ``statistic`` the
        Mann–Whitney U of the out-of-fold scores; ``p = (1 + #{AUC_perm ≥ AUC})/(1 + B)``;
        ``effect_size`` Somers' D = 2·AUC − 1.
    """
    y = np.asarray(responder, dtype=float)
    n1, n0 = int(y.sum()), int(len(y) - y.sum())
    k = max(2, min(folds, n1, n0))
    x = np.asarray(x, dtype=float).reshape(len(y), -1)
    sd = x.std(axis=0)
    x = (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    rng = np.random.default_rng(seed)
    labels = np.vstack([y, *(rng.permutation(y) for _ in range(n_permutations))])
    scores = cross_validated_scores(x, labels, stratified_folds(labels, k, rng), penalty)
    areas = auc(scores, labels)
    area = float(areas[0])
    half = _z(confidence) * hanley_mcneil_se(area, n1, n0)
    return TestResult(n=len(y), estimate=area, ci_low=max(0.0, area - half),
                      ci_high=min(1.0, area + half), statistic=area * n1 * n0,
                      p=float((1 + np.sum(areas[1:] >= area)) / (1 + n_permutations)),
                      effect_size=2 * area - 1)


# ----------------------------------------------------------------------- voxelwise
@dataclass(frozen=True)
class GlmMaps:
    """Mass-univariate GLM results for V voxels.

    Attributes
    ----------
    estimate, t, p : np.ndarray, shape (V,)
        Contrast estimate ``cᵀβ``, its t statistic, two-sided p.
    df : int
        Residual degrees of freedom.
    """

    estimate: np.ndarray
    t: np.ndarray
    p: np.ndarray
    df: int


def _glm_t(y: np.ndarray, x: np.ndarray, contrast: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray, int]:
    """``cᵀβ`` and t for every column of ``y`` (one least-squares solve)."""
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    df = len(x) - np.linalg.matrix_rank(x)
    sigma2 = ((y - x @ beta) ** 2).sum(axis=0) / df
    var_c = contrast @ np.linalg.pinv(x.T @ x) @ contrast
    estimate = contrast @ beta
    with np.errstate(divide="ignore", invalid="ignore"):
        t = estimate / np.sqrt(sigma2 * var_c)
    return estimate, t, df


def mass_univariate_glm(y: np.ndarray, x: np.ndarray, contrast: np.ndarray) -> GlmMaps:
    """OLS per voxel with one ``lstsq`` for all voxels, and a t-test of ``cᵀβ``.

    Parameters
    ----------
    y : np.ndarray, shape (n, V)
        One row per subject (map values inside the mask).
    x : np.ndarray, shape (n, p)
        Design with its intercept column.
    contrast : np.ndarray, shape (p,)

    Returns
    -------
    GlmMaps
    """
    y, x = np.asarray(y, dtype=float), np.asarray(x, dtype=float)
    estimate, t, df = _glm_t(y, x, np.asarray(contrast, dtype=float))
    return GlmMaps(estimate=estimate, t=t, p=2 * stats.t.sf(np.abs(t), df), df=int(df))


def max_t_fwe(y: np.ndarray, x: np.ndarray, contrast: np.ndarray, n_permutations: int,
              seed: int = 0) -> np.ndarray:
    """Family-wise-error p-values of ``|t|`` by the permutation distribution of max |t|.

    Freedman–Lane: the data are split into the fit of the nuisance model (the design
    projected on the null space of the contrast) and its residuals; the residuals are
    permuted across subjects (or, for a one-column design such as a one-sample test,
    sign-flipped) and added back, and the full model is refitted.

    Parameters
    ----------
    y : np.ndarray, shape (n, V)
    x : np.ndarray, shape (n, p)
    contrast : np.ndarray, shape (p,)
    n_permutations : int
        B random relabelings; the observed labelling is counted as one of B + 1.

    Returns
    -------
    np.ndarray, shape (V,)
        ``p_FWE(v) = #{b ∈ 0…B : max|t_b| ≥ |t_v|} / (B + 1)``.
    """
    y, x = np.asarray(y, dtype=float), np.asarray(x, dtype=float)
    contrast = np.asarray(contrast, dtype=float)
    _, t_obs, _ = _glm_t(y, x, contrast)
    nuisance = x @ _null_space(contrast)
    fitted = (nuisance @ np.linalg.lstsq(nuisance, y, rcond=None)[0] if nuisance.shape[1]
              else np.zeros_like(y))
    resid = y - fitted
    rng = np.random.default_rng(seed)
    flip = x.shape[1] == 1
    max_t = np.empty(n_permutations + 1)
    max_t[0] = np.nanmax(np.abs(t_obs))
    for b in range(1, n_permutations + 1):
        shuffled = (resid * rng.choice([-1.0, 1.0], len(y))[:, None] if flip
                    else resid[rng.permutation(len(y))])
        max_t[b] = np.nanmax(np.abs(_glm_t(fitted + shuffled, x, contrast)[1]))
    exceed = len(max_t) - np.searchsorted(np.sort(max_t), np.abs(t_obs), side="left")
    return exceed / (n_permutations + 1)


def _null_space(contrast: np.ndarray) -> np.ndarray:
    """Orthonormal basis (p, p − 1) of the parameter directions orthogonal to ``contrast``."""
    _, _, vt = np.linalg.svd(contrast[None, :])
    return vt[1:].T


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
