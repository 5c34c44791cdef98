"""Group level: the treatment-study analyses from participant-level ``_kinpar.tsv`` tables.

A plain pipeline (no nipype): read every participant table, join ``participants.tsv`` and the
per-session symptom scores, add the composite regions (:func:`add_composites`), and for
every measure (model parameter × tracer/atlas/PVC/model variant, labelled by
:func:`~ketpet_bids.bids.naming.group_measure`) write
``group/[trc-<t>_]seg-<atlas>[_pvc-<m>]_model-<model>_analysis-<a>_meas-<param>_stats.tsv``
with the columns of :data:`STATS_COLUMNS` and a JSON sidecar (the design, and what
``effect_size`` means for each contrast):

- ``baseline`` — patients vs controls at baseline per region: OLS with covariates (contrast
  ``patient-control``; effect size the covariate-adjusted g ``J·β/σ̂``, which has the sign of
  the estimate) and Welch's t as a check (``patient-control:welch``; effect size Hedges' g,
  unadjusted: when a covariate confounds the groups the two may differ in sign);
- ``change`` — post − baseline per treatment arm, paired t-test (contrast
  ``<post>-<baseline>:<arm>``; effect size Cohen's d_z) and the same on the percent change
  ``100·(post − baseline)/baseline`` (``<post>-<baseline>:<arm>:percent``); the arm × time
  interaction, active arm − ``placebo_label``, from a REML mixed model with a random intercept
  per patient (``interaction:<arm>-<placebo>``: estimate = difference of the mean changes,
  Wald CI and z; effect size Hedges' g of the change between arms);
- ``symptoms`` — regional change vs symptom change among patients: ``pearson``, ``spearman``
  and ``partial`` (Pearson adjusted for the covariates), pooled over arms and per arm
  (``pearson:<arm>`` …); estimate r or ρ with a Fisher-z CI;
- ``prediction`` — responders (symptom reduction ≥ ``responder_threshold`` of baseline)
  predicted by cross-validated L2 logistic regression from a region's baseline value
  (``responder:baseline``) or baseline and change (``responder:baseline+change``); estimate
  the out-of-fold AUC with a Hanley–McNeil CI, permutation p, effect size Somers' D.

Voxelwise (:func:`run_voxelwise`): the baseline, per-arm change and interaction contrasts as
mass-univariate GLMs over ``_mimap`` maps sharing one grid, within a brain mask, with FDR and
optional permutation max-T, written as
``group/[trc-<t>_]space-<space>[_pvc-<m>]_model-<model>_analysis-<a>_meas-<param>_contrast-<c>_statmap.nii.gz``
with a slice view of the FDR-thresholded t map under ``group/figures/``. The mask is the
voxels finite and non-zero in every subject's map (or a given brain mask).

q-values: Benjamini–Hochberg across regions within each analysis, measure and contrast.
Subjects left out of an analysis (no group, no post scan, no score, missing covariate) are
counted and named in :attr:`GroupResult.notes` and logged — never dropped silently.

The group design (:data:`SPEC_KEYS`) is a YAML mapping given with ``--group-spec``; every key
is optional and the missing ones are inferred (:func:`infer_spec`):

``group_column``, ``patient_label``, ``control_label``
    The ``participants.tsv`` column telling patients from controls and its two labels
    (default: ``group``/``diagnosis``/``dx``; labels like patient/case/MDD, control/healthy/HC).
``arm_column``, ``placebo_label``
    The treatment-arm column (default: ``arm`` or ``treatment``) and the comparator arm of
    the arm × time interaction (default: the one arm named like placebo/sham/saline).
``covariates``
    ``participants.tsv`` columns adjusted for at baseline (default: ``age``, ``sex`` if present).
``baseline_session``, ``post_session``
    Session labels without ``ses-`` (default: baseline/pre… and post/follow-up…, else the
    first two in sorted order).
``symptom_column``
    The score, e.g. ``madrs`` (default: the first numeric column named like a symptom scale,
    :data:`SYMPTOM_SCALES`, in the most preferred layout holding one). ``null`` turns the
    symptom analysis off.
``symptom_layout``
    Where the score per participant and session is read, in the order of preference used
    when inferring (:data:`SYMPTOM_LAYOUTS`):

    - ``sessions`` — column ``<symptom_column>`` of the per-subject
      ``sub-<label>/sub-<label>_sessions.tsv`` (rows ``session_id``);
    - ``long`` — a phenotype table with columns ``participant_id session_id <symptom_column>``;
    - ``wide`` — a phenotype table with one row per participant and columns
      ``<symptom_column>_<session>``, e.g. ``madrs_baseline madrs_post`` (the form the BIDS
      validator accepts for ``phenotype/``).
``symptom_table``
    Path or glob relative to BIDS_DIR: :data:`SESSIONS_TABLES` for ``sessions``, else e.g.
    ``phenotype/madrs.tsv``.

``composites``
    Composite regions, ``{name: [region, …]}``, added to every measure whose atlas has all
    the members (volume-weighted, :func:`add_composites`) and reported like any region.
    Default (:func:`infer_composites`): ``cortex`` from the cortical regions and one
    bilateral composite per left/right pair; ``{}`` turns composites off.
``key_regions``
    Regions drawn in the change-vs-symptom scatter (default ``null``: the 4 regions with the
    smallest pooled Pearson p of each measure).
``prediction``, ``responder_threshold``, ``cv_folds``, ``n_permutations``, ``seed``
    Response prediction on/off (default on), the relative symptom reduction that makes a
    responder (0.5), the k of the stratified k-fold (5), the permutations of the AUC p-value
    (1000) and their seed (0).

Symptom keys left out are inferred consistently with those given (``symptom_column: hamd``
alone picks the most preferred table holding ``hamd``). The source used is part of
:attr:`GroupResult.spec` and stated in :attr:`GroupResult.notes`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ketpet_bids.bids.naming import (
    group_figure_path,
    group_measure,
    group_statmap_path,
    group_stats_path,
    output_path,
    sidecar_path,
)
from ketpet_bids.bids.sink import write_json, write_tsv
from ketpet_bids.core import stats
from ketpet_bids.errors import InputError

LOGGER = logging.getLogger("ketpet_bids.group")
STATS_COLUMNS = ["analysis", "measure", "region", "contrast", "n", "estimate", "ci_low",
                 "ci_high", "statistic", "p", "q_fdr", "effect_size"]
VARIANT_ENTITIES = ("trc", "seg", "pvc", "model")
BIDS_NA: dict[str, Any] = {"na_values": ["n/a", ""], "keep_default_na": False}
"""Only BIDS's ``n/a`` (and empty cells) are missing: regions such as ``NA`` or ``null`` are names."""
DIAGNOSTIC_COLUMNS = ("region", "r2", "aic", "n_frames_used")
SYMPTOM_KEYS = ("symptom_column", "symptom_layout", "symptom_table")
SPEC_KEYS = ("group_column", "patient_label", "control_label", "arm_column", "placebo_label",
             "covariates", "baseline_session", "post_session", *SYMPTOM_KEYS, "composites",
             "key_regions", "prediction", "responder_threshold", "cv_folds", "n_permutations",
             "seed")
ANALYSIS_DEFAULTS: dict[str, Any] = {"key_regions": None, "prediction": True,
                                     "responder_threshold": 0.5, "cv_folds": 5,
                                     "n_permutations": 1000, "seed": 0}
