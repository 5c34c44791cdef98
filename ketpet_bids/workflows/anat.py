"""Anatomy: preprocessed T1w, brain mask, tissue maps, template transforms and atlases in T1w
space.

What the anatomical derivatives provide is used as is; the rest is computed: N4 bias
correction and a brain mask (``core.anat``), GM/WM/CSF probabilities (Atropos, with the
template's tissue priors when a template is used), and the nonlinear T1w ↔ template
registration (antspyx SyN) when template-space products are needed. Atlases come from the
derivatives' ``seg-<name>`` segmentations, user ``--atlas`` files, FreeSurfer's aparc+aseg
(``--fs-subjects-dir``), and two named atlases: ``default`` (the combined template atlas —
aseg nuclei, Schaefer cortex, MASSP habenula — brought into T1w space through the inverse
template transform) and ``brain`` (one region ``wholebrain``: brain mask minus CSF).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from ketpet_bids.bids.anat_derivatives import AnatDerivatives
from ketpet_bids.core.freesurfer import ATLAS_NAME as FS_ATLAS
from ketpet_bids.core.freesurfer import FreeSurferInputs
from ketpet_bids.core.templates import (
    ATLAS_QUERIES,
    DEFAULT_TEMPLATE,
    SCHAEFER_TABLE_QUERY,
    template_file,
    templateflow_home,
)
from ketpet_bids.interfaces.anat import (
    ApplyTransforms,
    BrainAtlas,
    FreeSurferToT1w,
    RegionVolumes,
    T1wPreprocess,
    TemplateRegistration,
    TissueSegmentation,
)
from ketpet_bids.interfaces.atlas import BuildDefaultAtlas

DEFAULT_ATLAS = "default"
FALLBACK_ATLAS = "brain"
NAMED_ATLASES = (DEFAULT_ATLAS, FALLBACK_ATLAS)
"""Atlases that ``--atlas`` takes by name instead of a file."""

METHODS = (
    "The T1w image was corrected for intensity non-uniformity with N4 (ANTs, antspyx) and a "
    "brain mask was derived from it by thresholding, morphological clean-up and hole filling, "
    "unless these were provided as anatomical derivatives. Region volumes were computed by "
    "counting label voxels."
)
TISSUE_METHODS = (
    " Grey matter, white matter and CSF probabilities were estimated with Atropos "
    "(three-class Gaussian mixture with Markov random field regularisation{priors})."
)
TEMPLATE_METHODS = (
    " The T1w was registered nonlinearly to the {template} template (ANTs symmetric "
    "normalisation, SyN, through antspyx; Avants et al. 2008)."
)
TEMPLATE_ATLAS_METHODS = (
    " The atlas(es) {names}, given in {template} space, were brought into T1w space with the "
    "template-to-T1w transform (nearest-label interpolation)."
)
DEFAULT_ATLAS_METHODS = (
    " Default regions combined, in template space, FreeSurfer's aseg segmentation of the "
    "template (subcortical nuclei, cerebellar grey matter, brainstem, white matter), the "
    "Schaefer 2018 100-parcel 7-network cortical parcellation grouped by network and "
    "hemisphere, and the MASSP habenulae; they were brought into T1w space through the inverse "
    "of the template transform (generic-label interpolation)."
)
FS_METHODS = (
    " FreeSurfer's aparc+aseg parcellation (Desikan-Killiany cortex and aseg subcortical "
    "structures) and brain mask were moved from FreeSurfer's conformed space to the T1w grid "
    "through their shared scanner coordinates (nearest-neighbour interpolation)."
)

_OUTPUTS = ["t1w_preproc", "brain_mask", "atlas_names", "dseg_files", "dseg_tsvs",
            "morph_tsvs", "probsegs"]
_TEMPLATE_OUTPUTS = ["t1w_to_template", "template_to_t1w"]


@dataclass(frozen=True)
class TemplateInputs:
    """Template files the anatomy workflow uses (resolved before the run starts).

    Attributes
    ----------
    name
        TemplateFlow identifier (``MNI152NLin2009cAsym``).
    home
        The TemplateFlow directory they were found in.
    t1w, mask
        1 mm template T1w and brain mask (registration target).
    probsegs
        1 mm GM, WM and CSF priors (Atropos).
    maps_reference
        2 mm template T1w: the grid of template-space parametric maps.
    """

    name: str
    home: Path
    t1w: Path
    mask: Path
    probsegs: tuple[Path, Path, Path]
    maps_reference: Path


def find_template_inputs(template: str = DEFAULT_TEMPLATE, home: Path | None = None, *,
                         atlases: bool = False) -> TemplateInputs:
    """The template files from the local TemplateFlow tree (``core.templates``); with
    ``atlases``, also check that the default atlas's sources are there.

    Raises
    ------
    InputError
        Naming the missing file and the pre-fetch command when it is absent offline.
    """
    return _template_inputs(template, templateflow_home(home), atlases)


@functools.lru_cache(maxsize=8)
def _template_inputs(template: str, home: Path, atlases: bool) -> TemplateInputs:
    """:func:`find_template_inputs` for a resolved directory, cached: each lookup indexes the
    TemplateFlow tree (~0.5 s), and the graph asks once per participant."""
    def get(extension: str = ".nii.gz", **query):
        return template_file(template, home=home, extension=extension, **query)

    if atlases:
        for query in ATLAS_QUERIES.values():
            get(**query)
        get(extension=".tsv", **SCHAEFER_TABLE_QUERY)
    return TemplateInputs(
        name=template, home=home, t1w=get(resolution=1, suffix="T1w", desc=None),
        mask=get(resolution=1, suffix="mask", desc="brain"),
        probsegs=tuple(get(resolution=1, suffix="probseg", label=t) for t in ("GM", "WM", "CSF")),
        maps_reference=get(resolution=2, suffix="T1w", desc=None))


def output_atlas_names(atlases: dict[str, tuple[Path, Path]],
                       freesurfer: FreeSurferInputs | None = None,
                       named: tuple[str, ...] = (),
                       template_atlases: dict[str, tuple[Path, Path]] | None = None
                       ) -> list[str]:
    """Atlas names in the order of :func:`init_anat_wf`'s parallel output lists.

    The given T1w-space atlases (minus one called ``aparcaseg`` when FreeSurfer replaces it),
    the template-space atlases, ``aparcaseg`` when FreeSurfer inputs are given, then the
    ``named`` atlases; :data:`FALLBACK_ATLAS` when there is none at all.
    """
    names = [n for n in atlases if freesurfer is None or n != FS_ATLAS]
    names += list(template_atlases or {})
    names += [FS_ATLAS] if freesurfer else []
    names += [n for n in named if n not in names]
    return names or [FALLBACK_ATLAS]


def init_anat_wf(*, derivatives: AnatDerivatives | None,
                 atlases: dict[str, tuple[Path, Path]],
                 freesurfer: FreeSurferInputs | None = None, named: tuple[str, ...] = (),
                 template_atlases: dict[str, tuple[Path, Path]] | None = None,
                 template: TemplateInputs | None = None, omp_nthreads: int = 1, seed: int = 0,
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
    named
        Named atlases (:data:`NAMED_ATLASES`) after the others; ``default`` needs ``template``.
    template_atlases
        Atlas name → (label image in ``template``'s space, label table TSV): warped into T1w
        space with the template → T1w transform (nearest-label interpolation); needs
        ``template``.
    template
        Template files: the T1w ↔ template transforms are computed (unless the derivatives
        have both) and the tissue priors used. ``None``: no template products.
    omp_nthreads
        ITK threads of N4, SyN and Atropos (and the CPUs these nodes reserve in the
        scheduler): the anatomy chain is on every regional output's critical path.
    seed
        Seed of the registration's metric sampling (deterministic results).
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
        [GM, WM, CSF] probability maps in T1w space.
    t1w_to_template, template_to_t1w
        ANTs HDF5 composite transforms (only present when ``template`` is given).
    """
    if (DEFAULT_ATLAS in named or template_atlases) and template is None:
        raise ValueError("the default and template-space atlases need the template files")
    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(fields=["t1w"]), name="inputnode")
    fields = _OUTPUTS + (_TEMPLATE_OUTPUTS if template else [])
    outputnode = pe.Node(niu.IdentityInterface(fields=fields), name="outputnode")
    workflow.add_nodes([inputnode, outputnode])  # present even when derivatives cover all
    names = output_atlas_names(atlases, freesurfer, named, template_atlases)
    outputnode.inputs.atlas_names = names
    fs_node = _freesurfer_node(workflow, freesurfer, derivatives, inputnode)
    t1w, mask = _t1w_and_mask(workflow, derivatives, fs_node, freesurfer, inputnode,
                              omp_nthreads)
    xfms = _template_transforms(workflow, template, derivatives, t1w, mask, omp_nthreads, seed)
    probsegs = _tissues(workflow, derivatives, template, xfms, t1w, mask, omp_nthreads)
    workflow.__desc__ = _methods(derivatives, freesurfer, template, xfms, named,
                                 list(template_atlases or {}))
    for field, source in (("t1w_preproc", t1w), ("brain_mask", mask), ("probsegs", probsegs)):
        _set_or_connect(workflow, source, outputnode, field)
    if xfms:
        _set_or_connect(workflow, xfms[0], outputnode, "t1w_to_template")
        _set_or_connect(workflow, xfms[1], outputnode, "template_to_t1w")

    computed = {name: _atlas_to_t1w(workflow, f"atlas_{name}", str(image), str(table),
                                    xfms[1], t1w)
                for name, (image, table) in (template_atlases or {}).items()}
    if fs_node:
        computed[FS_ATLAS] = fs_node
    if DEFAULT_ATLAS in names:
        computed[DEFAULT_ATLAS] = _default_atlas(workflow, template, xfms[1], t1w)
    if FALLBACK_ATLAS in names:
        computed[FALLBACK_ATLAS] = _brain_atlas(workflow, mask, probsegs)
    images = pe.Node(niu.Merge(len(names)), name="dseg_files")
    tsvs = pe.Node(niu.Merge(len(names)), name="dseg_tsvs")
    for index, atlas in enumerate(names, start=1):
        if atlas in computed:
            workflow.connect([(computed[atlas], images, [("dseg", f"in{index}")]),
                              (computed[atlas], tsvs, [("dseg_tsv", f"in{index}")])])
        else:
            setattr(images.inputs, f"in{index}", str(atlases[atlas][0]))
            setattr(tsvs.inputs, f"in{index}", str(atlases[atlas][1]))
    morph = pe.MapNode(RegionVolumes(), iterfield=["dseg", "dseg_tsv"], name="morph")
    workflow.connect([
        (images, morph, [("out", "dseg")]), (tsvs, morph, [("out", "dseg_tsv")]),
        (images, outputnode, [("out", "dseg_files")]),
        (tsvs, outputnode, [("out", "dseg_tsvs")]),
        (morph, outputnode, [("morph_tsv", "morph_tsvs")]),
    ])
    return workflow


