"""T1w processing with antspyx: N4, brain mask, template registration, tissue classes.

Used when no anatomical derivatives are given. The mask is an intensity-based foreground
mask (``ants.get_mask``: threshold at the mean intensity, erosion, largest component,
dilation) with holes filled; it is a brain mask for skull-stripped or defaced-and-stripped
T1w images and a head mask otherwise. Arrays only (the caller keeps the affine), except
:func:`register_to_template` and :func:`apply_transforms`, which read files so that ANTs
keeps the world geometry of each image (and writes its transforms).

Template registration (:func:`register_to_template`) is ANTs ``SyN`` with a global-correlation
affine stage and a Mattes mutual-information SyN stage (40 and 20 iterations at 1/4 and 1/2
resolution), written as two HDF5 composite transforms. The affine metric is global
correlation rather than antspyx's default Mattes because Mattes' randomly sampled affine
stage is not reproducible with more than one ITK thread (measured: 2 threads, same seed,
different warps), while this setting gives identical transforms for a seed with 2 threads
(``tests/core/test_anat_registration.py``), for about a third more CPU time on a 2 mm pair.
``quick`` registers copies resampled to 2 mm voxels; at 1 mm it is about 6× faster (11 s
vs 65 s on 2 cores) and region Dice about 0.03 lower (``benchmarks/results/anat.md``).
Transforms are computed in single precision (antspyx's default).

Thread count: ITK follows ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS`` (the scheduler sets it);
``ants.config.set_ants_deterministic`` overwrites it with 1, so ants is imported through
:func:`ketpet_bids.core.motion.import_ants`, which restores it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from scipy import ndimage

from ketpet_bids.core.motion import import_ants

TISSUES = ("GM", "WM", "CSF")
"""Tissue classes of :func:`segment_tissues`, in the order of BIDS ``probseg`` outputs."""

Interpolation = Literal["linear", "genericLabel", "nearestNeighbor"]
LABEL_INTERPOLATIONS = ("genericLabel", "nearestNeighbor")

QUICK_SPACING_MM = 2.0
"""Voxel size (mm) of the copies that ``register_to_template(quick=True)`` registers."""

_SYN = {"type_of_transform": "SyN", "aff_metric": "GC", "syn_metric": "mattes",
        "syn_sampling": 32, "reg_iterations": (40, 20, 0), "singleprecision": True}


def _ants(seed: int = 0, nthreads: int | None = None) -> Any:
    """``ants`` seeded for reproducibility, with ``nthreads`` ITK threads (default: the
    ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS`` already set, else 1)."""
    if nthreads is None:
        nthreads = int(os.environ.get("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "1"))
    return import_ants(seed, nthreads)


def _to_ants(data: np.ndarray, zooms: Sequence[float]):
    import ants  # lazy: ~3 s import

    return ants.from_numpy(np.ascontiguousarray(data, dtype=np.float32),
                           spacing=tuple(float(z) for z in zooms[:3]))


def n4_bias_correct(data: np.ndarray, zooms: Sequence[float], mask: np.ndarray | None = None,
                    *, nthreads: int | None = None) -> np.ndarray:
    """N4 bias-field correction.

    Parameters
    ----------
    data
        (X, Y, Z) T1w intensities.
    zooms
        Voxel sizes (mm); N4's B-spline mesh is defined in mm.
    mask
        Optional boolean (X, Y, Z) region where the bias field is estimated.
    nthreads
        ITK threads (default: ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS``, else 1).

    Returns
    -------
    numpy.ndarray
        (X, Y, Z) float32 corrected intensities (negative inputs clipped to 0 first).
    """
    ants = _ants(nthreads=nthreads)
    image = _to_ants(np.clip(data, 0, None), zooms)
    ants_mask = None if mask is None else _to_ants(mask.astype(np.float32), zooms)
    return ants.n4_bias_field_correction(image, mask=ants_mask).numpy().astype(np.float32)


def brain_mask(data: np.ndarray, zooms: Sequence[float]) -> np.ndarray:
    """Foreground (brain) mask of a bias-corrected T1w.

    Parameters
    ----------
    data
        (X, Y, Z) bias-corrected T1w intensities.
    zooms
        Voxel sizes (mm).

    Returns
    -------
    numpy.ndarray
        (X, Y, Z) boolean mask, holes filled.
    """
    import ants

    mask = ants.get_mask(_to_ants(data, zooms), cleanup=2).numpy() > 0
    return ndimage.binary_fill_holes(mask)


@dataclass(frozen=True)
class TemplateTransforms:
    """ANTs composite transforms (HDF5) between a T1w and a template.

    Attributes
    ----------
    to_template
        T1w → template: resamples a T1w-space image onto a template grid
        (``from-T1w_to-<template>_mode-image_xfm.h5``).
    to_t1w
        Template → T1w: resamples a template-space image (an atlas, tissue priors) onto the
        T1w grid (``from-<template>_to-T1w_mode-image_xfm.h5``).
    """

    to_template: Path
    to_t1w: Path


@contextmanager
def _private_tempdir() -> Iterator[None]:
    """Point :mod:`tempfile` at a directory removed on exit (``ants.atropos`` leaves its
    prior and posterior files in the temporary directory)."""
    previous = tempfile.tempdir
    with tempfile.TemporaryDirectory(prefix="ketpet_atropos_") as scratch:
        tempfile.tempdir = scratch
        try:
            yield
        finally:
            tempfile.tempdir = previous


def _coarsen(image: Any, interpolation: int) -> Any:
    """``image`` resampled to :data:`QUICK_SPACING_MM` along every finer axis
    (antspyx ``interp_type``: 0 linear, 1 nearest neighbour)."""
    import ants

    spacing = tuple(max(float(s), QUICK_SPACING_MM) for s in image.spacing)
    if spacing == tuple(float(s) for s in image.spacing):
        return image
    return ants.resample_image(image, spacing, False, interpolation)


def register_to_template(t1w: Path, mask: Path | None, template: Path,
                         template_mask: Path | None, out_prefix: Path, *, seed: int = 0,
                         quick: bool = False, nthreads: int | None = None
                         ) -> TemplateTransforms:
    """Nonlinear T1w → template registration (ANTs ``SyN``; see the module docstring).

    Parameters
    ----------
    t1w, mask
        Bias-corrected T1w and its brain mask (restricts the SyN metric), 3D NIfTI.
    template, template_mask
        Template T1w and brain mask (e.g. MNI152NLin2009cAsym, ``core.templates``).
    out_prefix
        Path prefix of the transform files: ANTs writes ``<out_prefix>Composite.h5`` and
        ``<out_prefix>InverseComposite.h5``.
    seed
        Seed of ANTs' metric sampling: the same seed gives identical transforms.
    quick
        Register copies resampled to :data:`QUICK_SPACING_MM` voxels (axes already coarser
        are kept); the transforms still apply to the full-resolution images.
    nthreads
        ITK threads (default: ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS``, else 1).

    Returns
    -------
    TemplateTransforms
    """
    ants = _ants(seed, nthreads)

    def read(path: Path | None, interpolation: int) -> Any:
        if path is None:
            return None
        image = ants.image_read(str(path))
        return _coarsen(image, interpolation) if quick else image

    result = ants.registration(
        fixed=read(template, 0), moving=read(t1w, 0), mask=read(template_mask, 1),
        moving_mask=read(mask, 1), outprefix=str(out_prefix), write_composite_transform=True,
        **_SYN)
    return TemplateTransforms(to_template=Path(result["fwdtransforms"]),
                              to_t1w=Path(result["invtransforms"]))


def apply_transforms(moving: Path, reference: Path, transforms: Sequence[Path],
                     interpolation: Interpolation = "linear", *, nthreads: int | None = None
                     ) -> np.ndarray:
    """Resample a 3D image onto another grid through ANTs transforms.

    Parameters
    ----------
    moving
        3D NIfTI to resample: a label image (``genericLabel``, ``nearestNeighbor``) or a
        map (``linear``), e.g. an atlas in template space or a parametric map in T1w space.
    reference
        NIfTI defining the output grid.
    transforms
        ANTs transform files in ``antsApplyTransforms`` order (the last is applied first to
        the reference points), e.g. ``[TemplateTransforms.to_t1w]`` to bring a template atlas
        into T1w space.
    interpolation
        ANTs interpolator.
    nthreads
        ITK threads (default: ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS``, else 1).

    Returns
    -------
    numpy.ndarray
        Array of the reference grid's shape: ``int32`` labels (0 outside the moving image),
        or ``float32`` values. Maps with non-finite voxels are resampled as
        ``warp(value · valid) / warp(valid)`` and are NaN wherever ``warp(valid) < 0.5``
        (outside the warped valid region), so NaNs neither spread nor pull values to 0 at
        the edge; maps without them are 0 outside the moving image's field of view.
    """
    import nibabel as nib  # ants.image_read turns NaN into 0: read the values with nibabel

    ants = _ants(0, nthreads)
    fixed = ants.image_read(str(reference))
    image = ants.image_read(str(moving))  # the geometry, as ANTs sees it
    names = [str(t) for t in transforms]

    def warp(data: np.ndarray) -> np.ndarray:
        return ants.apply_transforms(fixed=fixed, moving=image.new_image_like(data),
                                     transformlist=names, interpolator=interpolation).numpy()

    data = np.asarray(nib.load(moving).dataobj, dtype=np.float32).reshape(image.shape)
    if interpolation in LABEL_INTERPOLATIONS:
        return np.rint(warp(data)).astype(np.int32)
    valid = np.isfinite(data)
    if valid.all():
        return warp(data).astype(np.float32)
    weight = warp(valid.astype(np.float32))
    total = warp(np.where(valid, data, 0.0).astype(np.float32))
    inside = weight >= 0.5
    out = np.full(weight.shape, np.nan, dtype=np.float32)
    out[inside] = total[inside] / weight[inside]
    return out


def segment_tissues(t1w: np.ndarray, mask: np.ndarray,
                    priors: Mapping[str, np.ndarray] | None = None, prior_weight: float = 0.25,
                    *, mrf: float = 0.1, iterations: int = 5, nthreads: int | None = None
                    ) -> dict[str, np.ndarray]:
    """Grey matter, white matter and CSF probabilities of a T1w (ANTs Atropos, 3 classes).

    Parameters
    ----------
    t1w
        (X, Y, Z) bias-corrected T1w intensities.
    mask
        (X, Y, Z) boolean brain mask (CSF included); classes are estimated inside it.
    priors
        Optional ``{"GM", "WM", "CSF"}`` → (X, Y, Z) prior probabilities on the T1w grid
        (template priors warped into T1w space). Atropos then starts from them and weighs
        them by ``prior_weight``; they are renormalised to sum to 1 in the mask (with a
        0.001 floor, so that no mask voxel has an all-zero prior). Without priors Atropos
        starts from k-means, and the classes are named by mean intensity (CSF < GM < WM).
    prior_weight
        Weight of the priors in the posterior (0: initialisation only; ANTs uses 0.25).
    mrf
        Markov-random-field smoothing (ANTs ``-m [mrf,1x1x1]``).
    iterations
        Maximum EM iterations.
    nthreads
        ITK threads (default: ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS``, else 1).

    Returns
    -------
    dict
        ``{"GM", "WM", "CSF"}`` → (X, Y, Z) float32 posterior probabilities, 0 outside the mask.
    """
    ants = _ants(0, nthreads)
    inside = np.asarray(mask, dtype=bool)
    image = _to_ants(t1w, (1.0, 1.0, 1.0))
    ants_mask = _to_ants(inside.astype(np.float32), (1.0, 1.0, 1.0))
    settings = {"m": f"[{mrf},1x1x1]", "c": f"[{iterations},0]", "x": ants_mask}
    if priors is None:
        init: str | list[Any] = "Kmeans[3]"
    else:
        stack = np.stack([np.asarray(priors[t], dtype=np.float32) for t in TISSUES]) + 1e-3
        stack = np.where(inside, stack / stack.sum(axis=0), 0.0)
        init = [_to_ants(p, (1.0, 1.0, 1.0)) for p in stack]
    with _private_tempdir():
        result = ants.atropos(a=image, i=init, priorweight=prior_weight, **settings)
        probs = np.stack([p.numpy() for p in result["probabilityimages"][:3]])
    probs = np.where(inside, probs, 0.0).astype(np.float32)
    if priors is None:  # name k-means classes by mean intensity: CSF < GM < WM
        means = (probs * t1w).sum(axis=(1, 2, 3)) / probs.sum(axis=(1, 2, 3))
        csf, gm, wm = np.argsort(means)
        return {"GM": probs[gm], "WM": probs[wm], "CSF": probs[csf]}
    return dict(zip(TISSUES, probs, strict=True))
