"""Study design: subjects, groups, treatment arms, regional parameters, planted effects, MADRS.

Planted effects act on each region's total distribution volume VT through k3 (receptor
availability); K1/k2 (the non-displaceable volume VND) carries the between-subject factor:

``VT = VT_base · g_sr · (1 + group_r) · s_sr · (1 + treat_sr)``

* ``g_sr`` — between-subject factor, lognormal with CoV ``between_subject_cov``, 70 % shared by
  all regions of a subject and 30 % regional; applied to VND (``k2 = K1 / VND``), so it
  cancels largely in whole-brain-normalised SUVR.
* ``group_r`` — patients vs controls (both sessions), ``CohortSpec.group_effect``.
* ``s_sr`` — session-to-session variability (lognormal, CoV ``session_cov``, per region).
* ``treat_sr`` — ketamine, post session only: ``treatment_effect[r] + d_s`` with
  ``d_s ~ N(0, treatment_effect_sd)`` per subject and direction (cortex/habenula); placebo 0.

K1 varies by a subject factor (CoV ``between_subject_cov``) and a session factor (5 %).
Extracerebral regions and CSF keep their base parameters.

MADRS: controls ~ N(3, 2) at baseline; patients ~ N(30, 5) at baseline and
``post = baseline + Δ`` with ``Δ = −8 + 7·(ρ·z + √(1−ρ²)·e)`` where ``z`` is the standardised
true relative change of the cortical composite's SUVR (volume-weighted over the six cortical
regions, as the group level's ``cortex`` composite) and ``e`` is noise made orthogonal to
``z``, so that the sample correlation of Δ with that change is exactly ρ before rounding to
integers.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ketpet_bids.sim.kinetics import RegionParams
from ketpet_bids.sim.phantom import CORTICAL, REGIONS

HABENULA = ("habenula-left", "habenula-right")

# Base (control) parameters of [11C]K-2-like binding, per minute: VND = K1/k2, BPND = k3/k4.
_K4 = 0.06


def _binding(k1: float, vnd: float, bpnd: float, vb: float) -> RegionParams:
    return RegionParams(K1=k1, k2=k1 / vnd, k3=bpnd * _K4, k4=_K4, vB=vb)


K2_PARAMS: dict[str, RegionParams] = {
    "frontal": _binding(0.12, 1.5, 0.85, 0.05),
    "parietal": _binding(0.12, 1.5, 0.80, 0.05),
    "temporal": _binding(0.12, 1.5, 0.90, 0.05),
    "occipital": _binding(0.13, 1.5, 0.75, 0.05),
    "cingulate": _binding(0.12, 1.5, 0.95, 0.05),
    "insula": _binding(0.12, 1.5, 0.90, 0.05),
    "caudate": _binding(0.11, 1.5, 0.70, 0.05),
    "putamen": _binding(0.11, 1.5, 0.75, 0.05),
    "thalamus": _binding(0.11, 1.5, 0.55, 0.05),
    "habenula-left": _binding(0.11, 1.5, 0.60, 0.05),
    "habenula-right": _binding(0.11, 1.5, 0.60, 0.05),
    "cerebellum": _binding(0.12, 1.5, 0.65, 0.05),
    "brainstem": _binding(0.08, 1.2, 0.25, 0.04),
    "white-matter": _binding(0.06, 1.0, 0.20, 0.03),
    "csf": RegionParams(K1=0.002, k2=0.01, k3=0.0, k4=0.0, vB=0.0),
    "skull": RegionParams(K1=0.01, k2=0.04, k3=0.0, k4=0.0, vB=0.02),
    "scalp": RegionParams(K1=0.04, k2=0.08, k3=0.0, k4=0.0, vB=0.03),
}
assert set(K2_PARAMS) == {r.name for r in REGIONS}


@dataclass(frozen=True)
class CohortSpec:
    """Design and planted effects of a simulated study.

    Attributes
    ----------
    name
        Preset name (``"none"`` without preset).
    n_patients, n_controls
        Default group sizes.
    group_effect
        Patients vs controls, relative VT difference per region (e.g. ``-0.06``).
    treatment_effect
        Ketamine, post vs baseline, mean relative VT change per region.
    treatment_effect_sd
        Between-subject SD of the ketamine effect (absolute, relative units).
    madrs_rho
        Correlation of MADRS change with the true relative change of the cortical composite's
        SUVR (patients).
    between_subject_cov, session_cov
        Coefficients of variation of VT between subjects and between sessions.
    """

    name: str = "none"
    n_patients: int = 2
    n_controls: int = 2
    group_effect: dict[str, float] = field(default_factory=dict)
    treatment_effect: dict[str, float] = field(default_factory=dict)
    treatment_effect_sd: float = 0.0
    madrs_rho: float = 0.0
    between_subject_cov: float = 0.10
    session_cov: float = 0.03


PRESETS: dict[str, CohortSpec] = {
    "k2-ketamine": CohortSpec(
        name="k2-ketamine", n_patients=34, n_controls=49,
        group_effect={"frontal": -0.15, "cingulate": -0.16, "insula": -0.14,
                      "temporal": -0.14, "habenula-left": 0.15, "habenula-right": 0.15},
        treatment_effect={**{r: 0.08 for r in CORTICAL}, **{r: -0.10 for r in HABENULA}},
        treatment_effect_sd=0.03, madrs_rho=-0.6),
}


def cohort_spec(preset: str | None) -> CohortSpec:
    """The preset's spec, or a spec without planted effects for ``None``."""
    if preset is None:
        return CohortSpec()
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    return PRESETS[preset]