"""Defaults of the spec keys that are settings rather than facts of the dataset."""
SYMPTOM_LAYOUTS = ("sessions", "long", "wide")
"""Where per-session symptom scores can be, most preferred first (see the module docstring)."""
SESSIONS_TABLES = "sub-*/sub-*_sessions.tsv"
SYMPTOM_SCALES = r"madrs|ham|hdrs|bdi|qids|phq"
"""Column names (regular expression, case-insensitive) recognised as symptom scores."""
CORTICAL_REGIONS = r"^(?:ctx|cortex)[-_]|^(?:frontal|parietal|temporal|occipital|cingulate|insula)"
"""Region names (regular expression, case-insensitive) pooled into the inferred ``cortex``."""
HEMISPHERE = r"^(?P<a>.+)[-_](?:left|right|lh|rh)$|^(?:left|right|lh|rh)[-_](?P<b>.+)$"
"""Region names of one hemisphere; the two of a pair make an inferred bilateral composite."""
NOT_COMPOSITED = frozenset({"k2", "k3", "k4", "k2prime"})
"""Parameters without composites: a mixture of compartment systems has no single rate
constant. Every other parameter (SUV, SUVR, VT, DVR, BPND, Ki, K1, R1, vB, intercept) is linear
in the tissue curve, so its composite is the volume-weighted mean (module docstring)."""


@dataclass
class GroupResult:
    """What :func:`run_group` produced.

    Attributes
    ----------
    stats_files : list of Path
        The written ``group/*_stats.tsv`` tables.
    statmaps : list of Path
        The written voxelwise ``group/*_statmap.nii.gz`` maps.
    notes : list of str
        Missing-data counts and skipped analyses, one sentence each.
    spec : dict
        The group design used (inferred defaults merged with the user's spec).
    excluded : dict
        ``{reason: sorted subject labels}`` of subjects left out somewhere.
    """

    stats_files: list[Path] = field(default_factory=list)
    statmaps: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    spec: dict[str, Any] = field(default_factory=dict)
    excluded: dict[str, list[str]] = field(default_factory=dict)

    def exclude(self, reason: str, subjects: list[str], total: int, analysis: str) -> None:
        """Record (and log) subjects left out of ``analysis`` for ``reason``."""
        if not subjects:
            return
        names = sorted(set(subjects))
        self.excluded.setdefault(reason, [])
        self.excluded[reason] = sorted(set(self.excluded[reason]) | set(names))
        note = (f"{analysis}: {len(names)} of {total} subjects left out ({reason}): "
                f"{', '.join('sub-' + s for s in names)}")
        if note not in self.notes:
            self.notes.append(note)
            LOGGER.warning(note)


# --------------------------------------------------------------------------- inputs
def parse_entities(filename: str) -> dict[str, str]:
    """BIDS entities and suffix of a derivative file name.

    Examples
    --------
    >>> parse_entities("sub-01_ses-post_trc-K2_seg-sim_pvc-gtm_model-suvr_kinpar.tsv")
    {'sub': '01', 'ses': 'post', 'trc': 'K2', 'seg': 'sim', 'pvc': 'gtm', 'model': 'suvr', \
'suffix': 'kinpar'}
    """
    stem = filename.split(".", 1)[0]
    *pairs, suffix = stem.split("_")
    entities = {}
    for pair in pairs:
        key, sep, value = pair.partition("-")
        if not sep or not value:
            raise InputError(filename, f"'{pair}' is not a BIDS key-value entity")
        entities[key] = value
    return {**entities, "suffix": suffix}


def read_measures(output_dir: Path, pattern: str) -> pd.DataFrame:
    """All participant ``_kinpar.tsv`` values in long form.

    Returns
    -------
    pandas.DataFrame
        Columns ``subject session measure region value param seg`` (``session`` empty when
        the data have no sessions; ``seg`` ``"none"`` without atlas); ``measure`` is the
        parameter with the entities of its table, :func:`~ketpet_bids.bids.naming.group_measure`
        (e.g. ``trc-K2_seg-sim_pvc-gtm_model-suvr_meas-SUVR``).
    """
    frames = []
    for path in sorted(Path(output_dir).glob(pattern)):
        ents = parse_entities(path.name)
        table = pd.read_csv(path, sep="\t", **BIDS_NA)
        if "region" not in table.columns:
            raise InputError(path, "has no 'region' column")
        params = [c for c in table.columns if c not in DIAGNOSTIC_COLUMNS]
        long = table.melt(id_vars="region", value_vars=params, var_name="param")
        long["region"] = long["region"].astype(str)
        long["subject"], long["session"] = ents["sub"], ents.get("ses", "")
        for key in VARIANT_ENTITIES:
            long[key] = ents.get(key, "none")
        long["source"] = path.name
        frames.append(long)
    if not frames:
        raise InputError(output_dir, f"no participant tables match '{pattern}'",
                         "run the participant level first")
    data = pd.concat(frames, ignore_index=True)
    data["measure"] = _measure_labels(data)
    keys = ["subject", "session", "measure", "region"]
    duplicated = data[data.duplicated(keys, keep=False)]
    if len(duplicated):
        raise InputError(duplicated["source"].iloc[0], "several tables give the same subject, "
                         "session, measure and region (e.g. two runs)",
                         "keep one run per session in the output directory")
    return data[[*keys, "value", "param", "seg"]]


def _measure_labels(data: pd.DataFrame) -> np.ndarray:
    """Measure label of every row (:func:`~ketpet_bids.bids.naming.group_measure`)."""
    keys = ["param", *(k for k in VARIANT_ENTITIES if k in data)]
    variants = data[keys].drop_duplicates()
    variants["label"] = [group_measure(row["param"], **{k: row[k] for k in keys[1:]})
                         for _, row in variants.iterrows()]
    return data[keys].merge(variants, on=keys, how="left")["label"].to_numpy()


def _strip(values: pd.Series, prefix: str) -> pd.Series:
    return values.astype(str).str.removeprefix(prefix)


def _read_table(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, sep="\t", dtype={"participant_id": str, "session_id": str},
                           **BIDS_NA)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise InputError(path, f"cannot be read as a TSV table ({err})") from None


# --------------------------------------------------------------------------- design
def _match(values: list[str], pattern: str) -> str | None:
    hits = [v for v in values if re.search(pattern, v, re.IGNORECASE)]
    return hits[0] if len(hits) == 1 else None


def infer_spec(bids_dir: Path, output_dir: Path | None = None) -> dict[str, Any]:
    """A default group design from ``participants.tsv``, the sessions and the symptom tables.

    Parameters
    ----------
    bids_dir
        The raw dataset.
    output_dir
        Participant-level derivatives: their region names give the inferred ``composites``
        (``None``: ``composites`` is ``None`` and inferred when the group level runs).

    Returns
    -------
    dict
        Keys :data:`SPEC_KEYS` (see the module docstring). Groups are recognised by names such
        as patient/case/MDD vs control/healthy; sessions by baseline/pre vs post/follow-up
        (else sorted order); the symptom score is the first column named like a scale
        (:data:`SYMPTOM_SCALES`) in the most preferred layout (:data:`SYMPTOM_LAYOUTS`);
        composites by :func:`infer_composites`. Values that cannot be inferred are ``None``.
    """
    return _complete_spec(Path(bids_dir), {}, _region_names(output_dir))


def load_group_spec(path: Path | None, bids_dir: Path, output_dir: Path | None = None
                    ) -> dict[str, Any]:
    """The inferred design (:func:`infer_spec`), overridden by the keys of a YAML
    ``--group-spec`` file."""
    if path is None:
        return infer_spec(bids_dir, output_dir)
    import yaml

    try:
        given = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise InputError(path, f"cannot be read as YAML ({err})") from None
    unknown = set(given) - set(SPEC_KEYS) if isinstance(given, dict) else {"<not a mapping>"}
    if unknown:
        raise InputError(path, f"unknown keys {sorted(unknown)}",
                         f"use only: {', '.join(SPEC_KEYS)}")
    return _complete_spec(Path(bids_dir), given, _region_names(output_dir))


