"""Spine-level T1w processing: N4 bias correction and a brain mask (antspyx).

Used when no anatomical derivatives are given. The mask is an intensity-based foreground
mask (``ants.get_mask``: threshold at the mean intensity, erosion, largest component,
dilation) with holes filled; it is a brain mask for skull-stripped or defaced-and-stripped
T1w images and a head mask otherwise. Template-based brain extraction comes with the
template registration (issue 4). Arrays only (the caller keeps the affine), except
:func:`register_to_template`, which reads and writes files so that ANTs keeps the world
geometry and writes its transforms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage


def _to_ants(data: np.ndarray, zooms: Sequence[float]):
    import ants  # lazy: ~3 s import

    return ants.from_numpy(np.ascontiguousarray(data, dtype=np.float32),
                           spacing=tuple(float(z) for z in zooms[:3]))


def n4_bias_correct(data: np.ndarray, zooms: Sequence[float], mask: np.ndarray | None = None
                    ) -> np.ndarray:
    """N4 bias-field correction.

    Parameters
    ----------
    data
        (X, Y, Z) T1w intensities.
    zooms
        Voxel sizes (mm); N4's B-spline mesh is defined in mm.
    mask
        Optional boolean (X, Y, Z) region where the bias field is estimated.

    Returns
    -------
    numpy.ndarray
        (X, Y, Z) float32 corrected intensities (negative inputs clipped to 0 first).
    """
    import ants

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
    """ANTs transform files between a T1w and a template (``ants.apply_transforms`` order).

    Attributes
    ----------
    to_template
        [warp, affine]: resample a T1w-space image into template space.
    to_t1w
        [affine, inverse warp] with ``whichtoinvert=[True, False]``: resample a
        template-space image (an atlas) into T1w space.
    """

    to_template: tuple[Path, Path]
    to_t1w: tuple[Path, Path]


def register_to_template(t1w: Path, mask: Path | None, template: Path,
                         template_mask: Path | None, out_prefix: Path, *, seed: int = 0,
                         quick: bool = False) -> TemplateTransforms:
    """Nonlinear T1w → template registration (antspyx ``SyN``: affine, then symmetric
    normalisation, Mattes mutual information; ``quick``: ``antsRegistrationSyNQuick[s]``).

    Parameters
    ----------
    t1w, mask
        Bias-corrected T1w and its brain mask (restricts the metric), NIfTI.
    template, template_mask
        Template T1w and brain mask (e.g. MNI152NLin2009cAsym, ``core.templates``).
    out_prefix
        Path prefix of the transform files ANTs writes.
    seed
        Seed of ANTs' metric sampling (results are deterministic for a seed).
    quick
        ``SyNQuick`` (fewer iterations, MI metric) instead of ``SyN``.

    Returns
    -------
    TemplateTransforms
    """
    import ants

    ants.config.set_ants_deterministic(True, seed)
    read = ants.image_read
    result = ants.registration(
        fixed=read(str(template)), moving=read(str(t1w)),
        type_of_transform="antsRegistrationSyNQuick[s]" if quick else "SyN",
        mask=read(str(template_mask)) if template_mask else None,
        moving_mask=read(str(mask)) if mask else None,
        outprefix=str(out_prefix))
    warp, affine = (Path(f) for f in result["fwdtransforms"])
    inverse_warp = next(Path(f) for f in result["invtransforms"] if f.endswith(".nii.gz"))
    return TemplateTransforms(to_template=(warp, affine), to_t1w=(affine, inverse_warp))
