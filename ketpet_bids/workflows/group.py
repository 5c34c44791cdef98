"""Group level: the treatment-study analyses from participant-level ``_kinpar.tsv`` tables.

A plain pipeline (no nipype): read every participant table, join ``participants.tsv`` and the
per-session symptom scores, and for every measure (model parameter × atlas/PVC variant)
write ``group/analysis-<a>_meas-<m>_stats.tsv`` with the columns of :data:`STATS_COLUMNS`:

- ``baseline`` — patients vs controls at baseline per region: OLS with covariates (contrast
  ``patient-control``; effect size Hedges' g) and Welch's t as a check (``patient-control:welch``);
- ``change`` — post − baseline per treatment arm, paired t-test (contrast ``<post>-<baseline>:<arm>``;
  effect size Cohen's d_z);
- ``symptoms`` — regional change vs symptom change among patients (contrasts ``pearson`` and
  ``spearman``; estimate r or ρ with a Fisher-z CI).

q-values: Benjamini–Hochberg across regions within each analysis, measure and contrast.
Subjects left out of an analysis (no group, no post scan, no score, missing covariate) are
counted and named in :attr:`GroupResult.notes` and logged — never dropped silently.

The group design (:data:`SPEC_KEYS`) is a YAML mapping given with ``--group-spec``; every key
is optional and the missing ones are inferred (:func:`infer_spec`):

``group_column``, ``patient_label``, ``control_label``
    The ``participants.tsv`` column telling patients from controls and its two labels
    (default: ``group``/``diagnosis``/``dx``; labels like patient/case/MDD, control/healthy/HC).
``arm_column``
    The treatment-arm column (default: ``arm`` or ``treatment``).
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

from ketpet_bids.bids.naming import group_stats_path
from ketpet_bids.bids.sink import write_tsv
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
SPEC_KEYS = ("group_column", "patient_label", "control_label", "arm_column", "covariates",
             "baseline_session", "post_session", *SYMPTOM_KEYS)
SYMPTOM_LAYOUTS = ("sessions", "long", "wide")
"""Where per-session symptom scores can be, most preferred first (see the module docstring)."""
SESSIONS_TABLES = "sub-*/sub-*_sessions.tsv"
SYMPTOM_SCALES = r"madrs|ham|hdrs|bdi|qids|phq"
"""Column names (regular expression, case-insensitive) recognised as symptom scores."""


@dataclass
class GroupResult:
    """What :func:`run_group` produced.

    Attributes
    ----------
    stats_files : list of Path
        The written ``group/*_stats.tsv`` tables.
    notes : list of str
        Missing-data counts and skipped analyses, one sentence each.
    spec : dict
        The group design used (inferred defaults merged with the user's spec).
    excluded : dict
        ``{reason: sorted subject labels}`` of subjects left out somewhere.
    """

    stats_files: list[Path] = field(default_factory=list)
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
        Columns ``subject session measure region value`` (``session`` empty when the data
        have no sessions); ``measure`` is the parameter, qualified by the entities
        (``trc seg pvc model``) that differ between tables holding it, e.g. ``SUVR+pvcgtm``.
    """
    frames = []
    for path in sorted(Path(output_dir).glob(pattern)):
        ents = parse_entities(path.name)
        table = pd.read_csv(path, sep="\t", **BIDS_NA)
        if "region" not in table.columns:
            raise InputError(path, "has no 'region' column")
        params = [c for c in table.columns if c not in DIAGNOSTIC_COLUMNS]
        long = table.melt(id_vars="region", value_vars=params, var_name="param")
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
    return data[[*keys, "value"]]


def _measure_labels(data: pd.DataFrame) -> np.ndarray:
    """Measure label of every row: the parameter plus the entities that vary for it."""
    keys = ["param", *VARIANT_ENTITIES]
    variants = data[keys].drop_duplicates()
    varying = {param: [k for k in VARIANT_ENTITIES if group[k].nunique() > 1]
               for param, group in variants.groupby("param")}
    variants["label"] = ["+".join([row.param, *(f"{k}{getattr(row, k)}" for k in
                                                varying[row.param])])
                         for row in variants.itertuples()]
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


def infer_spec(bids_dir: Path) -> dict[str, Any]:
    """A default group design from ``participants.tsv``, the sessions and the symptom tables.

    Returns
    -------
    dict
        Keys :data:`SPEC_KEYS` (see the module docstring). Groups are recognised by names such
        as patient/case/MDD vs control/healthy; sessions by baseline/pre vs post/follow-up
        (else sorted order); the symptom score is the first column named like a scale
        (:data:`SYMPTOM_SCALES`) in the most preferred layout (:data:`SYMPTOM_LAYOUTS`).
        Values that cannot be inferred are ``None``.
    """
    return _complete_spec(Path(bids_dir), {})


def load_group_spec(path: Path | None, bids_dir: Path) -> dict[str, Any]:
    """The inferred design, overridden by the keys of a YAML ``--group-spec`` file."""
    if path is None:
        return infer_spec(bids_dir)
    import yaml

    try:
        given = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise InputError(path, f"cannot be read as YAML ({err})") from None
    unknown = set(given) - set(SPEC_KEYS) if isinstance(given, dict) else {"<not a mapping>"}
    if unknown:
        raise InputError(path, f"unknown keys {sorted(unknown)}",
                         f"use only: {', '.join(SPEC_KEYS)}")
    return _complete_spec(Path(bids_dir), given)


def _complete_spec(bids_dir: Path, given: dict[str, Any]) -> dict[str, Any]:
    """The design ``given`` (any subset of :data:`SPEC_KEYS`) completed with inferred values.

    Inferred values follow the given ones: the group labels come from the given
    ``group_column``, and the symptom keys from the most preferred table consistent with the
    symptom keys given.
    """
    participants = _read_table(bids_dir / "participants.tsv")
    group_column = given.get("group_column", next(
        (c for c in ("group", "diagnosis", "dx") if c in participants), None))
    labels = (sorted(participants[group_column].dropna().astype(str).unique())
              if group_column in participants else [])
    sessions = sorted({p.name.removeprefix("ses-") for p in bids_dir.glob("sub-*/ses-*")
                       if p.is_dir()})
    baseline = _match(sessions, r"base|pre|^bl|screen") or (sessions[0] if sessions else None)
    post = _match([s for s in sessions if s != baseline], r"post|follow|^fu|after") or next(
        (s for s in sessions if s != baseline), None)
    inferred = {
        "group_column": group_column,
        "patient_label": _match(labels, r"patient|case|mdd|trd|depress"),
        "control_label": _match(labels, r"control|healthy|^hc$"),
        "arm_column": next((c for c in ("arm", "treatment") if c in participants), None),
        "covariates": [c for c in ("age", "sex") if c in participants],
        "baseline_session": baseline,
        "post_session": post,
    }
    fixed = {k: given[k] for k in SYMPTOM_KEYS if k in given}
    return {**inferred, **given, **_infer_symptoms(bids_dir, sessions, fixed)}


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
              spec: dict[str, Any] | None = None) -> GroupResult:
    """Run every group analysis and write ``group/*_stats.tsv``.

    Parameters
    ----------
    output_dir
        Participant-level derivatives (tables are found with ``measure_files_glob``).
    bids_dir
        The raw dataset (``participants.tsv``, ``phenotype/``).
    spec
        Group design (keys :data:`SPEC_KEYS`); missing keys are inferred (:func:`infer_spec`).

    Returns
    -------
    GroupResult
        Written tables, missing-data notes, the design used.
    """
    spec = _complete_spec(Path(bids_dir), spec or {})
    result = GroupResult(spec=spec)
    measures = read_measures(Path(output_dir), measure_files_glob)
    subjects = _subject_table(Path(bids_dir), spec)
    tables = [_baseline(measures, subjects, spec, result),
              _change(measures, subjects, spec, result),
              _symptoms(measures, subjects, spec, Path(bids_dir), result)]
    for table in tables:
        for (analysis, measure), rows in table.groupby(["analysis", "measure"], sort=True):
            path = Path(output_dir) / group_stats_path(analysis, measure)
            result.stats_files.append(write_tsv(path, rows[STATS_COLUMNS]))
    return result


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
        res = test(values)
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


