"""The registry of partial-volume correction methods and the one entry point that runs them.

Each method has a BIDS label (the ``pvc-<label>`` entity). :func:`prepare` does the work
shared by every frame and every method of a run once (regional spread functions, transfer
matrix, blurred GM map, ``F⁻¹``); :func:`correct` then streams the frames of a run through one method:
regional methods collect the observed means and solve all frames at once, voxelwise
methods correct one frame at a time and hand each corrected frame to a callback (so memory
grows with one frame). The regional values of a voxelwise method are the
fraction-weighted means of its corrected image de-mixed by ``F⁻¹``
(:meth:`PVCRegions.overlap_matrix`): a boundary voxel holds a mixture of its regions, and
``F⁻¹`` undoes that mixing exactly for a piecewise-constant image (PETPVC's fuzziness
correction). Müller-Gärtner is the exception: its GM voxels hold the GM activity itself,
so GM regions take the plain fraction-weighted means and the other regions the
compartment activities the method assumed. Every voxelwise image is clipped to ``[0, EXPLODE_FACTOR × max of
the observed frame]``, and regional values to ``[0, EXPLODE_FACTOR × max observed regional
mean]``; the number of clipped values is reported.

Examples
--------
>>> get_method("rbv").voxelwise
True
>>> known_methods()
('gtm', 'iy', 'mg', 'rbv', 'rl', 'vc')
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

from ketpet_bids.core.pvc import iy, rl, vc
from ketpet_bids.core.pvc.gtm import TransferMatrix, solve_gtm, transfer_matrix
from ketpet_bids.core.pvc.mg import WMSource, eroded_wm_mask, muller_gartner
from ketpet_bids.core.pvc.psf import GaussianPSF
from ketpet_bids.core.pvc.rbv import rbv
from ketpet_bids.core.pvc.regions import PVCRegions, clip_activity, explode_limit
from ketpet_bids.core.pvc.spread import spread_on_pet_grid
from ketpet_bids.errors import InputError


@dataclass(frozen=True)
class Method:
    """One PVC method: label, kind, defaults and a methods-section sentence."""

    label: str
    title: str
    voxelwise: bool
    needs_gtm: bool
    default_iterations: int | None
    description: str


METHODS: dict[str, Method] = {m.label: m for m in (
    Method("gtm", "geometric transfer matrix", False, True, None,
           "the geometric transfer matrix method (Rousset et al. 1998), solving for the mean "
           "activity of every region and of the background by least squares"),
    Method("rbv", "region-based voxel-wise correction", True, True, None,
           "region-based voxel-wise correction (Thomas et al. 2011): GTM regional values, "
           "then each voxel scaled by the ratio of the piecewise-constant and the blurred "
           "piecewise-constant image"),
    Method("mg", "Müller-Gärtner", True, True, None,
           "the Müller-Gärtner method (1992): grey matter corrected voxel by voxel after "
           "removing the blurred white-matter, CSF and background activity estimated by GTM"),
    Method("iy", "iterative Yang", True, False, iy.ITERATIONS,
           "iterative Yang correction (Erlandsson et al. 2012)"),
    Method("vc", "Van Cittert", True, False, vc.ITERATIONS,
           f"reblurred Van Cittert deconvolution (alpha {vc.ALPHA}, stopping when the "
           f"relative change fell below {vc.STOP})"),
    Method("rl", "Richardson-Lucy", True, False, rl.ITERATIONS,
           "Richardson-Lucy deconvolution"),
)}
"""Every method by its BIDS label."""


_NEEDS_SPREAD = {"gtm", "rbv", "mg", "iy"}
"""Methods that use the regional spread functions."""


def known_methods() -> tuple[str, ...]:
    """Labels of all registered methods, sorted."""
    return tuple(sorted(METHODS))


def get_method(label: str) -> Method:
    """A method by label (case-insensitive).

    Raises
    ------
    InputError
        On ``--pvc`` when the label is unknown; the message lists the known labels.
    """
    try:
        return METHODS[label.lower()]
    except KeyError:
        raise InputError("--pvc", f"unknown partial-volume correction '{label}'",
                         f"choose from: {', '.join(known_methods())}") from None


@dataclass(frozen=True)
class PVCSetup:
    """Everything a run's methods share, computed once per PSF (see :func:`prepare`).

    ``spread`` is the (R, N) sparse array of regional spread functions (:mod:`.spread`;
    empty (0, 0) when no method needs it).
    """

    regions: PVCRegions
    psf: GaussianPSF
    spread: sparse.csr_array
    gtm: TransferMatrix | None
    overlap_inverse: np.ndarray
    gm_blurred: np.ndarray
    wm_core: np.ndarray


@dataclass
class PVCResult:
    """Output of :func:`correct`.

    Attributes
    ----------
    values
        (F, R) corrected regional activities (Bq/mL), background shells last; NaN for regions
        outside the field of view.
    iterations
        Iterations run per frame (empty for non-iterative methods).
    clipped
        ``{"negative": n, "exploding": n}`` values clipped (voxels or regional values).
    """

    values: np.ndarray
    iterations: list[int] = field(default_factory=list)
    clipped: dict[str, int] = field(default_factory=lambda: {"negative": 0, "exploding": 0})

    def add_clipped(self, counts: dict[str, int]) -> None:
        """Accumulate a clipping report."""
        self.clipped = {k: self.clipped[k] + int(counts.get(k, 0)) for k in self.clipped}


def prepare(regions: PVCRegions, psf: GaussianPSF, labels: Iterable[str],
            spread: sparse.csr_array | None = None) -> PVCSetup:
    """Shared precomputation for the methods ``labels``.

    Parameters
    ----------
    regions, psf
        Region maps and PSF.
    labels
        Method labels.
    spread
        (R, N) spread functions (:func:`.spread.spread_from_labels`); ``None`` builds them on
        the PET grid (:func:`.spread.spread_on_pet_grid`) when a method needs them.
    """
    methods = [get_method(m) for m in labels]
    wants = {m.label for m in methods}
    if wants & _NEEDS_SPREAD:
        spread = spread_on_pet_grid(regions, psf) if spread is None else spread
    else:
        spread = sparse.csr_array((0, 0), dtype=np.float32)
    gtm = (transfer_matrix(regions, spread) if any(m.needs_gtm for m in methods) else None)
    overlap = (regions.overlap_matrix() if any(m.voxelwise for m in methods)
               else np.eye(len(regions.names)))
    is_gm = np.array([t == "GM" for t in regions.tissues], dtype=float)
    gm_blurred = ((spread.T @ is_gm).astype(np.float32).reshape(regions.pet_shape)
                  if "mg" in wants else np.zeros(0, np.float32))
    wm_core = eroded_wm_mask(regions, psf) if "mg" in wants else np.zeros(0, bool)
    return PVCSetup(regions=regions, psf=psf, spread=spread, gtm=gtm,
                    overlap_inverse=np.linalg.pinv(overlap), gm_blurred=gm_blurred,
                    wm_core=wm_core)


def correct(label: str, frames: Iterable[np.ndarray], setup: PVCSetup, *,
            iterations: int | None = None, stop: float | None = None,
            nonnegative: bool = False, wm_source: WMSource = "gtm",
            on_frame: Callable[[np.ndarray], None] | None = None) -> PVCResult:
    """Run one method over a stream of frames.

    Parameters
    ----------
    label
        Method label (:data:`METHODS`).
    frames
        (X, Y, Z) PET frames (Bq/mL), consumed one at a time.
    setup
        :func:`prepare` output including this method.
    iterations, stop
        Iterative methods: maximum iterations (default: the method's) and relative-change
        threshold (default: the method's; ``vc`` 0.01, others none).
    nonnegative
        GTM solved by non-negative least squares (``gtm``, ``rbv``, ``mg``).
    wm_source
        Müller-Gärtner white-matter activity (``gtm`` or ``eroded``, see :mod:`.mg`).
    on_frame
        Called with every corrected (clipped, float32) frame of a voxelwise method, in order.

    Returns
    -------
    PVCResult
    """
    method = get_method(label)
    regions = setup.regions
    if not method.voxelwise:
        means = np.array([regions.means(f) for f in frames])
        values, clipped = solve_gtm(setup.gtm, means, nonnegative)
        return PVCResult(values=values, clipped=clipped)
    n_iter = iterations or method.default_iterations
    result = PVCResult(values=np.zeros((0, len(regions.names))))
    rows = []
    for frame in frames:
        image, fixed, k = _correct_frame(method, frame, setup, result, iterations=n_iter,
                                         stop=stop, nonnegative=nonnegative,
                                         wm_source=wm_source)
        if k is not None:
            result.iterations.append(k)
        image, clipped = clip_activity(np.asarray(image, np.float32), explode_limit(frame))
        result.add_clipped(clipped)
        if on_frame is not None:
            on_frame(image)
        means = np.nan_to_num(regions.means(image))
        regional = means if method.label == "mg" else setup.overlap_inverse @ means
        regional[~regions.active] = np.nan
        rows.append(np.where(np.isnan(fixed), regional, fixed))
    result.values = np.array(rows).reshape(-1, len(regions.names))
    return result


def _correct_frame(method: Method, frame: np.ndarray, setup: PVCSetup, result: PVCResult, *,
                   iterations: int | None, stop: float | None, nonnegative: bool,
                   wm_source: WMSource) -> tuple[np.ndarray, np.ndarray, int | None]:
    """One frame through one voxelwise method (clipping counts go into ``result``).

    Returns the unclipped image, the fixed regional values (NaN where the image decides)
    and the iterations run (``None`` for non-iterative methods).
    """
    regions, psf = setup.regions, setup.psf
    fixed = np.full(len(regions.names), np.nan)
    if method.needs_gtm:
        values, clipped = solve_gtm(setup.gtm, regions.means(frame)[None], nonnegative)
        result.add_clipped(clipped)
        if method.label == "rbv":
            return rbv(frame, regions, setup.spread, values[0]), fixed, None
        core = setup.wm_core if wm_source == "eroded" else None
        image, fixed = muller_gartner(frame, regions, setup.spread, values[0],
                                      setup.gm_blurred, core)
        return image, fixed, None
    if method.label == "iy":
        image, k = iy.iterative_yang(frame, regions, setup.spread, setup.overlap_inverse,
                                     iterations, stop)
        return image, fixed, k
    if method.label == "vc":
        image, k, negative = vc.van_cittert(frame, psf, iterations,
                                            stop=vc.STOP if stop is None else stop)
    else:
        image, k, negative = rl.richardson_lucy(frame, psf, iterations, stop)
    result.add_clipped({"negative": negative})
    return image, fixed, k