def infer_composites(regions: list[str]) -> dict[str, list[str]]:
    """Default composite regions of an atlas.

    ``cortex``: the regions named like cortex (:data:`CORTICAL_REGIONS`: frontal, parietal,
    temporal, occipital, cingulate, insula, ``ctx-…``, ``cortex-…``), when there are at least
    two and no region is already called ``cortex``; and one bilateral composite ``<name>`` per
    pair ``<name>-left``/``<name>-right`` (or ``left-<name>``…, ``lh``/``rh``,
    :data:`HEMISPHERE`) whose ``<name>`` is not a region.

    Examples
    --------
    >>> infer_composites(["frontal", "insula", "thalamus", "habenula-left", "habenula-right"])
    {'cortex': ['frontal', 'insula'], 'habenula': ['habenula-left', 'habenula-right']}
    """
    names = list(dict.fromkeys(regions))
    out: dict[str, list[str]] = {}
    cortical = [r for r in names if re.search(CORTICAL_REGIONS, r, re.IGNORECASE)]
    if len(cortical) >= 2 and "cortex" not in names:
        out["cortex"] = cortical
    sides: dict[str, list[str]] = {}
    for region in names:
        if m := re.fullmatch(HEMISPHERE, region, re.IGNORECASE):
            sides.setdefault(m.group("a") or m.group("b"), []).append(region)
    out.update({base: pair for base, pair in sides.items()
                if len(pair) == 2 and base not in names and base not in out})
    return out


def _region_names(output_dir: Path | None, pattern: str = "sub-*/**/*_kinpar.tsv"
                  ) -> list[str] | None:
    """Region names of the first participant table of each atlas (``None``: no directory)."""
    if output_dir is None:
        return None
    first: dict[str, Path] = {}
    for path in sorted(Path(output_dir).glob(pattern)):
        first.setdefault(parse_entities(path.name).get("seg", "none"), path)
    return [str(r) for path in first.values()
            for r in pd.read_csv(path, sep="\t", usecols=["region"], **BIDS_NA)["region"]]


def _check_composites(value: Any) -> dict[str, list[str]]:
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, list) and len(v) >= 2
            and all(isinstance(r, str) for r in v) for k, v in value.items()):
        raise InputError("--group-spec", "composites must map a name to a list of at least two "
                         "region names", "e.g. composites: {cortex: [frontal, parietal]}")
    return value


def _complete_spec(bids_dir: Path, given: dict[str, Any], regions: list[str] | None = None
                   ) -> dict[str, Any]:
    """The design ``given`` (any subset of :data:`SPEC_KEYS`) completed with inferred values.

    Inferred values follow the given ones: the group labels come from the given
    ``group_column``, and the symptom keys from the most preferred table consistent with the
    symptom keys given. ``composites`` given as ``None`` or absent is inferred from
    ``regions`` (stays ``None`` without them); ``{}`` turns composites off.
    """
    if given.get("composites") is not None:
        given = {**given, "composites": _check_composites(given["composites"])}
    else:
        given = {**given, "composites": None if regions is None else infer_composites(regions)}
    participants = _read_table(bids_dir / "participants.tsv")
    group_column = given.get("group_column", next(
        (c for c in ("group", "diagnosis", "dx") if c in participants), None))
    labels = (sorted(participants[group_column].dropna().astype(str).unique())
              if group_column in participants else [])
    arm_column = given.get("arm_column", next(
        (c for c in ("arm", "treatment") if c in participants), None))
    arms = (sorted(participants[arm_column].dropna().astype(str).unique())
            if arm_column in participants else [])
    sessions = sorted({p.name.removeprefix("ses-") for p in bids_dir.glob("sub-*/ses-*")
                       if p.is_dir()})
    baseline = _match(sessions, r"base|pre|^bl|screen") or (sessions[0] if sessions else None)
    post = _match([s for s in sessions if s != baseline], r"post|follow|^fu|after") or next(
        (s for s in sessions if s != baseline), None)
    inferred = {
        "group_column": group_column,
        "patient_label": _match(labels, r"patient|case|mdd|trd|depress"),
        "control_label": _match(labels, r"control|healthy|^hc$"),
        "arm_column": arm_column,
        "placebo_label": _match(arms, r"placebo|sham|saline|control|vehicle"),
        "covariates": [c for c in ("age", "sex") if c in participants],
        "baseline_session": baseline,
        "post_session": post,
    }
    fixed = {k: given[k] for k in SYMPTOM_KEYS if k in given}
    merged = {**inferred, **ANALYSIS_DEFAULTS, **given,
              **_infer_symptoms(bids_dir, sessions, fixed)}
    return {**{k: merged[k] for k in SPEC_KEYS if k in merged}, **merged}


def _infer_symptoms(bids_dir: Path, sessions: list[str], fixed: dict[str, Any]
                    ) -> dict[str, Any]:
    """The symptom keys: those ``fixed`` by the user, the others from the first consistent source.

    Raises
    ------
    InputError
        When keys are fixed but no table in the dataset matches them.
    """
    if len(fixed) == len(SYMPTOM_KEYS) or ("symptom_column" in fixed
                                            and fixed["symptom_column"] is None):
        return {**dict.fromkeys(SYMPTOM_KEYS), **fixed}
    sources = _symptom_sources(bids_dir, sessions, fixed.get("symptom_table"))
    for layout, table, scores in sources:
        if (fixed.get("symptom_layout", layout), fixed.get("symptom_table", table)) != (layout,
                                                                                       table):
            continue
        wanted = ([fixed["symptom_column"]] if "symptom_column" in fixed
                  else [s for s in scores if re.search(SYMPTOM_SCALES, s, re.IGNORECASE)])
        hits = [s for s in wanted if s in scores]
        if hits:
            return {"symptom_column": hits[0], "symptom_layout": layout, "symptom_table": table}
    if fixed:
        found = "; ".join(f"{t} ({lay}: {', '.join(s) or 'no numeric scores'})"
                          for lay, t, s in sources) or "no sessions.tsv or phenotype tables"
        raise InputError("--group-spec", f"no symptom table matches {fixed}",
                         f"the dataset has {found}")
    return dict.fromkeys(SYMPTOM_KEYS)


def _symptom_sources(bids_dir: Path, sessions: list[str], extra: str | None
                     ) -> list[tuple[str, str, list[str]]]:
    """Tables that may hold per-session scores, most preferred layout first.

    Parameters
    ----------
    sessions
        Session labels of the dataset (recognise ``<score>_<session>`` columns).
    extra
        A table named by the user, looked at besides :data:`SESSIONS_TABLES` and
        ``phenotype/*.tsv``.

    Returns
    -------
    list of (layout, table, scores)
        ``table`` is relative to ``bids_dir`` (a glob for ``sessions``); ``scores`` are the
        names of its numeric score columns (for ``wide``, the ``<score>`` part).
    """
    names = [SESSIONS_TABLES, *(p.relative_to(bids_dir).as_posix()
                                for p in sorted(bids_dir.glob("phenotype/*.tsv")))]
    wide = re.compile(rf"(.+)_(?:ses-)?(?:{'|'.join(map(re.escape, sessions))})")
    found = []
    for name in dict.fromkeys([*names, *([extra] if extra else [])]):
        paths = _glob(bids_dir, name)
        if not paths:
            continue
        table = pd.concat([_read_table(p) for p in paths], ignore_index=True)
        numeric = [str(c) for c in table.select_dtypes("number").columns]
        if "session_id" in table:
            found.append(("long" if "participant_id" in table else "sessions", name, numeric))
        elif "participant_id" in table and sessions:
            found.append(("wide", name, list(dict.fromkeys(
                m.group(1) for c in numeric if (m := wide.fullmatch(c))))))
    return sorted(found, key=lambda source: SYMPTOM_LAYOUTS.index(source[0]))


def _glob(bids_dir: Path, pattern: str) -> list[Path]:
    if Path(pattern).is_absolute():
        raise InputError("--group-spec", f"symptom_table '{pattern}' is an absolute path",
                         "give it relative to BIDS_DIR")
    return sorted(bids_dir.glob(pattern))