Source = tuple[pe.Node, str] | str | list[str]
"""A value known at build time (a path or list of paths) or a node output ``(node, field)``."""


def _set_or_connect(workflow: pe.Workflow, source: Source, node: pe.Node, field: str,
                    convert: Callable | None = None) -> None:
    """Set ``node.<field>`` from a build-time value or connect it from a node output, passing
    the value through ``convert`` (a module-level connection function) when given."""
    if isinstance(source, tuple):
        workflow.connect(source[0], (source[1], convert) if convert else source[1], node, field)
    else:
        setattr(node.inputs, field, convert(source) if convert else source)


def as_list(item):
    """Connection function: one file as a one-element list (e.g. a transform list)."""
    return [item]


def _freesurfer_node(workflow, freesurfer, derivatives, inputnode) -> pe.Node | None:
    if not freesurfer:
        return None
    node = pe.Node(FreeSurferToT1w(aparc_aseg=str(freesurfer.aparc_aseg)),
                   name="freesurfer_to_t1w")
    if freesurfer.brainmask:
        node.inputs.brainmask = str(freesurfer.brainmask)
    t1w_given = derivatives.t1w_preproc if derivatives else None
    _set_or_connect(workflow, str(t1w_given) if t1w_given else (inputnode, "t1w"), node,
                    "reference")
    return node


