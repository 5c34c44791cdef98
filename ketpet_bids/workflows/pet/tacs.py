"""Regional and reference-region TACs of one PET run for one atlas."""

from __future__ import annotations

from typing import Literal

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from ketpet_bids.interfaces.tacs import ReferenceMask, RegionalTACs

METHODS = (
    "Regional time-activity curves were extracted with partial-volume-aware weights: the "
    "T1w-space regions were mapped into PET space through the PET-to-T1w transform by "
    "supersampling each PET voxel, giving for every region the fraction of each PET voxel "
    "it covers, and each region's activity was the fraction-weighted mean of the voxels in "
    "every frame. The reference region ({ref}) was defined in T1w space and extracted the "
    "same way."
)
UNMIX_METHODS = (
    "Regional time-activity curves were extracted by unmixing: the T1w-space regions were "
    "mapped into PET space through the PET-to-T1w transform by supersampling each PET voxel, "
    "giving for every region the fraction of each PET voxel it covers (plus a background "
    "class for the unlabelled remainder of the voxels the regions touch), and every frame "
    "was modelled as the fraction-weighted sum of uniform regional activities, solved by "
    "least squares (a geometric transfer matrix without point-spread function). The "
    "reference region ({ref}) was the volume-weighted mean of the regions it contains."
)


def init_pet_tacs_wf(*, atlas_name: str, ref_region: str = "wholebrain",
                     ref_erode_mm: float = 0.0,
                     method: Literal["weighted", "unmix"] = "weighted",
                     name: str = "pet_tacs_wf") -> pe.Workflow:
    """Build the TAC extraction workflow for one atlas.

    Parameters
    ----------
    atlas_name
        Atlas name (recorded in the JSON sidecar).
    ref_region
        Reference definition (``wholebrain``, ``white-matter``, ``cerebellum-gm``,
        ``cerebellum``, ``pons`` or ``+``-joined region names; see ``core.regions``).
    ref_erode_mm
        Erosion of the reference mask (mm), 0 for none.
    method
        ``"weighted"``: each region's fraction-weighted mean (biased where PET voxels mix
        neighbouring tissue); ``"unmix"``: solve for the uniform regional activities that
        explain the mixed voxels (``core.tacs.unmixed_means``), exact without noise and PSF
        when the atlas labels all tissue near the regions.
    name
        Workflow name.

    Inputs
    ------
    pet_file
        3D/4D PET in PET space (Bq/mL).
    frame_start, frame_duration
        Lists (s).
    pet_to_t1w_matrix
        RAS 4×4 PET→T1w pose (.txt or .npy).
    dseg, dseg_tsv
        T1w-space label image and its table.
    brain_mask
        T1w-space brain mask.

    Outputs
    -------
    tacs_tsv
        ``frame_start frame_end`` then one column per region (Bq/mL).
    ref_tacs_tsv
        ``frame_start frame_end`` then one column named after the reference.
    ref_mask
        Reference mask (T1w space).
    tacs_json
        Weights used, PET-space region sizes and the reference definition.
    """
    workflow = pe.Workflow(name=name)
    workflow.__desc__ = (UNMIX_METHODS if method == "unmix" else METHODS).format(ref=ref_region)
    inputnode = pe.Node(niu.IdentityInterface(fields=[
        "pet_file", "frame_start", "frame_duration", "pet_to_t1w_matrix", "dseg", "dseg_tsv",
        "brain_mask"]), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=[
        "tacs_tsv", "ref_tacs_tsv", "ref_mask", "tacs_json"]), name="outputnode")
    ref = pe.Node(ReferenceMask(ref_region=ref_region, erode_mm=ref_erode_mm),
                  name="ref_mask")
    tacs = pe.Node(RegionalTACs(atlas_name=atlas_name, method=method), name="tacs")
    workflow.connect([
        (inputnode, ref, [("dseg", "dseg"), ("dseg_tsv", "dseg_tsv"),
                          ("brain_mask", "brain_mask")]),
        (inputnode, tacs, [("pet_file", "pet_file"), ("frame_start", "frame_start"),
                           ("frame_duration", "frame_duration"),
                           ("pet_to_t1w_matrix", "pet_to_t1w_matrix"), ("dseg", "dseg"),
                           ("dseg_tsv", "dseg_tsv")]),
        (ref, tacs, [("ref_mask", "ref_mask"), ("ref_json", "ref_json")]),
        (ref, outputnode, [("ref_mask", "ref_mask")]),
        (tacs, outputnode, [("tacs_tsv", "tacs_tsv"), ("ref_tacs_tsv", "ref_tacs_tsv"),
                            ("tacs_json", "tacs_json")]),
    ])
    return workflow