def read_symptom_scores(bids_dir: Path, spec: dict[str, Any]) -> pd.DataFrame:
    """The symptom score of every participant and session, from the table the spec names.

    Parameters
    ----------
    bids_dir
        The raw dataset.
    spec
        Group design with ``symptom_column``, ``symptom_layout`` and ``symptom_table``.

    Returns
    -------
    pandas.DataFrame
        Rows subject labels (no ``sub-``), columns session labels (no ``ses-``), float scores;
        NaN where a score is ``n/a``. Participants or sessions without a row are absent.

    Raises
    ------
    InputError
        No such table, missing columns, non-numeric scores, or two scores for the same
        participant and session.
    """
    column, layout, table = (spec[k] for k in SYMPTOM_KEYS)
    if layout not in SYMPTOM_LAYOUTS:
        raise InputError("--group-spec", f"symptom_layout '{layout}' is not one of "
                         f"{', '.join(SYMPTOM_LAYOUTS)}")
    paths = _glob(Path(bids_dir), table)
    if not paths:
        raise InputError(Path(bids_dir) / table, "no such symptom table",
                         "fix symptom_table in --group-spec")
    frames = [f for f in (_scores_of(p, layout, column) for p in paths) if f is not None]
    if not frames:
        raise InputError(Path(bids_dir) / table, f"no column '{column}' in any table",
                         "fix symptom_column in --group-spec")
    scores = pd.concat(frames, ignore_index=True)
    repeated = scores[scores.duplicated(["subject", "session"], keep=False)]
    if len(repeated):
        raise InputError(Path(bids_dir) / table, f"several '{column}' scores for sub-"
                         f"{repeated['subject'].iloc[0]} ses-{repeated['session'].iloc[0]}")
    return scores.pivot(index="subject", columns="session", values="score")


def _scores_of(path: Path, layout: str, column: str) -> pd.DataFrame | None:
    """Rows ``subject session score`` of one table (``None``: a sessions.tsv without ``column``)."""
    table = _read_table(path)
    if layout == "wide":
        _require(path, table, ["participant_id"])
        pattern = re.compile(rf"{re.escape(column)}_(?:ses-)?(.+)")
        sessions = {c: m.group(1) for c in table.columns if (m := pattern.fullmatch(str(c)))}
        if not sessions:
            raise InputError(path, f"no '{column}_<session>' columns",
                             "fix symptom_column or symptom_layout in --group-spec")
        table = table.melt(id_vars="participant_id", value_vars=list(sessions),
                           var_name="session_id", value_name=column)
        table["session_id"] = table["session_id"].map(sessions)
    elif layout == "sessions":
        _require(path, table, ["session_id"])
        if column not in table:
            return None
        table = table.assign(participant_id=parse_entities(path.name)["sub"])
    else:
        _require(path, table, ["participant_id", "session_id", column])
    score = pd.to_numeric(table[column], errors="coerce")
    bad = table[column][score.isna() & table[column].notna()]
    if len(bad):
        raise InputError(path, f"'{column}' value '{bad.iloc[0]}' is not a number")
    return pd.DataFrame({"subject": _strip(table["participant_id"], "sub-"),
                         "session": _strip(table["session_id"], "ses-"),
                         "score": score.astype(float)})


def _require(path: Path, table: pd.DataFrame, columns: list[str]) -> None:
    missing = [c for c in columns if c not in table]
    if missing:
        raise InputError(path, f"no column '{missing[0]}'",
                         "fix the table or the symptom keys of --group-spec")


# --------------------------------------------------------------------------- analyses
def run_group(output_dir: Path, bids_dir: Path, *,
              measure_files_glob: str = "sub-*/**/*_kinpar.tsv",
              spec: dict[str, Any] | None = None, voxelwise_space: str | None = None,
              voxelwise_mask: Path | None = None, voxelwise_permutations: int = 0
              ) -> GroupResult:
    """Run every group analysis and write ``group/*_stats.tsv`` (and voxelwise statmaps).

    Parameters
    ----------
    output_dir
        Participant-level derivatives (tables are found with ``measure_files_glob``).
    bids_dir
        The raw dataset (``participants.tsv``, ``phenotype/``).
    spec
        Group design (keys :data:`SPEC_KEYS`); missing keys are inferred (:func:`infer_spec`).
    voxelwise_space
        Also run the voxelwise analyses on the ``space-<voxelwise_space>`` ``_mimap`` maps
        (:func:`run_voxelwise`); ``None`` (default) skips them.
    voxelwise_mask, voxelwise_permutations
        Brain mask on the maps' grid, and max-T permutations (0: FDR only).

    Returns
    -------
    GroupResult
        Written tables and maps, missing-data notes, the design used.
    """
    measures = read_measures(Path(output_dir), measure_files_glob)
    spec = _complete_spec(Path(bids_dir), spec or {}, list(measures["region"].unique()))
    result = GroupResult(spec=spec)
    measures = add_composites(measures, spec["composites"], Path(output_dir), result)
    subjects = _subject_table(Path(bids_dir), spec)
    change = _change_data(measures, subjects, spec, Path(bids_dir), result)
    tables = [_baseline(measures, subjects, spec, result), _change(change, spec, result),
              _symptoms(change, subjects, spec, Path(output_dir), result),
              _prediction(change, spec, result)]
    for table in tables:
        for (analysis, measure), rows in table.groupby(["analysis", "measure"], sort=True):
            path = Path(output_dir) / group_stats_path(analysis, measure)
            result.stats_files.append(write_tsv(path, rows[STATS_COLUMNS]))
            write_json(sidecar_path(path), {
                "Analysis": analysis, "Measure": measure,
                "EffectSize": {c: _effect_size_meaning(c) for c in rows["contrast"].unique()},
                "Design": {k: spec[k] for k in SPEC_KEYS if k in spec}})
    if voxelwise_space:
        result.statmaps = run_voxelwise(Path(output_dir), subjects, spec, result,
                                        space=voxelwise_space, mask=voxelwise_mask,
                                        n_permutations=voxelwise_permutations)
    return result


def add_composites(measures: pd.DataFrame, composites: dict[str, list[str]],
                   output_dir: Path, result: GroupResult) -> pd.DataFrame:
    """Append the composite regions' values to :func:`read_measures`' table.

    A composite's value in one scan is the volume-weighted mean of its members' values,
    ``Σ_r V_r·x_r / Σ_r V_r``, with the subject's region volumes ``V_r`` from
    ``anat/sub-<s>_seg-<atlas>_morph.tsv``. For SUV and SUVR this is exactly the value of the
    composite's own time-activity curve (the mean activity over the union of the regions, the
    same window and reference) as long as the volumes are those the curves were averaged
    over; for VT, DVR, BPND, Ki, K1, R1 and vB it is the value that the compartment model
    defines for the mixture (a fit to the composite curve approximates it). Rate constants
    (:data:`NOT_COMPOSITED`) get no composite. Without a ``morph.tsv`` for every subject of an
    atlas, that atlas's composites are unweighted means (stated in the notes). A scan missing a
    member's value has no composite value; a measure whose regions lack a member, or already
    have a region of the composite's name, gets no composite (noted).

    Parameters
    ----------
    measures
        Columns ``subject session measure region value param seg``.
    composites
        Composite name → member region names.
    output_dir
        Participant-level derivatives (``morph.tsv`` files).
    result
        Receives the notes.

    Returns
    -------
    pandas.DataFrame
        ``measures`` with one row per composite, scan and measure added.
    """
    if not composites:
        return measures
    volumes, unweighted = _region_volumes(output_dir, measures[["subject", "seg"]]
                                          .drop_duplicates(), result)
    regions = measures.groupby("measure")["region"].agg(set)
    usable = measures[~measures["param"].isin(NOT_COMPOSITED)]
    added = []
    for name, members in composites.items():
        fits = [m for m in usable["measure"].unique()
                if set(members) <= regions[m] and name not in regions[m]]
        if not fits:
            result.notes.append(f"composite '{name}': no measure has all of its regions "
                                f"({', '.join(members)}) and no region of that name; skipped")
            continue
        part = usable[usable["measure"].isin(fits) & usable["region"].isin(members)].merge(
            volumes, on=["subject", "seg", "region"], how="left")
        weight = np.where(part["seg"].isin(unweighted), 1.0,
                          part["volume_mm3"].astype(float).to_numpy())
        part = part.assign(weighted=weight * part["value"], weight=weight,
                           finite=np.isfinite(part["value"]) & np.isfinite(weight))
        sums = part.groupby(["subject", "session", "measure", "param", "seg"],
                            as_index=False)[["weighted", "weight", "finite"]].sum()
        sums["value"] = np.where(sums["finite"] == len(members),
                                 sums["weighted"] / sums["weight"], np.nan)
        added.append(sums.assign(region=name)[measures.columns])
        how = "unweighted" if set(part["seg"]) <= unweighted else "volume-weighted"
        result.notes.append(f"composite '{name}' = {how} mean of {', '.join(members)} "
                            f"({len(fits)} measures)")
    return pd.concat([measures, *added], ignore_index=True)