def _t1w_and_mask(workflow, derivatives, fs_node, freesurfer, inputnode, omp_nthreads
                  ) -> tuple[Source, Source]:
    """The preprocessed T1w and brain mask: given, or from N4 + masking."""
    t1w_given = derivatives.t1w_preproc if derivatives else None
    mask_given = derivatives.brain_mask if derivatives else None
    if t1w_given and mask_given:
        return str(t1w_given), str(mask_given)
    preproc = pe.Node(T1wPreprocess(bias_correct=t1w_given is None, nthreads=omp_nthreads),
                      name="t1w_preproc", n_procs=omp_nthreads)
    if mask_given:
        preproc.inputs.in_mask = str(mask_given)
    elif fs_node is not None and freesurfer.brainmask is not None:
        workflow.connect(fs_node, "brain_mask", preproc, "in_mask")
    _set_or_connect(workflow, str(t1w_given) if t1w_given else (inputnode, "t1w"), preproc,
                    "t1w")
    return (preproc, "t1w_preproc"), (preproc, "brain_mask")


def _template_transforms(workflow, template, derivatives, t1w, mask, omp_nthreads, seed
                         ) -> tuple[Source, Source] | None:
    """(T1w → template, template → T1w) transforms: given by the derivatives, or SyN."""
    if template is None:
        return None
    if derivatives and derivatives.template_xfms:
        return tuple(str(x) for x in derivatives.template_xfms)
    reg = pe.Node(TemplateRegistration(template_t1w=str(template.t1w),
                                       template_mask=str(template.mask), seed=seed,
                                       nthreads=omp_nthreads),
                  name="template_registration", n_procs=omp_nthreads, mem_gb=3.0)
    _set_or_connect(workflow, t1w, reg, "t1w")
    _set_or_connect(workflow, mask, reg, "brain_mask")
    return (reg, "t1w_to_template"), (reg, "template_to_t1w")


