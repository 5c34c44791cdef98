"""Anatomy: preprocessed T1w, brain mask, tissue maps and atlases in T1w space.

What the anatomical derivatives provide is used as is; the rest is computed (N4 bias
correction and an intensity-based brain mask, ``core.anat``). Atlases come from the
derivatives' ``seg-<name>`` segmentations and user ``--atlas`` files; when there is none,
a single atlas ``brain`` with one region ``wholebrain`` (brain mask minus CSF when a CSF map
is known) stands in until the template atlas arrives (issue 4).
"""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from ketpet_bids.bids.anat_derivatives import AnatDerivatives
from ketpet_bids.interfaces.anat import BrainAtlas, RegionVolumes, T1wPreprocess

FALLBACK_ATLAS = "brain"

METHODS = (
    "The T1w image was corrected for intensity non-uniformity with N4 (ANTs, antspyx) and a "
    "brain mask was derived from it by thresholding, morphological clean-up and hole filling, "
    "unless these were provided as anatomical derivatives. Region volumes were computed by "
    "counting label voxels."
)

_OUTPUTS = ["t1w_preproc", "brain_mask", "atlas_names", "dseg_files", "dseg_tsvs",
            "morph_tsvs", "probsegs"]


def init_anat_wf(*, derivatives: AnatDerivatives | None,
                 atlases: dict[str, tuple[Path, Path]], omp_nthreads: int = 1,
                 name: str = "anat_wf") -> pe.Workflow:
    """Build the anatomical workflow of one subject.

    Parameters
    ----------
    derivatives
        Anatomical derivatives found for the subject (``None`` when none were given).
    atlases
        Atlas name → (T1w-space label image, label table TSV).
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
        Parallel lists, one entry per atlas.
    probsegs
        [GM, WM, CSF] probability maps, or ``[]`` when unknown.
    """
    workflow = pe.Workflow(name=name)
    workflow.__desc__ = METHODS
    inputnode = pe.Node(niu.IdentityInterface(fields=["t1w"]), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=_OUTPUTS), name="outputnode")
    workflow.add_nodes([inputnode, outputnode])  # present even when derivatives cover all
    probsegs = derivatives.probseg_list if derivatives else []
    outputnode.inputs.probsegs = [str(p) for p in probsegs]

    t1w_given = derivatives.t1w_preproc if derivatives else None
    mask_given = derivatives.brain_mask if derivatives else None
    preproc = None
    if t1w_given and mask_given:
        outputnode.inputs.t1w_preproc = str(t1w_given)
        outputnode.inputs.brain_mask = str(mask_given)
    else:
        preproc = pe.Node(T1wPreprocess(bias_correct=t1w_given is None), name="t1w_preproc",
                          n_procs=omp_nthreads)
        if mask_given:
            preproc.inputs.in_mask = str(mask_given)
        if t1w_given:
            preproc.inputs.t1w = str(t1w_given)
        else:
            workflow.connect(inputnode, "t1w", preproc, "t1w")
        workflow.connect(preproc, "t1w_preproc", outputnode, "t1w_preproc")
        workflow.connect(preproc, "brain_mask", outputnode, "brain_mask")

    morph = pe.MapNode(RegionVolumes(), iterfield=["dseg", "dseg_tsv"], name="morph")
    workflow.connect(morph, "morph_tsv", outputnode, "morph_tsvs")
    if atlases:
        outputnode.inputs.atlas_names = list(atlases)
        images = [str(image) for image, _ in atlases.values()]
        tsvs = [str(tsv) for _, tsv in atlases.values()]
        outputnode.inputs.dseg_files, outputnode.inputs.dseg_tsvs = images, tsvs
        morph.inputs.dseg, morph.inputs.dseg_tsv = images, tsvs
        return workflow

    outputnode.inputs.atlas_names = [FALLBACK_ATLAS]
    brain = pe.Node(BrainAtlas(), name="brain_atlas")
    if probsegs:
        brain.inputs.csf_probseg = str(probsegs[2])
    if preproc is None:
        brain.inputs.brain_mask = str(mask_given)
    else:
        workflow.connect(preproc, "brain_mask", brain, "brain_mask")
    workflow.connect([
        (brain, morph, [(("dseg", _listify), "dseg"), (("dseg_tsv", _listify), "dseg_tsv")]),
        (brain, outputnode, [(("dseg", _listify), "dseg_files"),
                             (("dseg_tsv", _listify), "dseg_tsvs")]),
    ])
    return workflow


def _listify(value):
    return [value]
