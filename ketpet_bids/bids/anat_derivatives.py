"""Find sMRIPrep/fMRIPrep-style anatomical derivatives and user atlases (T1w space).

For ``--anat-derivatives DIR`` we look, for one subject, in ``sub-<s>/anat/`` and then in
``sub-<s>/ses-*/anat/`` for (DESIGN.md §4)::

    sub-<s>[_ses-<ss>]_desc-preproc_T1w.nii[.gz]
    sub-<s>[_ses-<ss>]_desc-brain_mask.nii[.gz]
    sub-<s>[_ses-<ss>]_label-{GM,WM,CSF}_probseg.nii[.gz]
    sub-<s>[_ses-<ss>]_seg-<name>_dseg.nii[.gz]  +  the same name ending in _dseg.tsv
    sub-<s>[_ses-<ss>]_from-T1w_to-MNI152NLin2009cAsym_mode-image_xfm.h5  (and the inverse,
    from-MNI152NLin2009cAsym_to-T1w: used together, instead of a new template registration)

Files with a ``space-`` entity other than ``T1w`` (template-space outputs) are skipped. Every
``seg-<name>`` segmentation becomes an atlas called ``<name>``; its TSV must have ``index``
and ``name`` columns.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from ketpet_bids.core.regions import as_label_array, read_label_table, unlisted_labels
from ketpet_bids.errors import InputError

LOGGER = logging.getLogger("ketpet_bids.anat")

TISSUES = ("GM", "WM", "CSF")
TEMPLATE = "MNI152NLin2009cAsym"
_NIFTI = re.compile(r"^(?P<stem>.+)\.nii(\.gz)?$")


@dataclass(frozen=True)
class AnatDerivatives:
    """Anatomical derivatives found for one subject (all in that subject's T1w space).

    Attributes
    ----------
    root
        The derivatives dataset.
    subject
        Label without ``sub-``.
    session
        Session label of the ``anat/`` folder used, ``None`` for the subject level.
    t1w_preproc, brain_mask
        Preprocessed T1w and brain mask, or ``None`` when absent.
    probsegs
        Tissue → probability map, for the tissues found among GM, WM, CSF.
    segs
        Atlas name → (label image, label table TSV), one per ``seg-<name>`` dseg.
    template_xfms
        (T1w → template, template → T1w) ANTs HDF5 transforms to :data:`TEMPLATE`, when both
        are present.
    """

    root: Path
    subject: str
    session: str | None = None
    t1w_preproc: Path | None = None
    brain_mask: Path | None = None
    probsegs: dict[str, Path] = field(default_factory=dict)
    segs: dict[str, tuple[Path, Path]] = field(default_factory=dict)
    template_xfms: tuple[Path, Path] | None = None

    @property
    def probseg_list(self) -> list[Path]:
        """[GM, WM, CSF] maps when all three are present, else ``[]``."""
        if all(t in self.probsegs for t in TISSUES):
            return [self.probsegs[t] for t in TISSUES]
        return []


def _entities(name: str) -> tuple[dict[str, str], str] | None:
    """Entities and suffix of a NIfTI/TSV/HDF5 file name, or ``None`` if not BIDS-like."""
    match = _NIFTI.match(name)
    stem = match["stem"] if match else next(
        (name[: -len(ext)] for ext in (".tsv", ".h5") if name.endswith(ext)), None)
    if stem is None:
        return None
    *pairs, suffix = stem.split("_")
    if not pairs or not all(p.count("-") >= 1 for p in pairs):
        return None
    return dict(p.split("-", 1) for p in pairs), suffix


def _anat_dirs(root: Path, subject: str) -> list[tuple[str | None, Path]]:
    base = root / f"sub-{subject}"
    dirs: list[tuple[str | None, Path]] = []
    if (base / "anat").is_dir():
        dirs.append((None, base / "anat"))
    dirs += [(d.name[4:], d / "anat") for d in sorted(base.glob("ses-*"))
             if (d / "anat").is_dir()]
    return dirs


def _pick(candidates: list[Path], what: str, folder: Path) -> Path | None:
    if len(candidates) > 1:
        raise InputError(folder, f"several {what} files: {sorted(p.name for p in candidates)}",
                         "keep one per subject in the anatomical derivatives")
    return candidates[0] if candidates else None


def find_anat_derivatives(root: Path, subject: str) -> AnatDerivatives | None:
    """Anatomical derivatives of ``subject`` under ``root``, or ``None`` if there are none.

    The subject-level ``anat/`` folder is used when it has any of the files; otherwise the
    first session (sorted) that has them, with a warning when several sessions do (one
    anatomical reference is used for all sessions).

    Raises
    ------
    InputError
        Naming the file when a dseg has no TSV, a TSV lacks ``index``/``name``, or a slot
        (e.g. the preprocessed T1w) has several candidates. Labels present in an image but
        missing from its TSV are only warned about (they are ignored).
    """
    subject = subject.removeprefix("sub-")
    found = [(ses, folder, _scan(folder)) for ses, folder in _anat_dirs(Path(root), subject)]
    found = [f for f in found if f[2]]
    if not found:
        return None
    if len(found) > 1:
        LOGGER.warning("sub-%s: anatomical derivatives in %s; using %s", subject,
                       [str(f[1]) for f in found], found[0][1])
    session, folder, files = found[0]
    slots: dict[str, list[Path]] = {}
    atlases: dict[str, tuple[Path, Path]] = {}
    for path, ents, suffix in files:
        if suffix == "dseg" and "seg" in ents:
            atlases[ents["seg"]] = check_atlas(path)
        elif suffix == "T1w" and ents.get("desc") == "preproc":
            slots.setdefault("t1w", []).append(path)
        elif suffix == "mask" and ents.get("desc") == "brain":
            slots.setdefault("mask", []).append(path)
        elif suffix == "probseg" and ents.get("label") in TISSUES:
            slots.setdefault(ents["label"], []).append(path)
        elif suffix == "xfm" and ents.get("mode") == "image":
            direction = (ents.get("from"), ents.get("to"))
            if direction in (("T1w", TEMPLATE), (TEMPLATE, "T1w")):
                slots.setdefault(direction[1], []).append(path)
    probsegs = {t: p for t in TISSUES
                if (p := _pick(slots.get(t, []), f"label-{t} probseg", folder))}
    xfms = (_pick(slots.get(TEMPLATE, []), f"T1w to {TEMPLATE} transform", folder),
            _pick(slots.get("T1w", []), f"{TEMPLATE} to T1w transform", folder))
    return AnatDerivatives(
        root=Path(root), subject=subject, session=session,
        t1w_preproc=_pick(slots.get("t1w", []), "desc-preproc T1w", folder),
        brain_mask=_pick(slots.get("mask", []), "desc-brain mask", folder),
        probsegs=probsegs, segs=dict(sorted(atlases.items())),
        template_xfms=xfms if all(xfms) else None)


def _scan(folder: Path) -> list[tuple[Path, dict[str, str], str]]:
    """NIfTI files of ``folder`` in T1w space and HDF5 transforms, with entities and suffix."""
    out = []
    for path in sorted(folder.iterdir()):
        is_image = _NIFTI.match(path.name) or path.name.endswith("_xfm.h5")
        parsed = _entities(path.name) if is_image else None
        if parsed and parsed[0].get("space", "T1w") == "T1w":
            out.append((path, *parsed))
    return out


def atlas_tsv(image: Path) -> Path:
    """The label table beside a label image: ``x.nii.gz`` → ``x.tsv``."""
    match = _NIFTI.match(Path(image).name)
    if not match:
        raise InputError(image, "an atlas must be a NIfTI label image (.nii or .nii.gz)")
    return Path(image).with_name(match["stem"] + ".tsv")


def check_atlas(image: Path) -> tuple[Path, Path]:
    """Check a label image and its same-named TSV; return ``(image, tsv)``.

    Raises
    ------
    InputError
        When the TSV is missing or malformed, or the image is not an integer 3D label image.
    """
    tsv = atlas_tsv(image)
    if not tsv.is_file():
        raise InputError(image, f"label image has no label table {tsv.name}",
                         "add a TSV with columns 'index' and 'name' beside it")
    table = read_label_table(tsv)
    img = nib.load(image)
    if len(img.shape) != 3:
        raise InputError(image, f"label image must be 3D, has shape {img.shape}")
    labels = as_label_array(np.asanyarray(img.dataobj), image)
    extra = unlisted_labels(labels, table)
    if extra:
        LOGGER.warning("%s: labels %s are not in %s and are ignored", image, extra[:20],
                       tsv.name)
    return Path(image), tsv


ATLAS_SPACES = ("T1w", TEMPLATE)
"""Spaces a ``--atlas PATH`` image can be in (``MNI`` is taken as the template's name)."""


@functools.lru_cache(maxsize=64)
def load_user_atlas(path: Path, space: str | None = None) -> tuple[str, Path, Path, str]:
    """Name, files and space of a user atlas given as ``--atlas PATH``.

    Cached: the same file is checked once per process, not once per participant (the
    command-line check and every subject's anatomy ask for it).

    The name is the file's ``seg-`` (or ``atlas-``) entity if it has one, otherwise its stem
    with non-alphanumerics removed, e.g. ``my_atlas.nii.gz`` → ``myatlas``. The space is
    ``space`` (``--atlas-space``) if given, else the file's ``space-`` entity, else ``T1w``;
    it must be one of :data:`ATLAS_SPACES`.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("--atlas", f"{path} does not exist")
    image, tsv = check_atlas(path)
    parsed = _entities(path.name)
    ents = parsed[0] if parsed else {}
    name = ents.get("seg") or ents.get("atlas") or _NIFTI.match(path.name)["stem"]
    name = re.sub(r"[^A-Za-z0-9]", "", name)
    if not name:
        raise InputError("--atlas", f"cannot derive an atlas name from {path.name}")
    space = space or ents.get("space", "T1w")
    space = TEMPLATE if space == "MNI" else space
    if space not in ATLAS_SPACES:
        raise InputError(path, f"atlas space '{space}' is not supported",
                         f"give an atlas in {' or '.join(ATLAS_SPACES)} space (--atlas-space)")
    return name, image, tsv, space