def _tissues(workflow, derivatives, template, xfms, t1w, mask, omp_nthreads) -> Source:
    """[GM, WM, CSF] maps: given, or Atropos (with the template priors when available)."""
    given = derivatives.probseg_list if derivatives else []
    if given:
        return [str(p) for p in given]
    seg = pe.Node(TissueSegmentation(nthreads=omp_nthreads), name="tissue_segmentation",
                  n_procs=omp_nthreads)
    _set_or_connect(workflow, t1w, seg, "t1w")
    _set_or_connect(workflow, mask, seg, "brain_mask")
    if template is not None:
        seg.inputs.prior_files = [str(p) for p in template.probsegs]
        _set_or_connect(workflow, xfms[1], seg, "template_to_t1w")
    return seg, "probsegs"


def _default_atlas(workflow, template, template_to_t1w, t1w) -> pe.Node:
    """The combined template atlas, built in template space and warped into T1w space."""
    build = pe.Node(BuildDefaultAtlas(templateflow_home=str(template.home),
                                      template=template.name), name="default_atlas_template")
    return _atlas_to_t1w(workflow, "default_atlas", (build, "dseg"), (build, "dseg_tsv"),
                         template_to_t1w, t1w)


def _atlas_to_t1w(workflow, name: str, dseg: Source, dseg_tsv: Source, template_to_t1w: Source,
                  t1w: Source) -> pe.Node:
    """A template-space label image warped into T1w space (genericLabel); outputs
    ``dseg`` and ``dseg_tsv`` (the label table, unchanged)."""
    to_t1w = pe.Node(ApplyTransforms(interpolation="genericLabel"), name=f"{name}_to_t1w")
    _set_or_connect(workflow, t1w, to_t1w, "reference")
    _set_or_connect(workflow, dseg, to_t1w, "moving")
    _set_or_connect(workflow, template_to_t1w, to_t1w, "transforms", as_list)
    out = pe.Node(niu.IdentityInterface(fields=["dseg", "dseg_tsv"]), name=name)
    workflow.connect(to_t1w, "out_file", out, "dseg")
    _set_or_connect(workflow, dseg_tsv, out, "dseg_tsv")
    return out


def _brain_atlas(workflow, mask, probsegs) -> pe.Node:
    """The one-region atlas ``wholebrain`` (brain mask minus CSF)."""
    atlas = pe.Node(BrainAtlas(), name="brain_atlas")
    _set_or_connect(workflow, mask, atlas, "brain_mask")
    _set_or_connect(workflow, probsegs, atlas, "csf_probseg", _csf)
    return atlas


def _csf(probsegs: list) -> str:
    """Connection function: the CSF map of a [GM, WM, CSF] list."""
    return probsegs[2]


def _methods(derivatives, freesurfer, template, xfms, named, template_atlas_names) -> str:
    text = METHODS
    if not (derivatives and derivatives.probseg_list):
        text += TISSUE_METHODS.format(
            priors=", initialised with and weighted towards the template's tissue priors"
            if template else "")
    if template and isinstance(xfms[0], tuple):
        text += TEMPLATE_METHODS.format(template=template.name)
    if DEFAULT_ATLAS in named:
        text += DEFAULT_ATLAS_METHODS
    if template_atlas_names:
        text += TEMPLATE_ATLAS_METHODS.format(names=", ".join(template_atlas_names),
                                              template=template.name)
    return text + (FS_METHODS if freesurfer else "")
