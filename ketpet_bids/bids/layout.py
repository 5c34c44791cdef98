"""Find the inputs of every PET run with pybids (DESIGN.md §4).

Each PET image (``sub-*/[ses-*/]pet/*_pet.nii[.gz]``) becomes one :class:`PetRun` with its
JSON sidecar, a T1w and its blood recordings. Rules:

* **Selection.** ``--participant-label``, ``--session-label``, ``--tracer-label``,
  ``--rec-label`` and ``--run-label`` take labels with or without their ``sub-``, ``ses-``,
  ``trc-``, ``rec-``, ``run-`` prefix; a label must be letters and digits only (anything else,
  e.g. ``../``, is refused). ``--bids-filter-file`` is fMRIPrep-style JSON,
  ``{"pet": {...}, "t1w": {...}}``, whose keys are pybids entity names (``session``,
  ``tracer``, ``acquisition`` …; the short ``ses``/``trc``/``acq`` … are accepted too), values a
  string, a list, ``null`` (entity must be absent) or ``"*"`` (entity must be present). Where a
  command-line label and the filter file constrain the same entity, the label wins.
* **T1w.** The T1w of the PET's own session (or a session-less T1w of the subject); else the
  first in sorted order from the subject's other sessions. Within each group a plain T1w
  (without ``acq``/``ce``/``rec``/``run``/… entities) is preferred, then the sorted file name.
* **Blood.** ``_blood.tsv`` files of the same subject and datatype folder whose ``ses``,
  ``task``, ``trc``, ``rec`` and ``run`` entities, where present in the blood file name, equal
  the PET's (an absent entity applies to all runs, as in BIDS inheritance).
* **Sidecar.** The ``.json`` with the PET image's own name; sidecars inherited from higher
  directories are not merged (a missing one is an error naming the expected path).

pybids indexes into an in-memory database (``database_path=None``): nothing is written into
the BIDS directory; ``derivatives/``, ``sourcedata/``, ``code/`` and hidden files are ignored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ketpet_bids.errors import InputError

_LABEL = re.compile(r"[A-Za-z0-9]+")
_NIFTI = (".nii", ".nii.gz")
#: File-name keys → pybids entity names (for filter files written with the short keys).
_ENTITY_NAMES = {"sub": "subject", "ses": "session", "trc": "tracer", "rec": "reconstruction",
                 "acq": "acquisition", "ce": "ceagent", "task": "task", "run": "run",
                 "dir": "direction", "echo": "echo", "part": "part"}
#: Blood-file entities that must equal the PET's when present in the blood file name.
_BLOOD_MATCH = ("ses", "task", "trc", "rec", "run")
_FILTER_QUERIES = ("pet", "t1w")


@dataclass(frozen=True)
class PetRun:
    """The inputs of one PET run.

    Attributes
    ----------
    subject, session
        Labels without prefix; ``session`` None when the dataset has no sessions.
    pet, sidecar
        The PET image and its JSON sidecar.
    t1w
        The paired T1w image (None only when discovery ran with ``anat_required=False``).
    blood
        ``_blood.tsv`` recordings of this run, sorted.
    entities
        File-name entities of the PET image in file-name order, short keys
        (``{"sub": "01", "ses": "baseline", "trc": "K2"}``).
    """

    subject: str
    session: str | None
    pet: Path
    sidecar: Path
    t1w: Path | None
    blood: tuple[Path, ...]
    entities: dict[str, str]

    @property
    def source_prefix(self) -> str:
        """The PET file name without ``_pet.nii[.gz]``, e.g. ``sub-01_ses-baseline_trc-K2``."""
        return "_".join(f"{key}-{value}" for key, value in self.entities.items())


def parse_entities(path: Path | str) -> tuple[dict[str, str], str]:
    """File-name entities and suffix of a BIDS file.

    Examples
    --------
    >>> parse_entities("sub-01_ses-a_trc-K2_recording-manual_blood.tsv")
    ({'sub': '01', 'ses': 'a', 'trc': 'K2', 'recording': 'manual'}, 'blood')
    """
    stem = Path(path).name.split(".", 1)[0]
    *pairs, suffix = stem.split("_")
    return dict(pair.split("-", 1) for pair in pairs if "-" in pair), suffix


def load_bids_filters(path: Path) -> dict[str, dict[str, Any]]:
    """Read and check a ``--bids-filter-file`` (see the module docstring for the format).

    Raises
    ------
    InputError
        Unreadable file, invalid JSON, or a structure other than ``{"pet"|"t1w": {...}}``.
    """
    path = Path(path)
    try:
        filters = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"cannot read the BIDS filter file ({exc})",
                         'write JSON like {"pet": {"session": "baseline"}}') from None
    return _check_filters(filters, where=path)


def discover_pet_runs(bids_dir: Path, *, participant_label: Iterable[str] = (),
                      session_label: Iterable[str] = (), tracer_label: Iterable[str] = (),
                      rec_label: Iterable[str] = (), run_label: Iterable[str] = (),
                      bids_filters: dict | None = None,
                      anat_required: bool = True) -> list[PetRun]:
    """Find every selected PET run with its sidecar, T1w and blood files.

    Parameters
    ----------
    bids_dir
        Root of a BIDS dataset (with ``dataset_description.json``).
    participant_label, session_label, tracer_label, rec_label, run_label
        Labels to keep (with or without prefix); empty keeps all.
    bids_filters
        ``{"pet": {...}, "t1w": {...}}`` pybids queries (see :func:`load_bids_filters`).
    anat_required
        Whether a run without any T1w of its subject is an error (else ``t1w=None``).

    Returns
    -------
    list of PetRun
        Sorted by subject, session and file name; never empty.

    Raises
    ------
    InputError
        Not a BIDS dataset (or its ``dataset_description.json`` is not a JSON object); a
        label with characters other than letters and digits; an unknown participant; no PET
        run left after filtering; a run without sidecar; no T1w.
    """
    bids_dir = Path(bids_dir)
    if not (bids_dir / "dataset_description.json").is_file():
        what = "does not exist" if not bids_dir.is_dir() else \
            "is not a BIDS dataset: dataset_description.json is missing"
        raise InputError(bids_dir, what, "give the root folder of a BIDS dataset")
    _check_description(bids_dir / "dataset_description.json")
    filters = _check_filters(bids_filters or {}, where="--bids-filter-file")
    labels = {
        "subject": _clean_labels(participant_label, "sub", "--participant-label"),
        "session": _clean_labels(session_label, "ses", "--session-label"),
        "tracer": _clean_labels(tracer_label, "trc", "--tracer-label"),
        "reconstruction": _clean_labels(rec_label, "rec", "--rec-label"),
        "run": [int(r) for r in _clean_labels(run_label, "run", "--run-label", digits=True)],
    }
    layout = _layout(bids_dir)
    available = sorted(layout.get_subjects())
    unknown = sorted(set(labels["subject"]) - set(available))
    if unknown:
        raise InputError("--participant-label", f"participant(s) {', '.join(unknown)} not found "
                         f"in {bids_dir}; available: {', '.join(available) or 'none'}")
    pet_query = {**filters.get("pet", {}), **{k: v for k, v in labels.items() if v}}
    pet_files = _get(layout, pet_query, suffix="pet", datatype="pet")
    if not pet_files:
        everything = _get(layout, {}, suffix="pet", datatype="pet")
        present = ", ".join(Path(f).name for f in everything[:6]) or "none"
        selection = ", ".join(f"{k}={v}" for k, v in pet_query.items()) or "no filters"
        raise InputError(bids_dir, f"no PET runs match the selection ({selection}); PET images "
                         f"present: {present}", "check the labels and the filter file")
    t1w_query = filters.get("t1w", {})
    runs = [_make_run(Path(pet), layout, t1w_query, anat_required) for pet in pet_files]
    return sorted(runs, key=lambda r: (r.subject, r.session or "", r.pet.name))


def _check_description(path: Path) -> None:
    """``dataset_description.json`` must hold a JSON object (pybids would ignore a broken one)."""
    try:
        description = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"not valid JSON ({exc})", "fix the JSON syntax") from None
    if not isinstance(description, dict):
        raise InputError(path, "must hold a JSON object {...}",
                         'write at least {"Name": "...", "BIDSVersion": "1.9.0"}')


def _make_run(pet: Path, layout: Any, t1w_query: dict, anat_required: bool) -> PetRun:
    entities, _ = parse_entities(pet)
    sidecar = pet.with_name(pet.name.split(".", 1)[0] + ".json")
    if not sidecar.is_file():
        raise InputError(pet, f"PET sidecar {sidecar.name} is missing",
                         "add the JSON sidecar (frame timing, units, radionuclide) beside it")
    subject, session = entities["sub"], entities.get("ses")
    t1w = _pick_t1w(_get(layout, {**t1w_query, "subject": subject}, suffix="T1w",
                         datatype="anat"), session)
    if t1w is None and anat_required:
        raise InputError(pet, f"no T1w image for sub-{subject} (looked for "
                         f"sub-{subject}/[ses-*/]anat/*_T1w.nii[.gz])",
                         "add the subject's T1w, or check the t1w part of the filter file")
    blood = [Path(f) for f in _get(layout, {"subject": subject}, suffix="blood",
                                   extension=".tsv")
             if Path(f).parent == pet.parent and _blood_matches(entities, parse_entities(f)[0])]
    return PetRun(subject=subject, session=session, pet=pet, sidecar=sidecar, t1w=t1w,
                  blood=tuple(sorted(blood)), entities=entities)


def _pick_t1w(candidates: list[str], session: str | None) -> Path | None:
    """Same session (or session-less) first, then plain names, then sorted (module docs)."""
    def rank(path: str) -> tuple[int, int, str]:
        ents, _ = parse_entities(path)
        other_session = ents.get("ses") not in (None, session)
        extra = len(set(ents) - {"sub", "ses"})
        return int(other_session), extra, Path(path).name
    return Path(min(candidates, key=rank)) if candidates else None


def _blood_matches(pet: dict[str, str], blood: dict[str, str]) -> bool:
    return all(blood[key] == pet.get(key) for key in _BLOOD_MATCH if key in blood)


def _layout(bids_dir: Path) -> Any:
    """An in-memory pybids layout of the raw dataset (nothing written to ``bids_dir``)."""
    from bids.layout import BIDSLayout, BIDSLayoutIndexer

    indexer = BIDSLayoutIndexer(validate=False, index_metadata=False,
                                ignore=["code", "derivatives", "sourcedata", "stimuli", "models",
                                        re.compile(r"/\.")])
    return BIDSLayout(bids_dir, validate=False, derivatives=False, indexer=indexer)


def _get(layout: Any, query: dict, **fixed: Any) -> list[str]:
    """Sorted file names matching ``query`` plus ``fixed`` (NIfTI unless ``extension``)."""
    from bids.layout import Query

    def value(v: Any) -> Any:
        return Query.NONE if v is None else Query.ANY if v == "*" else v
    full = {k: value(v) for k, v in query.items()}
    full.update({"extension": list(_NIFTI)} | fixed)
    try:
        return sorted(layout.get(return_type="filename", **full))
    except (ValueError, KeyError) as exc:
        raise InputError("--bids-filter-file", f"invalid query {query}: {exc}",
                         "use pybids entity names such as session, tracer, acquisition") from None


def _check_filters(filters: Any, *, where: str | Path) -> dict[str, dict[str, Any]]:
    """Validate the filter structure and map short entity keys to pybids names."""
    if not isinstance(filters, dict) or not all(isinstance(q, dict) for q in filters.values()):
        raise InputError(where, 'filters must be a JSON object of objects, e.g. '
                         '{"pet": {"session": "baseline"}}')
    unknown = sorted(set(filters) - set(_FILTER_QUERIES))
    if unknown:
        raise InputError(where, f"unknown filter {unknown[0]!r}; expected "
                         f"{' and/or '.join(_FILTER_QUERIES)}")
    return {name: {_ENTITY_NAMES.get(k, k): v for k, v in query.items()}
            for name, query in filters.items()}


def _clean_labels(values: Iterable[str] | str, prefix: str, option: str, *,
                  digits: bool = False) -> list[str]:
    """Labels without ``<prefix>-``; letters and digits only (digits only for runs)."""
    values = [values] if isinstance(values, str) else list(values or ())
    cleaned = []
    for value in values:
        label = str(value).strip()
        label = label[len(prefix) + 1:] if label.startswith(f"{prefix}-") else label
        if not _LABEL.fullmatch(label) or (digits and not label.isdigit()):
            kind = "digits" if digits else "letters and digits"
            raise InputError(option, f"{value!r} is not a valid label ({kind} only)",
                             f"give the label as in the file names, e.g. {prefix}-01 or 01")
        cleaned.append(label)
    return sorted(set(cleaned))