def _paired(measures: pd.DataFrame, spec: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    return _wide(measures, spec["baseline_session"]), _wide(measures, spec["post_session"])


def _change(measures: pd.DataFrame, subjects: pd.DataFrame, spec: dict[str, Any],
            result: GroupResult) -> pd.DataFrame:
    arm_column, post = spec.get("arm_column"), spec.get("post_session")
    if not arm_column or not post:
        result.notes.append("change: skipped (no treatment arm column or no post session)")
        return _finish([])
    before, after = _paired(measures, spec)
    result.exclude(f"no '{spec['baseline_session']}' scan",
                   [s for s in after.index if s not in before.index], len(after), "change")
    arms = subjects[arm_column].reindex(before.index)
    is_patient = subjects[spec["group_column"]].reindex(before.index).astype(str) == spec[
        "patient_label"]
    result.exclude("patient without a treatment arm", list(before.index[is_patient
                                                                        & arms.isna()]),
                   int(is_patient.sum()), "change")
    rows: list[dict[str, Any]] = []
    for arm in sorted(arms.dropna().astype(str).unique()):
        members = arms.index[arms.astype(str) == arm]
        result.exclude(f"no '{post}' scan", [s for s in members if s not in after.index],
                       len(members), f"change ({arm})")
        paired = [s for s in members if s in after.index]
        if len(paired) < 2:
            result.notes.append(f"change ({arm}): skipped (fewer than 2 paired subjects)")
            continue
        rows += _paired_rows(before.loc[paired], after.loc[paired],
                             f"{post}-{spec['baseline_session']}:{arm}")
    return _finish(rows)


def _paired_rows(before: pd.DataFrame, after: pd.DataFrame, contrast: str
                 ) -> list[dict[str, Any]]:
    """Paired t-test rows for subjects with both sessions (NaN pairs left out per region)."""
    def test(values: pd.Series) -> stats.TestResult:
        ok = values.notna()
        return stats.paired_change(before.loc[ok, values.name], after.loc[ok, values.name])

    return _rows("change", contrast, after - before, test)


def _symptoms(measures: pd.DataFrame, subjects: pd.DataFrame, spec: dict[str, Any],
              bids_dir: Path, result: GroupResult) -> pd.DataFrame:
    post, column = spec.get("post_session"), spec.get("symptom_column")
    if not post or not column:
        result.notes.append("symptoms: skipped (no post session or no symptom score found)")
        return _finish([])
    score = read_symptom_scores(bids_dir, spec)
    result.notes.append(f"symptoms: '{column}' per session from {spec['symptom_table']} "
                        f"({spec['symptom_layout']} layout)")
    before, after = _paired(measures, spec)
    group = subjects[spec["group_column"]].astype(str)
    patients = [s for s in before.index if group.get(s) == spec["patient_label"]]
    no_post = [s for s in patients if s not in after.index]
    result.exclude(f"no '{post}' scan", no_post, len(patients), "symptoms")
    symptom_change = score.reindex(index=patients, columns=[spec["baseline_session"], post])
    symptom_change = symptom_change[post] - symptom_change[spec["baseline_session"]]
    no_score = [s for s in patients if s not in no_post and np.isnan(symptom_change[s])]
    result.exclude("no symptom score at both sessions", no_score, len(patients), "symptoms")
    used = [s for s in patients if s not in no_post and s not in no_score]
    if len(used) < 4:
        result.notes.append("symptoms: skipped (fewer than 4 patients with change and scores)")
        return _finish([])
    diff = after.loc[used] - before.loc[used]
    x = symptom_change[used]

    def correlate(method: Callable) -> Callable[[pd.Series], stats.TestResult]:
        def test(values: pd.Series) -> stats.TestResult:
            ok = values.notna()
            return method(values[ok].to_numpy(), x[ok].to_numpy())
        return test

    return _finish(_rows("symptoms", "pearson", diff, correlate(stats.pearson))
                   + _rows("symptoms", "spearman", diff, correlate(stats.spearman)))