def _region_volumes(output_dir: Path, scans: pd.DataFrame, result: GroupResult
                    ) -> tuple[pd.DataFrame, set[str]]:
    """Region volumes (``subject seg region volume_mm3``) from the ``morph.tsv`` tables, and
    the atlases lacking a table for some subject (their composites are unweighted)."""
    frames, unweighted = [], set()
    for seg, rows in scans.groupby("seg"):
        paths = {s: Path(output_dir) / output_path("morph", subject=s, atlas=seg)
                 for s in rows["subject"]}
        missing = sorted(s for s, p in paths.items() if not p.is_file())
        if missing:
            unweighted.add(seg)
            result.notes.append(f"composites of seg-{seg}: no morph.tsv for {len(missing)} of "
                                f"{len(paths)} subjects (e.g. sub-{missing[0]}); unweighted "
                                "means used for every subject")
            continue
        for subject, path in paths.items():
            table = _read_table(path)
            _require(path, table, ["name", "volume_mm3"])
            frames.append(pd.DataFrame({"subject": subject, "seg": seg,
                                        "region": table["name"].astype(str),
                                        "volume_mm3": table["volume_mm3"].astype(float)}))
    columns = ["subject", "seg", "region", "volume_mm3"]
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns),
            unweighted)


EFFECT_SIZES = (
    (r"^patient-control$", "covariate-adjusted standardised difference "
     "J·β/σ̂ of the OLS (sign of the estimate)"),
    (r":welch$", "Hedges' g, unadjusted (may differ in sign from the adjusted estimate)"),
    (r"^interaction:", "Hedges' g of the change, active arm vs comparator"),
    (r"^(pearson|spearman|partial)", "the correlation itself"),
    (r"^responder:", "Somers' D = 2·AUC − 1"),
    (r".", "Cohen's d_z of the changes"),
)
"""Meaning of ``effect_size`` per contrast (regular expression), first match wins."""


def _effect_size_meaning(contrast: str) -> str:
    return next(text for pattern, text in EFFECT_SIZES if re.search(pattern, contrast))


def _subject_table(bids_dir: Path, spec: dict[str, Any]) -> pd.DataFrame:
    participants = _read_table(bids_dir / "participants.tsv")
    for key in ("group_column", "arm_column"):
        column = spec.get(key)
        if column and column not in participants:
            raise InputError(bids_dir / "participants.tsv", f"no column '{column}' ({key})",
                             "fix the --group-spec or the table")
    absent = [c for c in spec.get("covariates") or [] if c not in participants]
    if absent:
        raise InputError(bids_dir / "participants.tsv", f"no covariate columns {absent}",
                         "fix 'covariates' in the --group-spec or the table")
    if not spec.get("group_column") or not spec.get("patient_label") or not spec.get(
            "control_label"):
        raise InputError(bids_dir / "participants.tsv", "cannot tell patients from controls",
                         "give group_column, patient_label and control_label in --group-spec")
    participants.index = _strip(participants["participant_id"], "sub-")
    return participants


def _covariates(subjects: pd.DataFrame, spec: dict[str, Any]) -> pd.DataFrame:
    """Numeric covariates per subject (categories dummy-coded, first level dropped; NaN rows
    where any covariate is missing)."""
    raw = subjects[list(spec.get("covariates") or [])]
    if raw.empty:
        return pd.DataFrame(index=subjects.index)
    coded = pd.get_dummies(raw, drop_first=True, dtype=float)
    coded.loc[raw.isna().any(axis=1)] = np.nan
    return coded


def _wide(measures: pd.DataFrame, session: str | None) -> pd.DataFrame:
    """Values of one session: rows subjects, columns (measure, region)."""
    rows = measures[measures["session"] == (session or "")]
    return rows.pivot_table(index="subject", columns=["measure", "region"], values="value",
                            aggfunc="first")


def _rows(analysis: str, contrast: str, wide: pd.DataFrame,
          test: Callable[[pd.Series], stats.TestResult]) -> list[dict[str, Any]]:
    out = []
    for (measure, region), values in wide.items():
        try:
            res = test(values)
        except (ValueError, np.linalg.LinAlgError):  # too few observations for this test
            res = stats.TestResult.not_estimable(int(values.notna().sum()))
        out.append({"analysis": analysis, "measure": measure, "region": region,
                    "contrast": contrast, **asdict(res)})
    return out


def _finish(rows: list[dict[str, Any]]) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=[c for c in STATS_COLUMNS if c != "q_fdr"])
    table["q_fdr"] = table.groupby(["analysis", "measure", "contrast"])["p"].transform(
        lambda p: stats.fdr_bh(p.to_numpy()))
    return table[STATS_COLUMNS]


def _baseline(measures: pd.DataFrame, subjects: pd.DataFrame, spec: dict[str, Any],
              result: GroupResult) -> pd.DataFrame:
    wide = _wide(measures, spec.get("baseline_session"))
    group = subjects[spec["group_column"]].reindex(wide.index).astype(str)
    known = group.isin([spec["patient_label"], spec["control_label"]])
    result.exclude("no patient/control group", list(wide.index[~known]), len(wide), "baseline")
    covariates = _covariates(subjects, spec).reindex(wide.index)
    complete = known & covariates.notna().all(axis=1)
    result.exclude("missing covariate", list(wide.index[known & ~complete]), len(wide),
                   "baseline")
    wide, covariates = wide[complete], covariates[complete]
    patient = (group[complete] == spec["patient_label"]).to_numpy()
    if min(patient.sum(), (~patient).sum()) < 2:
        result.notes.append("baseline: skipped (fewer than 2 patients or 2 controls)")
        return _finish([])
    used = covariates.loc[:, covariates.nunique() > 1].to_numpy()

    def ols(values: pd.Series) -> stats.TestResult:
        ok = values.notna().to_numpy()
        return stats.group_difference(values.to_numpy()[ok], patient[ok], used[ok])

    def welch(values: pd.Series) -> stats.TestResult:
        y = values.to_numpy()
        return stats.welch_difference(y[patient & ~np.isnan(y)], y[~patient & ~np.isnan(y)])

    return _finish(_rows("baseline", "patient-control", wide, ols)
                   + _rows("baseline", "patient-control:welch", wide, welch))


@dataclass
class ChangeData:
    """Patients' regional values at both sessions and their symptom scores.

    Attributes
    ----------
    before, after : pandas.DataFrame
        Rows patients with a treatment arm and a scan at that session; columns (measure,
        region).
    arm : pandas.Series
        Arm label per patient (all patients with an arm).
    symptom_change, symptom_baseline : pandas.Series
        Per patient with scores at both sessions (empty without a symptom score).
    """

    before: pd.DataFrame
    after: pd.DataFrame
    arm: pd.Series
    symptom_change: pd.Series
    symptom_baseline: pd.Series

    @property
    def paired(self) -> list[str]:
        """Patients with both scans."""
        return [s for s in self.before.index if s in self.after.index]