def rng_for(seed: int, *keys: int) -> np.random.Generator:
    """Independent, reproducible random stream for ``(seed, *keys)``."""
    return np.random.default_rng(np.random.SeedSequence([seed, *keys]))


@dataclass(frozen=True)
class Subject:
    """One simulated participant.

    Attributes
    ----------
    label
        BIDS label without ``sub-``.
    group, arm
        ``patient``/``control``; ``ketamine``/``placebo``/``n/a``.
    age, sex, body_weight
        Years, ``M``/``F``, kg.
    sessions
        ``("baseline", "post")`` for patients, ``("baseline",)`` for controls.
    vt_factor
        Between-subject VT factor ``g_sr`` per region.
    k1_factor
        Subject K1 factor.
    treatment
        Realised ketamine effect ``treat_sr`` per region (post session; 0 = none).
    """

    label: str
    group: str
    arm: str
    age: int
    sex: str
    body_weight: float
    sessions: tuple[str, ...]
    vt_factor: dict[str, float]
    k1_factor: float
    treatment: dict[str, float]


def draw_subjects(spec: CohortSpec, n_patients: int, n_controls: int, seed: int
                  ) -> list[Subject]:
    """Patients (labels ``01…``) then controls, with demographics, arms and subject effects."""
    rng = rng_for(seed, 0)
    n = n_patients + n_controls
    width = max(2, len(str(n)))
    arms = np.array(["ketamine", "placebo"] * ((n_patients + 1) // 2))[:n_patients]
    arms = rng.permutation(arms)
    binding = [r.name for r in REGIONS if K2_PARAMS[r.name].k4 > 0]
    subjects = []
    for i in range(n):
        patient = i < n_patients
        sub_rng = rng_for(seed, 1, i)
        shared, regional = sub_rng.normal(size=1), sub_rng.normal(size=len(binding))
        z = np.sqrt(0.7) * shared + np.sqrt(0.3) * regional
        vt_factor = dict(zip(binding, np.exp(spec.between_subject_cov * z).tolist(),
                             strict=True))
        arm = str(arms[i]) if patient else "n/a"
        d_cortex, d_hab = sub_rng.normal(0.0, spec.treatment_effect_sd, 2)
        treatment = {}
        if arm == "ketamine":
            for region, effect in spec.treatment_effect.items():
                treatment[region] = effect + (d_hab if region in HABENULA else d_cortex)
        subjects.append(Subject(
            label=f"{i + 1:0{width}d}", group="patient" if patient else "control", arm=arm,
            age=int(np.clip(round(sub_rng.normal(42, 12)), 18, 70)),
            sex=str(sub_rng.choice(["F", "M"])),
            body_weight=float(np.round(np.clip(sub_rng.normal(72, 13), 45, 120), 1)),
            sessions=("baseline", "post") if patient else ("baseline",),
            vt_factor=vt_factor, k1_factor=float(np.exp(spec.between_subject_cov *
                                                        sub_rng.normal())),
            treatment=treatment))
    return subjects


def session_parameters(subject: Subject, session: str, spec: CohortSpec,
                       rng: np.random.Generator) -> tuple[dict[str, RegionParams],
                                                          dict[str, dict[str, float]]]:
    """Regional parameters of one scan and the multipliers that produced them.

    Returns
    -------
    params : dict
        Region name → :class:`RegionParams` (per minute).
    factors : dict
        Region name → ``{"subject", "group", "session", "treatment", "vt_total"}`` VT
        multipliers (binding regions only).
    """
    k1_session = float(np.exp(0.05 * rng.normal()))
    params, factors = {}, {}
    for region in REGIONS:
        base = K2_PARAMS[region.name]
        if base.k4 == 0:
            params[region.name] = base
            continue
        g = subject.vt_factor[region.name]
        group = spec.group_effect.get(region.name, 0.0) if subject.group == "patient" else 0.0
        sess = float(np.exp(spec.session_cov * rng.normal()))
        treat = subject.treatment.get(region.name, 0.0) if session == "post" else 0.0
        k1 = base.K1 * subject.k1_factor * k1_session
        vnd = base.K1 / base.k2 * g
        bpnd = max((1.0 + base.BPND) * (1.0 + group) * sess * (1.0 + treat) - 1.0, 0.01)
        params[region.name] = replace(base, K1=k1, k2=k1 / vnd, k3=bpnd * base.k4)
        factors[region.name] = {"subject": g, "group": 1.0 + group, "session": sess,
                                "treatment": 1.0 + treat,
                                "vt_total": params[region.name].VT / base.VT}
    return params, factors


def assign_madrs(subjects: list[Subject], cortical_change: dict[str, float],
                 spec: CohortSpec, seed: int) -> dict[str, dict[str, int]]:
    """MADRS per subject and session (see module docstring).

    Parameters
    ----------
    subjects
        All subjects.
    cortical_change
        Patient label → relative change of the cortical composite's true SUVR, post vs
        baseline (:func:`ketpet_bids.sim.study.true_changes`).
    spec
        Gives ``madrs_rho``.
    seed
        Study seed.

    Returns
    -------
    dict
        Label → ``{session: score}``.
    """
    rng = rng_for(seed, 2)
    scores: dict[str, dict[str, int]] = {}
    patients = [s.label for s in subjects if s.group == "patient"]
    change = np.array([cortical_change[p] for p in patients])
    z = _standardise(change)
    noise = rng.normal(size=len(patients))
    basis = np.vstack([np.ones(len(patients)), z]).T
    noise = _standardise(noise - basis @ np.linalg.lstsq(basis, noise, rcond=None)[0])
    rho = spec.madrs_rho
    delta = -8.0 + 7.0 * (rho * z + np.sqrt(1.0 - rho**2) * noise)
    for label, d in zip(patients, delta, strict=True):
        base = int(np.clip(round(rng.normal(30, 5)), 18, 50))
        scores[label] = {"baseline": base, "post": int(np.clip(round(base + d), 0, 60))}
    for s in subjects:
        if s.group == "control":
            scores[s.label] = {"baseline": int(np.clip(round(rng.normal(3, 2)), 0, 10))}
    return scores


def _standardise(x: np.ndarray) -> np.ndarray:
    if x.size < 2 or x.std() < 1e-12:
        return np.zeros_like(x)
    return (x - x.mean()) / x.std()
