"""Head-motion correction of a PET run (frames estimated in parallel, applied once)."""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from ketpet_bids.interfaces.motion import (
    ApplyMotion,
    EstimateMotion,
    PrepareHMC,
    RefineReference,
)

METHODS = (
    "Head motion was estimated frame by frame with a rigid registration (ANTs, Mattes mutual "
    "information) of each frame starting at or after {start:g} s to the time-weighted mean of "
    "those frames, both smoothed with a {fwhm:g} mm FWHM Gaussian and with the background "
    "removed, on a ~4 mm working grid cropped to the head{refine}; earlier frames took the "
    "transform of the first estimated frame. Each frame was "
    "then resampled once from the original data (trilinear) and the PET reference was the "
    "time-weighted mean of the corrected frames. Framewise displacement followed Power et "
    "al. (2012) with a 50 mm radius."
)


REFINE = ("; the reference was then rebuilt once as the time-weighted mean of the corrected "
          "frames and every frame re-registered to it from its first estimate")


def init_pet_hmc_wf(*, start_time: float = 120.0, fwhm_mm: float = 6.0, hmc_off: bool = False,
                    omp_nthreads: int = 1, seed: int = 0, refine_reference: bool = True,
                    name: str = "pet_hmc_wf") -> pe.Workflow:
    """Build the head-motion correction workflow.

    Parameters
    ----------
    start_time
        Frames starting at or after this time (s) are estimated and form the reference;
        earlier ones inherit the first estimated transform. If no frame starts that late the
        last frame is the reference (nothing is corrected; said in ``hmc_json``).
    fwhm_mm
        Gaussian smoothing (mm) applied to frames and reference before estimation.
    hmc_off
        Skip estimation: identity transforms, zero parameters, ``pet_preproc`` is the input.
    omp_nthreads
        ITK threads per frame registration (and the MapNode's ``n_procs``).
    seed
        Seed of the registration metric's sampling.
    refine_reference
        Rebuild the reference once from the frames corrected by the first pass and register
        every frame again (finest level only, from its first estimate).
    name
        Workflow name.

    Inputs
    ------
    pet_file
        3D or 4D PET NIfTI (Bq/mL, decay corrected, float32). A 3D image skips estimation.
    frame_start, frame_duration
        Lists (s), one entry per frame.

    Outputs
    -------
    pet_preproc
        Motion-corrected PET on the input grid (float32).
    petref
        3D time-weighted mean of the corrected frames after ``start_time`` (all frames if
        none).
    confounds_tsv
        ``trans_x trans_y trans_z`` (mm), ``rot_x rot_y rot_z`` (rad),
        ``framewise_displacement`` (mm); one row per frame (conventions in ``core.motion``).
    xforms
        ``.npy`` array ``(T, 4, 4)``: per-frame RAS ``frame_to_reference`` matrices.
    hmc_json
        Summary: FD statistics, frames above 0.5 mm, frames estimated, start time used,
        warnings, column descriptions.
    """
    workflow = pe.Workflow(name=name)
    workflow.__desc__ = (METHODS.format(start=start_time, fwhm=fwhm_mm,
                                                  refine=REFINE if refine_reference else "") if not hmc_off else
                         "Head-motion correction was not performed (--hmc-off).")
    inputnode = pe.Node(niu.IdentityInterface(
        fields=["pet_file", "frame_start", "frame_duration"]), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(
        fields=["pet_preproc", "petref", "confounds_tsv", "xforms", "hmc_json"]),
        name="outputnode")
    prepare = pe.Node(PrepareHMC(start_time=start_time, fwhm_mm=fwhm_mm, hmc_off=hmc_off),
                      name="prepare_hmc")
    estimate = pe.MapNode(EstimateMotion(seed=seed, omp_nthreads=omp_nthreads),
                          iterfield=["frame_file"], name="estimate_motion",
                          n_procs=omp_nthreads)
    apply = pe.Node(ApplyMotion(fwhm_mm=fwhm_mm), name="apply_hmc")
    workflow.connect([
        (inputnode, prepare, [("pet_file", "pet_file"), ("frame_start", "frame_start"),
                              ("frame_duration", "frame_duration")]),
        (prepare, estimate, [("frame_files", "frame_file"),
                             ("reference_file", "reference_file"),
                             ("mask_file", "mask_file")]),
        (inputnode, apply, [("pet_file", "pet_file"), ("frame_start", "frame_start"),
                            ("frame_duration", "frame_duration")]),
        (prepare, apply, [("plan_file", "plan_file")]),
        (apply, outputnode, [("pet_preproc", "pet_preproc"), ("petref", "petref"),
                             ("confounds_tsv", "confounds_tsv"), ("xforms", "xforms"),
                             ("hmc_json", "hmc_json")]),
    ])
    if not refine_reference:
        workflow.connect(estimate, "xform_file", apply, "xform_files")
        return workflow
    refine = pe.Node(RefineReference(), name="refine_reference")
    estimate2 = pe.MapNode(EstimateMotion(seed=seed, omp_nthreads=omp_nthreads),
                           iterfield=["frame_file", "initial_file"],
                           name="estimate_motion_refined", n_procs=omp_nthreads)
    workflow.connect([
        (inputnode, refine, [("frame_duration", "frame_duration")]),
        (prepare, refine, [("frame_files", "frame_files"), ("reference_file", "reference_file"),
                           ("plan_file", "plan_file")]),
        (estimate, refine, [("xform_file", "xform_files")]),
        (prepare, estimate2, [("frame_files", "frame_file"), ("mask_file", "mask_file")]),
        (refine, estimate2, [("reference_file", "reference_file")]),
        (estimate, estimate2, [("xform_file", "initial_file")]),
        (estimate2, apply, [("xform_file", "xform_files")]),
    ])
    return workflow