def _change_data(measures: pd.DataFrame, subjects: pd.DataFrame, spec: dict[str, Any],
                 bids_dir: Path, result: GroupResult) -> ChangeData | None:
    """Collect the patients' sessions and scores once, recording who is left out and why."""
    arm_column, post = spec.get("arm_column"), spec.get("post_session")
    if not arm_column or not post:
        result.notes.append("change, symptoms, prediction: skipped (no treatment arm column "
                            "or no post session)")
        return None
    baseline = spec["baseline_session"]
    before, after = _wide(measures, baseline), _wide(measures, post)
    is_patient = subjects[spec["group_column"]].astype(str) == spec["patient_label"]
    patients = [s for s in subjects.index[is_patient] if s in before.index or s in after.index]
    arms = subjects[arm_column].reindex(patients)
    result.exclude("patient without a treatment arm", list(arms.index[arms.isna()]),
                   len(patients), "change")
    arms = arms.dropna().astype(str)
    result.exclude(f"no '{baseline}' scan", [s for s in arms.index if s not in before.index],
                   len(arms), "change")
    for arm in sorted(arms.unique()):
        members = arms.index[arms == arm]
        result.exclude(f"no '{post}' scan", [s for s in members if s not in after.index],
                       len(members), f"change ({arm})")
    symptom_change = symptom_baseline = pd.Series(dtype=float)
    if spec.get("symptom_column"):
        score = read_symptom_scores(bids_dir, spec).reindex(index=arms.index,
                                                            columns=[baseline, post])
        result.notes.append(f"symptoms: '{spec['symptom_column']}' per session from "
                            f"{spec['symptom_table']} ({spec['symptom_layout']} layout)")
        scanned = [s for s in arms.index if s in before.index and s in after.index]
        has_both = score.notna().all(axis=1)
        result.exclude("no symptom score at both sessions",
                       [s for s in scanned if not has_both[s]], len(arms), "symptoms")
        symptom_baseline = score.loc[has_both, baseline].astype(float)
        symptom_change = (score.loc[has_both, post] - symptom_baseline).astype(float)
    return ChangeData(before=before.reindex([s for s in arms.index if s in before.index]),
                      after=after.reindex([s for s in arms.index if s in after.index]),
                      arm=arms, symptom_change=symptom_change,
                      symptom_baseline=symptom_baseline)


def _change(data: ChangeData | None, spec: dict[str, Any], result: GroupResult
            ) -> pd.DataFrame:
    """Paired absolute and percent change per arm, and the arm × time interaction."""
    if data is None:
        return _finish([])
    label = f"{spec['post_session']}-{spec['baseline_session']}"
    rows: list[dict[str, Any]] = []
    for arm in sorted(data.arm.unique()):
        paired = [s for s in data.paired if data.arm[s] == arm]
        if len(paired) < 2:
            result.notes.append(f"change ({arm}): skipped (fewer than 2 paired subjects)")
            continue
        before, after = data.before.loc[paired], data.after.loc[paired]
        for test, suffix in ((stats.paired_change, ""), (stats.percent_change, ":percent")):
            rows += _rows("change", f"{label}:{arm}{suffix}", after - before,
                          _paired_test(test, before, after))
    return _finish(rows + _interaction_rows(data, spec, result))


def _paired_test(test: Callable[[np.ndarray, np.ndarray], stats.TestResult],
                 before: pd.DataFrame, after: pd.DataFrame
                 ) -> Callable[[pd.Series], stats.TestResult]:
    """A per-region test of the subjects with both values (NaN pairs left out)."""
    def run(difference: pd.Series) -> stats.TestResult:
        ok = difference.notna()
        return test(before.loc[ok, difference.name].to_numpy(),
                    after.loc[ok, difference.name].to_numpy())
    return run


def _interaction_rows(data: ChangeData, spec: dict[str, Any], result: GroupResult
                      ) -> list[dict[str, Any]]:
    """Mixed-model arm × time interaction, every arm against ``placebo_label``."""
    placebo = spec.get("placebo_label")
    active_arms = sorted(a for a in data.arm.unique() if a != placebo)
    if placebo not in set(data.arm) or not active_arms:
        result.notes.append("change: arm × time interaction skipped (no comparator arm; "
                            "set placebo_label in --group-spec)")
        return []
    rows: list[dict[str, Any]] = []
    for arm in active_arms:
        members = data.arm.index[data.arm.isin([arm, placebo])]
        sessions = [data.before.reindex(members).dropna(how="all"),
                    data.after.reindex(members).dropna(how="all")]
        long = pd.concat(sessions)
        post = np.repeat([False, True], [len(sessions[0]), len(sessions[1])])
        active = (data.arm[long.index] == arm).to_numpy()
        if min(len(set(long.index[active])), len(set(long.index[~active]))) < 2:
            result.notes.append(f"change: interaction {arm}-{placebo} skipped (fewer than 2 "
                                "subjects in an arm)")
            continue
        for mask, columns in _by_missing_pattern(long):
            paired = _paired_subjects(long.index[mask], post[mask], active[mask])
            if min(paired) < 2:
                result.notes.append(
                    f"change: interaction {arm}-{placebo} skipped for {len(columns)} "
                    f"measure/region column(s) (subjects with both sessions: {paired[0]} "
                    f"{arm}, {paired[1]} {placebo}; at least 2 per arm are needed)")
                continue
            fits = stats.arm_time_interaction(long.loc[mask, columns].to_numpy(),
                                              long.index[mask].to_numpy(), post[mask],
                                              active[mask])
            rows += [{"analysis": "change", "measure": m, "region": r,
                      "contrast": f"interaction:{arm}-{placebo}", **asdict(fit)}
                     for (m, r), fit in zip(columns, fits, strict=True)]
    return rows


def _paired_subjects(subject: np.ndarray, post: np.ndarray, active: np.ndarray
                     ) -> tuple[int, int]:
    """Subjects observed at both sessions, in the active arm and in the comparator arm."""
    frame = pd.DataFrame({"subject": subject, "post": post, "active": active})
    both = frame.groupby("subject").agg(sessions=("post", "nunique"), active=("active", "first"))
    both = both[both["sessions"] == 2]
    return int(both["active"].sum()), int((~both["active"]).sum())


def _by_missing_pattern(table: pd.DataFrame) -> list[tuple[np.ndarray, list[Any]]]:
    """Columns grouped by which rows they have values for: ``[(row mask, columns), …]``."""
    groups: dict[bytes, tuple[np.ndarray, list[Any]]] = {}
    for column in table.columns:
        mask = table[column].notna().to_numpy()
        groups.setdefault(mask.tobytes(), (mask, []))[1].append(column)
    return list(groups.values())


