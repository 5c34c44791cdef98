"""FreeSurfer subject directories as an anatomical source (``--fs-subjects-dir``).

For a subject, FreeSurfer's ``recon-all`` writes ``<SUBJECTS_DIR>/sub-<s>/mri/`` with
``aparc+aseg.mgz`` (Desikan-Killiany cortex + ``aseg`` subcortex), ``brainmask.mgz``,
``orig.mgz``/``T1.mgz`` and ``rawavg.mgz``, all but the last in the *conformed* space (256³ at
1 mm, LIA). Conformed and raw images share scanner RAS coordinates: each ``.mgz``'s affine
(as read by nibabel) maps its voxels to the same scanner-RAS millimetres as the NIfTI affine
of the T1w FreeSurfer was run on, so labels move into T1w space with the two affines alone
(nearest neighbour, :func:`ketpet_bids.core.regions.resample_nearest`).

Region names come from the compact FreeSurfer look-up table shipped as
``ketpet_bids/data/freesurfer_lut.tsv``: the 49 ``aseg`` labels that ``aparc+aseg`` can hold
(2–85 and the corpus callosum 251–255) and the Desikan-Killiany cortex labels
``ctx-lh-*`` (1000–1035) and ``ctx-rh-*`` (2000–2035), 121 entries in all.

Source: every index → name pair was checked (121 of 121 identical, 2026-11-30) against
``distribution/FreeSurferColorLUT.txt`` of the FreeSurfer repository (github.com/freesurfer/
freesurfer, commit 62228baedd5c5914333d31211e3e02759faed287); the test
``test_lut_matches_freesurfer_color_lut`` keeps a sample of those pairs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ketpet_bids.core.regions import LabelTable, read_label_table, resample_nearest
from ketpet_bids.errors import InputError

LOGGER = logging.getLogger("ketpet_bids.anat")

ATLAS_NAME = "aparcaseg"
"""Name of the atlas made from ``aparc+aseg.mgz`` (``seg-aparcaseg`` in the outputs)."""

MIN_KEPT_FRACTION = 0.9
"""Least fraction of the labelled FreeSurfer volume that must land inside the T1w grid."""


@dataclass(frozen=True)
class FreeSurferInputs:
    """The FreeSurfer files used for one subject (conformed space, ``.mgz``).

    Attributes
    ----------
    subject_dir
        ``<SUBJECTS_DIR>/sub-<s>``.
    aparc_aseg
        ``mri/aparc+aseg.mgz``.
    brainmask
        ``mri/brainmask.mgz`` (skull-stripped intensities; > 0 is the brain), or ``None``.
    t1
        ``mri/T1.mgz`` or else ``mri/orig.mgz`` (conformed intensities), or ``None``.
    """

    subject_dir: Path
    aparc_aseg: Path
    brainmask: Path | None = None
    t1: Path | None = None


def find_freesurfer(fs_dir: Path, subject: str) -> FreeSurferInputs | None:
    """FreeSurfer outputs of ``subject`` under ``fs_dir``, or ``None`` when it has none.

    The subject folder is ``sub-<s>`` (fMRIPrep/sMRIPrep naming), else ``<s>``.

    Raises
    ------
    InputError
        Naming the expected file when the subject folder exists but lacks
        ``mri/aparc+aseg.mgz``.
    """
    subject = subject.removeprefix("sub-")
    folders = [Path(fs_dir) / f"sub-{subject}", Path(fs_dir) / subject]
    folder = next((f for f in folders if f.is_dir()), None)
    if folder is None:
        return None
    mri = folder / "mri"
    aparc = mri / "aparc+aseg.mgz"
    if not aparc.is_file():
        raise InputError(aparc, "missing: the FreeSurfer subject has no aparc+aseg",
                         "run recon-all to completion, or leave out --fs-subjects-dir")
    t1 = next((p for p in (mri / "T1.mgz", mri / "orig.mgz") if p.is_file()), None)
    brainmask = mri / "brainmask.mgz"
    return FreeSurferInputs(subject_dir=folder, aparc_aseg=aparc,
                            brainmask=brainmask if brainmask.is_file() else None, t1=t1)


def freesurfer_lut() -> LabelTable:
    """The shipped compact FreeSurfer look-up table (index → name)."""
    with resources.as_file(resources.files("ketpet_bids") / "data" / "freesurfer_lut.tsv"
                           ) as path:
        return read_label_table(path)


def labels_to_t1w(labels: np.ndarray, fs_affine: np.ndarray, t1w_shape: tuple[int, ...],
                  t1w_affine: np.ndarray, lut: LabelTable, where: str | Path
                  ) -> tuple[np.ndarray, LabelTable]:
    """Move a FreeSurfer label volume onto the T1w grid and name its labels.

    Parameters
    ----------
    labels
        (X, Y, Z) integer labels in conformed space (e.g. ``aparc+aseg``).
    fs_affine
        4×4 voxel → scanner-RAS mm affine of ``labels`` (nibabel's ``MGHImage.affine``).
    t1w_shape, t1w_affine
        The T1w grid (shape and voxel → scanner-RAS mm affine).
    lut
        Index → name; labels not in it are set to 0 (with a warning).
    where
        File named in warnings and errors.

    Returns
    -------
    labels, table
        (X', Y', Z') int32 labels on the T1w grid and the table of the labels present.

    Raises
    ------
    InputError
        When less than :data:`MIN_KEPT_FRACTION` of the labelled volume falls inside the
        T1w grid (FreeSurfer was run on another image or another subject).
    """
    labels = np.asarray(labels, dtype=np.int32)
    unknown = np.setdiff1d(np.unique(labels), [0, *lut])
    if unknown.size:
        LOGGER.warning("%s: labels %s are not in the FreeSurfer table and are ignored",
                       where, unknown[:20].tolist())
        labels = np.where(np.isin(labels, unknown), 0, labels)
    moved = resample_nearest(labels, fs_affine, t1w_shape[:3], t1w_affine)
    before = np.count_nonzero(labels) * abs(np.linalg.det(fs_affine[:3, :3]))
    after = np.count_nonzero(moved) * abs(np.linalg.det(t1w_affine[:3, :3]))
    if before == 0 or after < MIN_KEPT_FRACTION * before:
        raise InputError(where, f"only {after:.0f} of {before:.0f} mm³ of labels fall inside "
                         "the T1w field of view",
                         "give the FreeSurfer run of this subject's T1w (same scanner RAS)")
    present = np.unique(moved)
    return moved, {int(i): lut[int(i)] for i in present if i != 0}
