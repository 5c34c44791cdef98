"""Partial-volume correction of one PET run: a dispatcher and one builder per method family.

``PreparePVC`` runs once per run and PSF (region maps with background, regional spread
functions blurred at the T1w resolution, transfer matrix, reference weights); every method then runs as its own node (methods in parallel under
MultiProc), streaming the frames.
"""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from ketpet_bids.core.pvc.registry import get_method
from ketpet_bids.interfaces.pvc import ApplyPVC, PreparePVC

METHODS = (
    "Partial-volume correction used a Gaussian point-spread function of {fwhm} mm FWHM. "
    "The atlas regions were mapped to PET space as fractional maps (the fraction of each PET "
    "voxel covered by each region), completed by background regions covering everything "
    "unlabelled (shells at 0-6, 6-12 and beyond 12 mm from the labelled tissue). Each "
    "region was blurred once at the T1w resolution and averaged over every PET voxel's "
    "footprint (regional spread functions). Methods: {methods}. Corrected values were "
    "kept within 0 and 10 times the largest observed value; clipped values are reported."
)
_METHOD_FIELDS = ["method", "tacs_tsv", "ref_tacs_tsv", "pvc_pet", "pvc_json"]
_IN_FIELDS = ["setup_file", "pet_file", "frame_start", "frame_duration"]


def init_pet_pvc_wf(*, methods: tuple[str, ...], psf_fwhm_mm: tuple[float, float, float],
                    atlas_name: str, ref_region: str = "wholebrain",
                    iterations: int | None = None, name: str = "pet_pvc_wf") -> pe.Workflow:
    """Build the PVC workflow for one atlas: shared set-up, then one sub-workflow per method.

    Parameters
    ----------
    methods
        Method labels (``gtm``, ``rbv``, ``mg``, ``iy``, ``vc``, ``rl``; repeats dropped).
    psf_fwhm_mm
        PSF FWHM (mm) along the PET voxel axes (one value = isotropic).
    atlas_name
        Atlas name (node names and methods text).
    ref_region
        Reference definition (as ``core.regions``), corrected from the corrected TACs.
    iterations
        Maximum iterations for iterative methods (``None``: each method's default).
    name
        Workflow name.

    Inputs
    ------
    pet_file
        Motion-corrected 3D/4D PET in PET space (Bq/mL).
    frame_start, frame_duration
        Lists (s).
    pet_to_t1w_matrix
        RAS 4×4 PET→T1w pose (``core.tacs.read_matrix``).
    dseg, dseg_tsv, brain_mask
        T1w-space labels, their table, brain mask.

    Outputs (parallel lists, one entry per method, in ``methods`` order)
    -------
    methods
        Method labels.
    tacs_files
        ``frame_start frame_end`` then one column per atlas region (Bq/mL).
    ref_tacs_files
        ``frame_start frame_end`` then one column named after ``ref_region``.
    pvc_pet_files
        Corrected 4D/3D PET (voxelwise methods); the input PET for ``gtm``.
    jsons
        Method, PSF, iterations, regions, background, clipping report, reference.
    """
    labels = tuple(dict.fromkeys(get_method(m).label for m in methods))
    if not labels:
        raise ValueError("init_pet_pvc_wf needs at least one method")
    fwhm = tuple(float(f) for f in psf_fwhm_mm)
    workflow = pe.Workflow(name=name)
    workflow.__desc__ = METHODS.format(
        fwhm=" x ".join(f"{f:g}" for f in fwhm),
        methods="; ".join(get_method(m).description for m in labels))
    inputnode = pe.Node(niu.IdentityInterface(fields=[
        "pet_file", "frame_start", "frame_duration", "pet_to_t1w_matrix", "dseg", "dseg_tsv",
        "brain_mask"]), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=[
        "methods", "tacs_files", "ref_tacs_files", "pvc_pet_files", "jsons"]),
        name="outputnode")
    setup = pe.Node(PreparePVC(methods=list(labels), psf_fwhm_mm=list(fwhm),
                               ref_region=ref_region), name="prepare_pvc")
    merges = {field: pe.Node(niu.Merge(len(labels)), name=f"merge_{field}")
              for field in _METHOD_FIELDS}
    workflow.connect([
        (inputnode, setup, [("pet_file", "pet_file"), ("pet_to_t1w_matrix",
                                                       "pet_to_t1w_matrix"),
                            ("dseg", "dseg"), ("dseg_tsv", "dseg_tsv"),
                            ("brain_mask", "brain_mask")]),
        (merges["method"], outputnode, [("out", "methods")]),
        (merges["tacs_tsv"], outputnode, [("out", "tacs_files")]),
        (merges["ref_tacs_tsv"], outputnode, [("out", "ref_tacs_files")]),
        (merges["pvc_pet"], outputnode, [("out", "pvc_pet_files")]),
        (merges["pvc_json"], outputnode, [("out", "jsons")]),
    ])
    for position, label in enumerate(labels, start=1):
        method_wf = (init_pvc_voxelwise_wf(method=label, iterations=iterations,
                                           name=f"pvc_{label}_wf")
                     if get_method(label).voxelwise else
                     init_pvc_regional_wf(method=label, name=f"pvc_{label}_wf"))
        workflow.connect([
            (setup, method_wf, [("setup_file", "inputnode.setup_file")]),
            (inputnode, method_wf, [("pet_file", "inputnode.pet_file"),
                                    ("frame_start", "inputnode.frame_start"),
                                    ("frame_duration", "inputnode.frame_duration")]),
            *[(method_wf, merges[f], [(f"outputnode.{f}", f"in{position}")])
              for f in _METHOD_FIELDS],
        ])
    return workflow


def init_pvc_regional_wf(*, method: str = "gtm", name: str = "pvc_gtm_wf") -> pe.Workflow:
    """Regional methods (GTM): observed means of all frames, one solve; no image written.

    Inputs ``setup_file`` (``PreparePVC``), ``pet_file``, ``frame_start``,
    ``frame_duration``; outputs ``method``, ``tacs_tsv``, ``ref_tacs_tsv``, ``pvc_pet``
    (the input PET), ``pvc_json``.
    """
    return _method_wf(ApplyPVC(method=method), name=name, mem_gb=0.5)


def init_pvc_voxelwise_wf(*, method: str, iterations: int | None = None,
                          name: str = "pvc_voxelwise_wf") -> pe.Workflow:
    """Voxelwise methods (RBV, MG, IY, VC, RL): frames corrected and written one by one.

    Same inputs and outputs as :func:`init_pvc_regional_wf`; ``pvc_pet`` is the corrected
    PET. ``iterations`` caps iterative methods (``None``: the method's default).
    """
    return _method_wf(ApplyPVC(method=method, iterations=iterations), name=name, mem_gb=1.0)


def _method_wf(interface: ApplyPVC, *, name: str, mem_gb: float) -> pe.Workflow:
    """Wrap one ``ApplyPVC`` node in a workflow with the family's input/output nodes."""
    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(fields=_IN_FIELDS), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=_METHOD_FIELDS), name="outputnode")
    apply = pe.Node(interface, name="apply_pvc", mem_gb=mem_gb)
    workflow.connect([
        (inputnode, apply, [(f, f) for f in _IN_FIELDS]),
        (apply, outputnode, [(f, f) for f in _METHOD_FIELDS]),
    ])
    return workflow