def _symptoms(data: ChangeData | None, subjects: pd.DataFrame, spec: dict[str, Any],
              output_dir: Path, result: GroupResult) -> pd.DataFrame:
    """Regional change vs symptom change: Pearson, Spearman, partial; pooled and per arm."""
    if data is None or not spec.get("symptom_column"):
        result.notes.append("symptoms: skipped (no post session or no symptom score found)")
        return _finish([])
    used = [s for s in data.paired if s in data.symptom_change.index]
    if len(used) < 4:
        result.notes.append("symptoms: skipped (fewer than 4 patients with change and scores)")
        return _finish([])
    diff = data.after.loc[used] - data.before.loc[used]
    covariates = _covariates(subjects, spec).reindex(used)
    result.exclude("missing covariate", list(covariates.index[covariates.isna().any(axis=1)]),
                   len(used), "symptoms (partial)")
    rows: list[dict[str, Any]] = []
    for arm in [None, *sorted(data.arm[used].unique())]:
        members = [s for s in used if arm is None or data.arm[s] == arm]
        suffix = "" if arm is None else f":{arm}"
        x = data.symptom_change[members]
        cov = covariates.loc[members].dropna()
        cov = cov.loc[:, cov.nunique() > 1]
        if len(members) >= 4:
            rows += (_rows("symptoms", f"pearson{suffix}", diff.loc[members],
                           _correlate(stats.pearson, x))
                     + _rows("symptoms", f"spearman{suffix}", diff.loc[members],
                             _correlate(stats.spearman, x)))
        if len(cov) >= cov.shape[1] + 4:
            rows += _rows("symptoms", f"partial{suffix}", diff.loc[cov.index],
                          _correlate(stats.partial_correlation, x[cov.index], cov.to_numpy()))
        else:
            result.notes.append(f"symptoms: partial correlation{suffix or ' (pooled)'} skipped "
                                f"({len(cov)} patients with covariates)")
    table = _finish(rows)
    _scatter_figures(table, diff, data, spec, output_dir)
    return table


def _correlate(method: Callable[..., stats.TestResult], symptom: pd.Series, *extra: Any
               ) -> Callable[[pd.Series], stats.TestResult]:
    def run(values: pd.Series) -> stats.TestResult:
        ok = values.notna().to_numpy()
        if ok.sum() < 4:  # the Fisher-z interval needs n − 3 > 0
            return stats.TestResult.not_estimable(int(ok.sum()))
        return method(values.to_numpy()[ok], symptom.to_numpy()[ok],
                      *(e[ok] for e in extra))
    return run


def _scatter_figures(table: pd.DataFrame, diff: pd.DataFrame, data: ChangeData,
                     spec: dict[str, Any], output_dir: Path) -> None:
    """Change vs symptom change of the key regions, one figure per measure."""
    from ketpet_bids.reports.figures import plot_change_vs_symptoms

    pooled = table[table["contrast"] == "pearson"]
    for measure, rows in pooled.groupby("measure"):
        regions = spec.get("key_regions") or list(rows.nsmallest(4, "p")["region"])
        regions = [r for r in regions if (measure, r) in diff.columns]
        points = pd.concat([pd.DataFrame({"region": r, "change": diff[(measure, r)],
                                          "symptom_change": data.symptom_change[diff.index],
                                          "arm": data.arm[diff.index]}) for r in regions])
        plot_change_vs_symptoms(points, output_dir / group_figure_path("symptoms", measure,
                                                                       "scatter"),
                                f"{measure}: regional change vs {spec['symptom_column']} change")


def _prediction(data: ChangeData | None, spec: dict[str, Any], result: GroupResult
                ) -> pd.DataFrame:
    """Responders (relative symptom reduction ≥ threshold) from baseline and change values."""
    if data is None or not spec.get("prediction") or not spec.get("symptom_column"):
        result.notes.append("prediction: skipped (turned off, or no post session or symptom "
                            "score)")
        return _finish([])
    used = [s for s in data.paired if s in data.symptom_change.index
            and data.symptom_baseline[s] > 0]
    result.exclude("baseline symptom score not positive",
                   [s for s in data.paired if s in data.symptom_baseline.index
                    and data.symptom_baseline[s] <= 0], len(data.paired), "prediction")
    reduction = -data.symptom_change[used] / data.symptom_baseline[used]
    responder = (reduction >= spec["responder_threshold"]).to_numpy()
    if min(responder.sum(), (~responder).sum()) < 2:
        result.notes.append(f"prediction: skipped ({int(responder.sum())} responders and "
                            f"{int((~responder).sum())} non-responders; need 2 of each)")
        return _finish([])
    result.notes.append(f"prediction: {int(responder.sum())} responders (≥ "
                        f"{100 * spec['responder_threshold']:g}% reduction) of {len(used)} "
                        f"patients; {spec['cv_folds']}-fold CV, {spec['n_permutations']} "
                        f"permutations (seed {spec['seed']})")
    before, after = data.before.loc[used], data.after.loc[used]
    rows: list[dict[str, Any]] = []
    for contrast, features in (("responder:baseline", lambda c: [before[c]]),
                               ("responder:baseline+change",
                                lambda c: [before[c], after[c] - before[c]])):
        def test(values: pd.Series, features: Callable = features) -> stats.TestResult:
            x = np.column_stack(features(values.name))
            ok = np.isfinite(x).all(axis=1)
            return stats.predict_response(x[ok], responder[ok], folds=spec["cv_folds"],
                                          n_permutations=spec["n_permutations"],
                                          seed=spec["seed"])
        rows += _rows("prediction", contrast, before, test)
    return _finish(rows)


# --------------------------------------------------------------------------- voxelwise
STATMAP_VOLUMES = ("t", "estimate", "p", "q_fdr", "p_fwe")
"""Volumes of a ``_statmap.nii.gz``, in order (``p_fwe`` only with permutations)."""


def find_maps(output_dir: Path, space: str) -> pd.DataFrame:
    """The participant ``_mimap`` maps in ``space``.

    Returns
    -------
    pandas.DataFrame
        Columns ``subject session measure path``; ``measure`` is the ``meas`` entity with the
        map's ``trc pvc model`` entities, as in :func:`read_measures` (e.g.
        ``trc-K2_pvc-gtm_model-logan_meas-VT``).
    """
    rows = []
    for path in sorted(Path(output_dir).glob(f"sub-*/**/*_space-{space}_*mimap.nii.gz")):
        ents = parse_entities(path.name)
        rows.append({"subject": ents["sub"], "session": ents.get("ses", ""),
                     "param": ents.get("meas", "value"), "path": path,
                     **{k: ents.get(k, "none") for k in VARIANT_ENTITIES}})
    if not rows:
        return pd.DataFrame(columns=["subject", "session", "measure", "path"])
    maps = pd.DataFrame(rows)
    maps["measure"] = _measure_labels(maps)
    return maps[["subject", "session", "measure", "path"]]


def _load_grid(paths: pd.Series, mask: Path | None) -> tuple[np.ndarray, np.ndarray, Any]:
    """Maps as rows ``(n, V)`` inside the mask, the mask ``(X, Y, Z)`` and the reference image.

    An entry of ``paths`` is one map, or a pair ``(after, before)`` read as ``after − before``.
    Without ``mask`` the mask is every voxel finite and non-zero in all maps read.
    """
    import nibabel as nib

    files = [p for entry in paths for p in (entry if isinstance(entry, tuple) else (entry,))]
    images = {p: nib.load(p) for p in files}
    ref = images[files[0]]
    for path, img in images.items():
        if img.shape[:3] != ref.shape[:3] or not np.allclose(img.affine, ref.affine, atol=1e-3):
            raise InputError(path, f"is not on the grid of {Path(files[0]).name}",
                             "voxelwise group statistics need maps in one common space")
    arrays = {p: np.asarray(img.dataobj, dtype=np.float32).reshape(ref.shape[:3])
              for p, img in images.items()}
    if mask is None:
        inside = np.logical_and.reduce([np.isfinite(a) & (a != 0) for a in arrays.values()])
    else:
        mask_img = nib.load(mask)
        if mask_img.shape[:3] != ref.shape[:3]:
            raise InputError(mask, "brain mask is not on the grid of the maps")
        inside = np.asarray(mask_img.dataobj).reshape(ref.shape[:3]) > 0
        inside &= np.logical_and.reduce([np.isfinite(a) for a in arrays.values()])
    rows = [arrays[e[0]][inside] - arrays[e[1]][inside] if isinstance(e, tuple)
            else arrays[e][inside] for e in paths]
    return np.stack(rows), inside, ref


