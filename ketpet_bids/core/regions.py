"""Label tables, region volumes and reference-region definitions (T1w space).

A *label image* is an integer array in which each voxel holds a region index (0 = no region);
its *label table* maps index → region name (the ``index name`` columns of a BIDS ``_dseg.tsv``).
Everything here is pure numpy/scipy/pandas; images are arrays plus their 4×4 RAS affine.

Reference regions are resolved from a definition string against a label table:

``wholebrain``
    every labelled region except CSF, ventricles and choroid plexus, inside the brain mask.
``white-matter``
    regions named ``*white-matter*`` or ``WM`` (cerebellar white matter and FreeSurfer's
    ``non-WM-hypointensities`` excluded).
``cerebellum-gm``
    cerebellar regions that are not white matter (e.g. FreeSurfer ``*-Cerebellum-Cortex``).
``cerebellum``
    every cerebellar region.
``pons``
    regions named ``*pons*``.
``A+B+…``
    an explicit list of region names from the table (a single name is a list of one).

Names are compared after lower-casing and turning any run of non-alphanumerics into ``-``,
so ``Left-Cerebral-White-Matter``, ``left_cerebral white matter`` and
``LEFT-CEREBRAL-WHITE-MATTER`` are the same name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from ketpet_bids.errors import InputError

LabelTable = dict[int, str]
"""Region index → region name (index 0 is never a region)."""

_CSF = re.compile(r"(csf|cerebrospinal|ventric|(^|-)vent($|-)|choroid)")
_WHITE = re.compile(r"(white-matter|(?<!non)(^|-)wm($|-)|^white$)")


def normalise_name(name: str) -> str:
    """Lower-case ``name`` and turn runs of non-alphanumerics into single ``-``.

    >>> normalise_name("Left-Cerebral White_Matter")
    'left-cerebral-white-matter'
    """
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def is_csf(name: str) -> bool:
    """Whether a region name denotes CSF, ventricles or choroid plexus."""
    return bool(_CSF.search(name))


def is_white(name: str) -> bool:
    """Whether a region name denotes white matter."""
    return bool(_WHITE.search(name))


def _is_cerebellar(name: str) -> bool:
    return "cerebell" in name


NAMED_REFERENCES: dict[str, tuple[str, Callable[[str], bool]]] = {
    "wholebrain": ("all labelled regions except CSF, ventricles and choroid plexus, within "
                   "the brain mask", lambda n: not is_csf(n)),
    "white-matter": ("regions named *white-matter* or WM, cerebellar white matter excluded",
                     lambda n: is_white(n) and not _is_cerebellar(n)),
    "cerebellum-gm": ("cerebellar regions that are not white matter",
                      lambda n: _is_cerebellar(n) and not is_white(n) and "white" not in n),
    "cerebellum": ("all cerebellar regions", _is_cerebellar),
    "pons": ("regions named *pons*", lambda n: "pons" in n),
}
"""Named reference definitions: name → (description, predicate on a normalised region name)."""


def read_label_table(path: Path) -> LabelTable:
    """Read a BIDS ``_dseg.tsv`` (columns ``index`` and ``name``; others are ignored).

    Raises
    ------
    InputError
        Naming ``path`` when a column is missing, an index is not a positive integer, or an
        index or name is repeated or empty.
    """
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise InputError(path, f"cannot read the label table ({err})") from err
    missing = [c for c in ("index", "name") if c not in table.columns]
    if missing:
        raise InputError(path, f"label table lacks column(s) {missing}; has "
                         f"{list(table.columns)}", "write a TSV with columns 'index' and 'name'")
    index = pd.to_numeric(table["index"], errors="coerce")
    bad = table["index"][index.isna() | (index % 1 != 0) | (index < 0)].tolist()
    if bad:
        raise InputError(path, f"column 'index' has non-integer values {bad[:5]}")
    names = table["name"].str.strip()
    if (names == "").any():
        raise InputError(path, "column 'name' has empty entries")
    for column, values in (("index", index), ("name", names)):
        repeated = values[values.duplicated()].tolist()
        if repeated:
            raise InputError(path, f"column '{column}' repeats {repeated[:5]}")
    out = {int(i): str(n) for i, n in zip(index, names, strict=True)}
    out.pop(0, None)  # index 0 is background by convention
    return out


def unlisted_labels(labels: np.ndarray, table: LabelTable) -> list[int]:
    """Labels present in ``labels`` (other than 0) that ``table`` does not list, sorted."""
    present = np.unique(labels)
    return [int(v) for v in present if v != 0 and int(v) not in table]


def as_label_array(data: np.ndarray, where: str | Path) -> np.ndarray:
    """Check that ``data`` holds non-negative integers and return it as ``int32``.

    Raises
    ------
    InputError
        Naming ``where`` when values are fractional or negative.
    """
    arr = np.asarray(data)
    if not np.issubdtype(arr.dtype, np.integer):
        rounded = np.rint(arr)
        if not np.array_equal(rounded, arr):
            raise InputError(where, "label image has non-integer values",
                             "give an integer label image (a dseg), not a probability map")
        arr = rounded
    if arr.size and arr.min() < 0:
        raise InputError(where, "label image has negative labels")
    return arr.astype(np.int32)


def region_volumes(labels: np.ndarray, table: LabelTable, voxel_volume_mm3: float
                   ) -> pd.DataFrame:
    """Volume of every region of ``table`` in a label image.

    Parameters
    ----------
    labels
        Integer label image, any shape, values ≥ 0.
    table
        Region index → name.
    voxel_volume_mm3
        Volume of one voxel (mm³), ``abs(det(affine[:3, :3]))``.

    Returns
    -------
    pandas.DataFrame
        Columns ``index``, ``name``, ``volume_mm3``; one row per table entry, in index order
        (volume 0 for regions absent from the image).
    """
    counts = np.bincount(labels.ravel(), minlength=max(table, default=0) + 1)
    index = np.array(sorted(table), dtype=int)
    return pd.DataFrame({"index": index, "name": [table[i] for i in index],
                         "volume_mm3": counts[index] * float(voxel_volume_mm3)})


def reference_indices(definition: str, table: LabelTable) -> list[int]:
    """Region indices that make up the reference ``definition`` (see module docstring).

    Raises
    ------
    InputError
        On ``--ref-region`` when a listed name is not in the table or a named definition
        matches no region; the message lists the available names.
    """
    names = {i: normalise_name(n) for i, n in table.items()}
    key = normalise_name(definition)
    if key in NAMED_REFERENCES:
        predicate = NAMED_REFERENCES[key][1]
        chosen = [i for i, n in names.items() if predicate(n)]
        unknown = [] if chosen else [definition]
    else:
        by_name = {n: i for i, n in names.items()}
        parts = [normalise_name(p) for p in definition.split("+")]
        unknown = [p for p in parts if p not in by_name]
        chosen = [by_name[p] for p in parts if p in by_name]
    if unknown or not chosen:
        raise InputError(
            "--ref-region", f"'{definition}': no region matches {unknown}",
            f"use one of the named definitions {sorted(NAMED_REFERENCES)} or '+'-joined "
            f"region names from the atlas: {sorted(table.values())}")
    return sorted(set(chosen))


def erode_mm(mask: np.ndarray, zooms: Sequence[float], radius_mm: float) -> np.ndarray:
    """Remove voxels within ``radius_mm`` of the outside of ``mask``.

    A voxel is kept when the Euclidean distance (in mm, voxel centres) from it to the
    nearest voxel outside the mask is greater than ``radius_mm``; voxels beyond the array
    border count as outside. ``radius_mm = 0`` returns the mask unchanged.
    """
    mask = np.asarray(mask, dtype=bool)
    if radius_mm <= 0:
        return mask
    padded = np.pad(mask, 1)
    dist = ndimage.distance_transform_edt(padded, sampling=tuple(float(z) for z in zooms))
    return (dist > radius_mm)[1:-1, 1:-1, 1:-1]


def reference_mask(labels: np.ndarray, table: LabelTable, definition: str, *,
                   zooms: Sequence[float], brain_mask: np.ndarray | None = None,
                   erode_radius_mm: float = 0.0) -> tuple[np.ndarray, list[int]]:
    """Binary reference-region mask in the label image's space.

    Parameters
    ----------
    labels
        Integer label image (X, Y, Z).
    table
        Region index → name.
    definition
        Reference definition (module docstring).
    zooms
        Voxel sizes (mm), for erosion.
    brain_mask
        Boolean (X, Y, Z) on the label grid; ``wholebrain`` is restricted to it.
    erode_radius_mm
        Erosion radius (mm), 0 for none.

    Returns
    -------
    mask, indices
        Boolean (X, Y, Z) mask and the region indices it was built from.

    Raises
    ------
    InputError
        When the definition is unknown (see :func:`reference_indices`) or the mask is empty
        (after erosion).
    """
    indices = reference_indices(definition, table)
    mask = np.isin(labels, indices)
    if brain_mask is not None and normalise_name(definition) == "wholebrain":
        mask &= np.asarray(brain_mask, dtype=bool)
    mask = erode_mm(mask, zooms, erode_radius_mm)
    if not mask.any():
        raise InputError("--ref-region", f"'{definition}' leaves an empty mask"
                         + (f" after {erode_radius_mm} mm erosion" if erode_radius_mm else ""),
                         "choose a larger region or a smaller erosion")
    return mask, indices


def resample_nearest(data: np.ndarray, src_affine: np.ndarray, dst_shape: Sequence[int],
                     dst_affine: np.ndarray) -> np.ndarray:
    """Nearest-neighbour resampling of a 3D image onto another grid (same world space).

    Parameters
    ----------
    data
        (X, Y, Z) source image.
    src_affine, dst_affine
        4×4 voxel → RAS mm affines of the source and destination grids.
    dst_shape
        Destination shape (X', Y', Z').

    Returns
    -------
    numpy.ndarray
        (X', Y', Z') array of ``data``'s dtype; 0 outside the source field of view.
    """
    if tuple(dst_shape) == data.shape and np.allclose(src_affine, dst_affine, atol=1e-4):
        return data
    vox = np.linalg.inv(src_affine) @ dst_affine
    return ndimage.affine_transform(data, vox[:3, :3], offset=vox[:3, 3],
                                    output_shape=tuple(dst_shape), order=0, mode="constant",
                                    cval=0)
