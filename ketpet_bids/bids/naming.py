"""The registry of every output name (DESIGN.md §5).

Nothing else in the package builds derivative file names: it asks this module. Each output
kind is an :class:`OutputSpec`; :func:`output_path` fills it in for one participant/run.

Examples
--------
>>> str(output_path("tacs", subject="01", src="sub-01_ses-baseline_trc-K2", atlas="sim"))
'sub-01/pet/sub-01_ses-baseline_trc-K2_seg-sim_desc-preproc_tacs.tsv'
>>> str(output_path("tacs", subject="01", session="baseline",
...                 src="sub-01_ses-baseline_trc-K2", atlas="sim", pvc="gtm"))
'sub-01/ses-baseline/pet/sub-01_ses-baseline_trc-K2_seg-sim_pvc-gtm_desc-preproc_tacs.tsv'
>>> str(output_path("dseg", subject="01", atlas="sim"))
'sub-01/anat/sub-01_seg-sim_dseg.nii.gz'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Order in which optional entities appear between the source prefix and the suffix.
ENTITY_ORDER: tuple[tuple[str, str], ...] = (
    ("space", "space"),
    ("atlas", "seg"),
    ("ref", "label"),
    ("pvc", "pvc"),
    ("model", "model"),
    ("param", "meas"),
    ("desc", "desc"),
)


@dataclass(frozen=True)
class OutputSpec:
    """One kind of output file.

    Attributes
    ----------
    key
        Registry key used by the code, e.g. ``"tacs"``.
    level
        ``"pet"`` (named after the source PET file, under ``[ses-<ss>/]pet/``), ``"anat"``
        (named after the subject, under ``anat/``), ``"figure"`` (under ``figures/``) or
        ``"root"`` (at the top of the output directory).
    required
        Entities that must be given (keys of :data:`ENTITY_ORDER`).
    optional
        Entities that may be given.
    fixed
        Entities with a fixed value, e.g. ``{"desc": "preproc"}``.
    suffix
        BIDS suffix and extension, e.g. ``"tacs.tsv"``.
    description
        One line for the documentation's outputs page.
    """

    key: str
    level: str
    suffix: str
    description: str
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    fixed: tuple[tuple[str, str], ...] = ()


OUTPUTS: dict[str, OutputSpec] = {
    s.key: s
    for s in (
        OutputSpec("confounds", "pet", "timeseries.tsv",
                   "Per-frame rigid motion parameters (mm, rad) and framewise displacement (mm).",
                   fixed=(("desc", "confounds"),)),
        OutputSpec("preproc_pet", "pet", "pet.nii.gz",
                   "Motion-corrected PET in native PET space (Bq/mL, decay corrected).",
                   fixed=(("desc", "preproc"),)),
        OutputSpec("pvc_pet", "pet", "pet.nii.gz",
                   "Partial-volume-corrected PET in native PET space (voxelwise methods).",
                   required=("pvc",), fixed=(("desc", "preproc"),)),
        OutputSpec("petref", "pet", "petref.nii.gz",
                   "PET reference: time-weighted mean of the motion-corrected frames.",
                   optional=("space",)),
        OutputSpec("pet_to_t1w_xfm", "pet", "xfm.txt",
                   "Rigid PET-reference to T1w transform (ITK/ANTs affine text file).",
                   fixed=(("from", "petref"), ("to", "T1w"), ("mode", "image"))),
        OutputSpec("t1w_preproc", "anat", "T1w.nii.gz", "Preprocessed T1w (reference anatomy).",
                   fixed=(("desc", "preproc"),)),
        OutputSpec("brain_mask", "anat", "mask.nii.gz", "Brain mask in T1w space.",
                   fixed=(("desc", "brain"),)),
        OutputSpec("probseg", "anat", "probseg.nii.gz",
                   "Tissue probability map (GM, WM or CSF) in T1w space.", required=("ref",)),
        OutputSpec("t1w_to_mni_xfm", "anat", "xfm.h5",
                   "T1w to MNI152NLin2009cAsym composite transform (ANTs HDF5).",
                   fixed=(("from", "T1w"), ("to", "MNI152NLin2009cAsym"), ("mode", "image"))),
        OutputSpec("mni_to_t1w_xfm", "anat", "xfm.h5",
                   "MNI152NLin2009cAsym to T1w composite transform (ANTs HDF5; brings atlases "
                   "into T1w space).",
                   fixed=(("from", "MNI152NLin2009cAsym"), ("to", "T1w"), ("mode", "image"))),
        OutputSpec("dseg", "anat", "dseg.nii.gz", "Region labels in T1w space.",
                   required=("atlas",)),
        OutputSpec("dseg_tsv", "anat", "dseg.tsv", "Region label table (index, name).",
                   required=("atlas",)),
        OutputSpec("morph", "anat", "morph.tsv", "Region volumes (index, name, volume_mm3).",
                   required=("atlas",)),
        OutputSpec("tacs", "pet", "tacs.tsv",
                   "Regional time-activity curves: frame_start, frame_end (s), one column per "
                   "region (Bq/mL).", required=("atlas",), optional=("pvc",),
                   fixed=(("desc", "preproc"),)),
        OutputSpec("ref_tacs", "pet", "tacs.tsv", "Reference-region time-activity curve.",
                   required=("ref",), optional=("pvc",), fixed=(("desc", "preproc"),)),
        OutputSpec("ref_mask", "pet", "mask.nii.gz", "Reference-region mask in T1w space.",
                   required=("ref",), fixed=(("space", "T1w"),)),
        OutputSpec("kinpar", "pet", "kinpar.tsv",
                   "Regional kinetic-model parameters and fit diagnostics, one row per region.",
                   required=("atlas", "model"), optional=("pvc",)),
        OutputSpec("model_fit", "pet", "tacs.tsv",
                   "Regional model fits in long format: region, frame_start, frame_end (s), x, "
                   "observed, predicted, weight (the fitted variable of each model).",
                   required=("atlas", "model"), optional=("pvc",), fixed=(("desc", "fit"),)),
        OutputSpec("mimap", "pet", "mimap.nii.gz", "Voxelwise parametric map.",
                   required=("space", "model", "param"), optional=("pvc",)),
        OutputSpec("figure", "figure", "", "Report figure.", required=("desc",)),
    )
}

# Files that sit beside a data file and share its name with a different extension.
SIDECAR_EXTENSIONS = (".json",)


def _entity_string(spec: OutputSpec, entities: dict[str, str]) -> str:
    unknown = set(entities) - set(spec.required) - set(spec.optional)
    if unknown:
        raise ValueError(f"output '{spec.key}' does not take entities {sorted(unknown)}")
    missing = [e for e in spec.required if not entities.get(e)]
    if missing:
        raise ValueError(f"output '{spec.key}' needs entities {missing}")
    values = dict(entities)
    fixed = dict(spec.fixed)
    parts = [f"{k}-{v}" for k, v in spec.fixed if k not in dict(ENTITY_ORDER)]
    for key, bids_key in ENTITY_ORDER:
        value = values.get(key) or fixed.get(key)
        if value:
            _check_label(value)
            parts.append(f"{bids_key}-{value}")
    return "".join(f"_{p}" for p in parts)


def _check_label(value: str) -> None:
    if not value.replace("+", "").isalnum():
        raise ValueError(f"entity value '{value}' must be alphanumeric (BIDS label)")


def subject_dir(subject: str, session: str | None = None) -> Path:
    """``sub-<s>[/ses-<ss>]`` relative to the output directory."""
    base = Path(f"sub-{subject}")
    return base / f"ses-{session}" if session else base


def output_path(
    key: str,
    *,
    subject: str,
    session: str | None = None,
    src: str | None = None,
    ext: str | None = None,
    **entities: str | None,
) -> Path:
    """Path of one output, relative to the output directory.

    Parameters
    ----------
    key
        A key of :data:`OUTPUTS`.
    subject, session
        Labels without ``sub-``/``ses-``.
    src
        Source PET prefix (``sub-01_ses-baseline_trc-K2``); needed for ``pet`` and ``figure``
        outputs.
    ext
        For figures, the file extension (``".svg"`` or ``".png"``).
    **entities
        Values for the spec's required/optional entities; ``None`` values are ignored.
    """
    spec = OUTPUTS[key]
    given = {k: v for k, v in entities.items() if v is not None}
    tail = _entity_string(spec, given)
    if spec.level == "anat":
        return Path(f"sub-{subject}") / "anat" / f"sub-{subject}{tail}_{spec.suffix}"
    if not src:
        raise ValueError(f"output '{key}' needs the source PET prefix 'src'")
    if spec.level == "figure":
        return Path(f"sub-{subject}") / "figures" / f"{src}{tail}{ext or '.svg'}"
    return subject_dir(subject, session) / "pet" / f"{src}{tail}_{spec.suffix}"


def sidecar_path(data_path: Path) -> Path:
    """JSON sidecar beside a data file (``x_pet.nii.gz`` → ``x_pet.json``)."""
    name = data_path.name
    for ext in (".nii.gz", ".nii", ".tsv", ".txt", ".h5"):
        if name.endswith(ext):
            return data_path.with_name(name[: -len(ext)] + ".json")
    raise ValueError(f"no sidecar convention for {name}")


def report_path(subject: str) -> Path:
    """Per-participant HTML report at the root of the output directory."""
    return Path(f"sub-{subject}.html")


GROUP_ENTITIES = ("trc", "space", "seg", "pvc", "model", "analysis", "meas", "contrast", "desc")
"""Order of the entities of group-level file names (``group/…``)."""
GROUP_SPACE = "MNI152NLin2009cAsym"
"""Template space of the group-level voxelwise maps."""


def group_measure(param: str, **variant: str | None) -> str:
    """Label of a group-level measure: its variant entities and ``meas-<param>``.

    This is the ``measure`` column of the group tables and the stem of their file names.
    ``None`` and ``"none"`` values are left out (as ``[_pvc-<m>]`` at the participant level).

    Parameters
    ----------
    param
        Model parameter, e.g. ``"SUVR"``.
    **variant
        Any of ``trc space seg pvc model``.

    Examples
    --------
    >>> group_measure("SUVR", trc="K2", seg="sim", pvc="none", model="suvr")
    'trc-K2_seg-sim_model-suvr_meas-SUVR'
    """
    unknown = set(variant) - {"trc", "space", "seg", "pvc", "model"}
    if unknown:
        raise ValueError(f"group measures do not take entities {sorted(unknown)}")
    return _group_stem({**variant, "meas": param})


def _group_stem(entities: dict[str, str | None]) -> str:
    """``k-v`` pairs in :data:`GROUP_ENTITIES` order; values must be alphanumeric."""
    parts = []
    for key in GROUP_ENTITIES:
        value = entities.get(key)
        if value is None or value == "none":
            continue
        if not str(value).isalnum():
            raise ValueError(f"entity value '{value}' must be alphanumeric (BIDS label)")
        parts.append(f"{key}-{value}")
    return "_".join(parts)


def _group_entities(measure: str) -> dict[str, str]:
    """Entities of a :func:`group_measure` label (a bare ``"SUVR"`` means ``meas-SUVR``)."""
    if "-" not in measure:
        return {"meas": measure}
    pairs = dict(pair.split("-", 1) for pair in measure.split("_"))
    if "meas" not in pairs or not set(pairs) <= set(GROUP_ENTITIES):
        raise ValueError(f"'{measure}' is not a group measure label (see group_measure)")
    return pairs


def group_stats_path(analysis: str, measure: str) -> Path:
    """Group-level statistics table.

    Examples
    --------
    >>> group_stats_path("baseline", "trc-K2_seg-sim_pvc-gtm_model-suvr_meas-SUVR").as_posix()
    'group/trc-K2_seg-sim_pvc-gtm_model-suvr_analysis-baseline_meas-SUVR_stats.tsv'
    """
    stem = _group_stem({**_group_entities(measure), "analysis": analysis})
    return Path("group") / f"{stem}_stats.tsv"


def group_statmap_path(analysis: str, measure: str, contrast: str,
                       space: str = GROUP_SPACE) -> Path:
    """Group-level voxelwise map in template space.

    Examples
    --------
    >>> group_statmap_path("change", "trc-K2_model-logan_meas-VT", "postMinusbaselineKetamine"
    ...                    ).as_posix()  # doctest: +NORMALIZE_WHITESPACE
    'group/trc-K2_space-MNI152NLin2009cAsym_model-logan_analysis-change_meas-VT_\
contrast-postMinusbaselineKetamine_statmap.nii.gz'
    """
    stem = _group_stem({**_group_entities(measure), "space": space, "analysis": analysis,
                        "contrast": contrast})
    return Path("group") / f"{stem}_statmap.nii.gz"


def group_report_path() -> Path:
    """Group-level HTML report."""
    return Path("group") / "group.html"


def group_figure_path(analysis: str, measure: str, desc: str, contrast: str | None = None,
                      space: str | None = None) -> Path:
    """Group-level figure named like its table (or, with ``contrast``, its statmap).

    Examples
    --------
    >>> group_figure_path("baseline", "seg-sim_model-suvr_meas-SUVR", "forest").as_posix()
    'group/figures/seg-sim_model-suvr_analysis-baseline_meas-SUVR_desc-forest.svg'
    """
    stem = _group_stem({**_group_entities(measure), "analysis": analysis, "contrast": contrast,
                        "space": space, "desc": desc})
    return Path("group") / "figures" / f"{stem}.svg"


def citation_paths() -> tuple[Path, Path]:
    """Methods boilerplate (Markdown) and its BibTeX, under ``logs/``."""
    return Path("logs") / "CITATION.md", Path("logs") / "CITATION.bib"


def settings_path(subject: str) -> Path:
    """The settings of the run that processed a participant, as TOML.

    Per participant, so that concurrent runs (job arrays) into one output directory each keep
    theirs.
    """
    return Path(f"sub-{subject}") / "log" / "settings.toml"