def _bids_label(first: str, second: str, qualifier: str = "") -> str:
    """Alphanumeric contrast label ``<first>Minus<second><Qualifier>``.

    >>> _bids_label("post", "baseline", "ketamine")
    'postMinusbaselineKetamine'
    """
    clean = [re.sub(r"[^0-9A-Za-z]", "", p) for p in (first, second, qualifier)]
    return f"{clean[0]}Minus{clean[1]}{clean[2][:1].upper()}{clean[2][1:]}"


def run_voxelwise(output_dir: Path, subjects: pd.DataFrame, spec: dict[str, Any],
                  result: GroupResult, *, space: str, mask: Path | None = None,
                  n_permutations: int = 0) -> list[Path]:
    """Voxelwise baseline, change and interaction GLMs over maps sharing one grid.

    Per measure: baseline patients − controls (``y ~ 1 + patient + covariates``), the mean
    change of each arm (one-sample on post − baseline maps) and active − placebo change
    (two-sample on change maps, the voxelwise interaction for patients with both scans).
    Each is a mass-univariate OLS (:func:`~ketpet_bids.core.stats.mass_univariate_glm`) inside
    the mask, with BH-FDR q over the mask and, with ``n_permutations > 0``, max-T FWE
    p-values (seed ``spec['seed']``).

    Parameters
    ----------
    output_dir
        Derivatives; maps are found by :func:`find_maps`, outputs go to ``group/``.
    subjects, spec
        ``participants.tsv`` indexed by label, and the completed group design.
    result
        Receives notes on skipped contrasts and left-out subjects.
    space
        The common space of the maps (``space-`` entity).
    mask
        Brain mask on the maps' grid; default the voxels non-zero in every map.

    Returns
    -------
    list of Path
        4-D float32 ``_statmap.nii.gz`` files (volumes :data:`STATMAP_VOLUMES`) with JSON
        sidecars naming the volumes, design and counts.
    """
    maps = find_maps(output_dir, space)
    if maps.empty:
        result.notes.append(f"voxelwise: skipped (no space-{space} _mimap maps)")
        return []
    written = []
    for measure, rows in maps.groupby("measure", sort=True):
        for analysis, contrast, paths, design, names in _voxelwise_designs(rows, subjects,
                                                                           spec, result):
            values, inside, ref = _load_grid(paths, mask)
            vector = np.array([1.0 if n == names[-1] else 0.0 for n in names])
            glm = stats.mass_univariate_glm(values, design, vector)
            volumes = [glm.t, glm.estimate, glm.p, stats.fdr_bh(glm.p)]
            if n_permutations:
                volumes.append(stats.max_t_fwe(values, design, vector, n_permutations,
                                               seed=spec.get("seed", 0)))
            target = Path(output_dir) / group_statmap_path(analysis, measure, contrast, space)
            _slice_figure(values.mean(axis=0), volumes, inside, ref, Path(output_dir)
                          / group_figure_path(analysis, measure, "slices", contrast, space),
                          f"{contrast}: t where q_fdr < 0.05")
            written.append(_write_statmap(target, volumes, inside, ref, {"Volumes": list(STATMAP_VOLUMES[:len(volumes)]),
                              "Analysis": analysis, "Measure": measure,
                              "Contrast": contrast, "Space": space,
                              "DesignColumns": names, "ContrastColumn": names[-1],
                              "N": len(paths), "DegreesOfFreedom": glm.df,
                              "MaskVoxels": int(inside.sum()),
                              "Permutations": n_permutations, "Seed": spec.get("seed", 0)}))
    return written


def _voxelwise_designs(rows: pd.DataFrame, subjects: pd.DataFrame, spec: dict[str, Any],
                       result: GroupResult) -> list[tuple[str, str, pd.Series, np.ndarray,
                                                          list[str]]]:
    """``(analysis, contrast, maps, design, column names)`` per voxelwise contrast.

    The tested design column is the last one; change contrasts take ``(post, baseline)``
    path pairs (:func:`_change_paths`).
    """
    base, post = spec.get("baseline_session"), spec.get("post_session")
    by_session = {ses: grp.set_index("subject")["path"] for ses, grp in rows.groupby("session")}
    designs = []
    before = by_session.get(base or "", pd.Series(dtype=object))
    group = subjects[spec["group_column"]].reindex(before.index).astype(str)
    covariates = _covariates(subjects, spec).reindex(before.index)
    keep = group.isin([spec["patient_label"], spec["control_label"]]) & covariates.notna().all(
        axis=1)
    result.exclude("no group or missing covariate", list(before.index[~keep]), len(before),
                   "voxelwise baseline")
    patient = (group[keep] == spec["patient_label"]).to_numpy(float)
    if min(patient.sum(), len(patient) - patient.sum()) >= 2:
        cov = covariates[keep].loc[:, covariates[keep].nunique() > 1]
        designs.append(("baseline", _bids_label(spec["patient_label"], spec["control_label"]),
                        before[keep], np.column_stack([np.ones(len(patient)), cov, patient]),
                        ["intercept", *map(str, cov.columns), "patient"]))
    after = by_session.get(post or "", pd.Series(dtype=object))
    arm_column = spec.get("arm_column")
    if post and arm_column and len(after):
        paired = [s for s in after.index if s in before.index]
        arms = subjects[arm_column].reindex(paired).dropna().astype(str)
        for arm in sorted(arms.unique()):
            members = arms.index[arms == arm]
            if len(members) >= 3:
                designs.append(("change", _bids_label(post, base, arm),
                                _change_paths(after[members], before[members]),
                                np.ones((len(members), 1)), ["mean"]))
        placebo = spec.get("placebo_label")
        for arm in sorted(set(arms) - {placebo}):
            members = arms.index[arms.isin([arm, placebo])]
            active = (arms[members] == arm).to_numpy(float)
            if placebo in set(arms) and min(active.sum(), len(active) - active.sum()) >= 2:
                designs.append(("change", "interaction" + _bids_label(arm, placebo)[:1].upper()
                                + _bids_label(arm, placebo)[1:],
                                _change_paths(after[members], before[members]),
                                np.column_stack([np.ones(len(active)), active]),
                                ["intercept", f"{arm}-{placebo}"]))
    return designs


def _change_paths(after: pd.Series, before: pd.Series) -> pd.Series:
    """Pairs of map paths per subject, read by :func:`_load_grid` as ``after − before``."""
    return pd.Series([(a, b) for a, b in zip(after, before, strict=True)], index=after.index)


def _slice_figure(background: np.ndarray, volumes: list[np.ndarray], inside: np.ndarray,
                  ref: Any, target: Path, label: str) -> Path:
    """Three orthogonal slices of the t map where q_fdr < 0.05 over the mean input map.

    Parameters
    ----------
    background : np.ndarray, shape (V,)
        Mean of the analysed maps inside the mask.
    volumes
        The statmap volumes (:data:`STATMAP_VOLUMES` order), each shape (V,).
    inside : np.ndarray of bool, shape (X, Y, Z)
        The mask.
    """
    from ketpet_bids.reports.figures import plot_parametric_map

    under, shown = np.zeros(inside.shape, np.float32), np.zeros(inside.shape, np.float32)
    under[inside] = background
    shown[inside] = np.where(volumes[3] < 0.05, volumes[0], 0.0)
    return plot_parametric_map(under, shown, ref.header.get_zooms()[:3], target, label)


def _write_statmap(target: Path, volumes: list[np.ndarray], inside: np.ndarray, ref: Any,
                   sidecar: dict[str, Any]) -> Path:
    import nibabel as nib

    from ketpet_bids.bids.sink import write_with

    data = np.full((*inside.shape, len(volumes)), np.nan, dtype=np.float32)
    data[inside] = np.column_stack(volumes).astype(np.float32)
    image = nib.Nifti1Image(data, ref.affine)
    image.header.set_xyzt_units("mm")
    write_with(target, lambda tmp: nib.save(image, tmp))
    write_json(sidecar_path(target), sidecar)
    return target
