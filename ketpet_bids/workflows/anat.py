"""Anatomy: preprocessed T1w, brain mask, tissue maps and atlases in T1w space.

What the anatomical derivatives provide is used as is; the rest is computed (N4 bias
correction and an intensity-based brain mask, ``core.anat``). Atlases come from the
derivatives' ``seg-<name>`` segmentations and user ``--atlas`` files; when there is none,
a single atlas ``brain`` with one region ``wholebrain`` (brain mask minus CSF when a CSF map
is known) stands in until the template atlas arrives (issue 4). FreeSurfer outputs
(``--fs-subjects-dir``) add the atlas ``aparcaseg`` and provide the brain mask.
"""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from ketpet_bids.bids.anat_derivatives import AnatDerivatives
from ketpet_bids.core.freesurfer import ATLAS_NAME as FS_ATLAS
from ketpet_bids.core.freesurfer import FreeSurferInputs
from ketpet_bids.interfaces.anat import (
    BrainAtlas,
    FreeSurferToT1w,
    RegionVolumes,
    T1wPreprocess,
)

FALLBACK_ATLAS = "brain"

METHODS = (
    "The T1w image was corrected for intensity non-uniformity with N4 (ANTs, antspyx) and a "
    "brain mask was derived from it by thresholding, morphological clean-up and hole filling, "
    "unless these were provided as anatomical derivatives. Region volumes were computed by "
    "counting label voxels."
)
FS_METHODS = (
    " FreeSurfer's aparc+aseg parcellation (Desikan-Killiany cortex and aseg subcortical "
    "structures) and brain mask were moved from FreeSurfer's conformed space to the T1w grid "
    "through their shared scanner coordinates (nearest-neighbour interpolation)."
)

_OUTPUTS = ["t1w_preproc", "brain_mask", "atlas_names", "dseg_files", "dseg_tsvs",
            "morph_tsvs", "probsegs"]


def output_atlas_names(atlases: dict[str, tuple[Path, Path]],
                       freesurfer: FreeSurferInputs | None = None) -> list[str]:
    """Atlas names in the order of :func:`init_anat_wf`'s parallel output lists.

    The given atlases (minus one called ``aparcaseg`` when FreeSurfer replaces it), then
    ``aparcaseg`` when FreeSurfer inputs are given; :data:`FALLBACK_ATLAS` when none.
    """
    names = [n for n in atlases if freesurfer is None or n != FS_ATLAS]
    names += [FS_ATLAS] if freesurfer else []
    return names or [FALLBACK_ATLAS]


def init_anat_wf(*, derivatives: AnatDerivatives | None,
                 atlases: dict[str, tuple[Path, Path]],
                 freesurfer: FreeSurferInputs | None = None, omp_nthreads: int = 1,
                 name: str = "anat_wf") -> pe.Workflow:
    """Build the anatomical workflow of one subject.

    Parameters
    ----------
    derivatives
        Anatomical derivatives found for the subject (``None`` when none were given).
    atlases
        Atlas name → (T1w-space label image, label table TSV).
    freesurfer
        FreeSurfer outputs of the subject (``core.freesurfer.find_freesurfer``): its
        ``aparc+aseg`` becomes the atlas ``aparcaseg`` (after the given atlases) and its
        ``brainmask.mgz`` the brain mask unless the derivatives have one.
    omp_nthreads
        CPUs the N4 node reserves in the scheduler (ITK itself follows
        ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS``).
    name
        Workflow name.

    Inputs
    ------
    t1w
        Raw T1w NIfTI (unused when the derivatives have the preprocessed T1w and mask).

    Outputs
    -------
    t1w_preproc, brain_mask
        T1w-space NIfTI files.
    atlas_names, dseg_files, dseg_tsvs, morph_tsvs
        Parallel lists, one entry per atlas, in the order of :func:`output_atlas_names`.
    probsegs
        [GM, WM, CSF] probability maps, or ``[]`` when unknown.
    """
    workflow = pe.Workflow(name=name)
    workflow.__desc__ = METHODS + (FS_METHODS if freesurfer else "")
    inputnode = pe.Node(niu.IdentityInterface(fields=["t1w"]), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=_OUTPUTS), name="outputnode")
    workflow.add_nodes([inputnode, outputnode])  # present even when derivatives cover all
    probsegs = derivatives.probseg_list if derivatives else []
    outputnode.inputs.probsegs = [str(p) for p in probsegs]
    outputnode.inputs.atlas_names = output_atlas_names(atlases, freesurfer)

    t1w_given = derivatives.t1w_preproc if derivatives else None
    mask_given = derivatives.brain_mask if derivatives else None
    fs_node = None
    if freesurfer:
        fs_node = pe.Node(FreeSurferToT1w(aparc_aseg=str(freesurfer.aparc_aseg)),
                          name="freesurfer_to_t1w")
        if freesurfer.brainmask:
            fs_node.inputs.brainmask = str(freesurfer.brainmask)
        if t1w_given:
            fs_node.inputs.reference = str(t1w_given)
        else:
            workflow.connect(inputnode, "t1w", fs_node, "reference")
    fs_mask = fs_node is not None and freesurfer.brainmask is not None and not mask_given
    preproc = None
    if t1w_given and mask_given:
        outputnode.inputs.t1w_preproc = str(t1w_given)
        outputnode.inputs.brain_mask = str(mask_given)
    else:
        preproc = pe.Node(T1wPreprocess(bias_correct=t1w_given is None), name="t1w_preproc",
                          n_procs=omp_nthreads)
        if mask_given:
            preproc.inputs.in_mask = str(mask_given)
        elif fs_mask:
            workflow.connect(fs_node, "brain_mask", preproc, "in_mask")
        if t1w_given:
            preproc.inputs.t1w = str(t1w_given)
        else:
            workflow.connect(inputnode, "t1w", preproc, "t1w")
        workflow.connect(preproc, "t1w_preproc", outputnode, "t1w_preproc")
        workflow.connect(preproc, "brain_mask", outputnode, "brain_mask")

    morph = pe.MapNode(RegionVolumes(), iterfield=["dseg", "dseg_tsv"], name="morph")
    workflow.connect(morph, "morph_tsv", outputnode, "morph_tsvs")
    given = {n: files for n, files in atlases.items() if fs_node is None or n != FS_ATLAS}
    if fs_node is None and not given:
        atlas = pe.Node(BrainAtlas(), name="brain_atlas")
        if probsegs:
            atlas.inputs.csf_probseg = str(probsegs[2])
        if preproc is None:
            atlas.inputs.brain_mask = str(mask_given)
        else:
            workflow.connect(preproc, "brain_mask", atlas, "brain_mask")
    else:
        atlas = fs_node
    images = pe.Node(niu.Merge(2), name="dseg_files")
    tsvs = pe.Node(niu.Merge(2), name="dseg_tsvs")
    images.inputs.in1 = [str(image) for image, _ in given.values()]
    tsvs.inputs.in1 = [str(tsv) for _, tsv in given.values()]
    if atlas is not None:
        workflow.connect([(atlas, images, [("dseg", "in2")]),
                          (atlas, tsvs, [("dseg_tsv", "in2")])])
    workflow.connect([
        (images, morph, [("out", "dseg")]), (tsvs, morph, [("out", "dseg_tsv")]),
        (images, outputnode, [("out", "dseg_files")]),
        (tsvs, outputnode, [("out", "dseg_tsvs")]),
    ])
    return workflow
