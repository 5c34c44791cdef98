"""The top-level builder: the only place that reads :class:`~ketpet_bids.settings.Settings`.

Graph: one sub-workflow per participant (anatomy once, shared by all their PET runs, so that
regions are identical across sessions), and inside it one sub-workflow per PET run:
prepare (units, decay) → head-motion correction → co-registration → regional TACs per atlas
(uncorrected and per PVC method) → kinetic models on each set of TACs → sinks.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from ketpet_bids.bids.anat_derivatives import (
    AnatDerivatives,
    find_anat_derivatives,
    load_user_atlas,
)
from ketpet_bids.bids.layout import PetRun
from ketpet_bids.bids.participants import body_weight_kg
from ketpet_bids.core.freesurfer import FreeSurferInputs, find_freesurfer
from ketpet_bids.core.pvc.registry import get_method
from ketpet_bids.errors import InputError
from ketpet_bids.interfaces.anat import ApplyTransforms
from ketpet_bids.interfaces.longitudinal import UnbiasedReference
from ketpet_bids.interfaces.pet import PreparePET
from ketpet_bids.settings import Settings
from ketpet_bids.workflows.anat import (
    DEFAULT_ATLAS,
    NAMED_ATLASES,
    TemplateInputs,
    as_list,
    find_template_inputs,
    init_anat_wf,
    output_atlas_names,
)
from ketpet_bids.workflows.outputs import derivatives_sink, pet_sidecar_node
from ketpet_bids.workflows.pet.coreg import init_pet_coreg_wf
from ketpet_bids.workflows.pet.hmc import init_pet_hmc_wf
from ketpet_bids.workflows.pet.kinetics import init_pet_kinetics_wf
from ketpet_bids.workflows.pet.pvc import init_pet_pvc_wf
from ketpet_bids.workflows.pet.tacs import init_pet_tacs_wf


def init_ketpet_wf(settings: Settings, runs: list[PetRun]) -> pe.Workflow:
    """Whole participant-level graph for the discovered PET runs.

    Parameters
    ----------
    settings
        Run settings.
    runs
        PET runs found in the BIDS dataset (already validated).
    """
    workflow = pe.Workflow(name="ketpet_wf", base_dir=str(settings.work_dir))
    for subject in sorted({run.subject for run in runs}):
        subject_runs = [run for run in runs if run.subject == subject]
        workflow.add_nodes([init_single_subject_wf(settings, subject, subject_runs)])
    return workflow


@dataclass(frozen=True)
class SubjectAnatomy:
    """What the user gave for a participant's anatomy, found before the graph is built."""

    derivatives: AnatDerivatives | None
    freesurfer: FreeSurferInputs | None
    atlases: dict[str, tuple[Path, Path]]
    named: tuple[str, ...] = ()
    template_atlases: dict[str, tuple[Path, Path]] = dataclasses.field(default_factory=dict)

    @property
    def atlas_names(self) -> list[str]:
        """Atlas names in the order of the anatomy workflow's output lists."""
        return output_atlas_names(self.atlases, self.freesurfer, self.named,
                                  self.template_atlases)


def find_subject_anatomy(settings: Settings, subject: str) -> SubjectAnatomy:
    """Anatomical derivatives, FreeSurfer outputs and atlases (``--atlas``) of a participant.

    ``--atlas`` entries that are :data:`~ketpet_bids.workflows.anat.NAMED_ATLASES` are named
    atlases; the others are files, in T1w or template space (``--atlas-space`` or their
    ``space-`` entity). Without any atlas from any source, the ``default`` template atlas is
    used.
    """
    derivatives = (find_anat_derivatives(settings.anat_derivatives, subject)
                   if settings.anat_derivatives else None)
    freesurfer = (find_freesurfer(settings.fs_subjects_dir, subject)
                  if settings.fs_subjects_dir else None)
    atlases = dict(derivatives.segs) if derivatives else {}
    named = tuple(spec for spec in settings.atlas if spec in NAMED_ATLASES)
    template_atlases: dict[str, tuple[Path, Path]] = {}
    given: set[str] = set()
    for spec in settings.atlas:
        if spec not in NAMED_ATLASES:
            name, image, table, space = load_user_atlas(Path(spec), settings.atlas_space)
            if name in given:
                raise InputError(spec, f"a second --atlas file is named '{name}'",
                                 "rename one of the files (the name is its seg- entity or stem)")
            given.add(name)
            atlases.pop(name, None)  # a file given by --atlas replaces a derivative's
            (atlases if space == "T1w" else template_atlases)[name] = (image, table)
    if not (atlases or template_atlases or freesurfer or named):
        named = (DEFAULT_ATLAS,)
    return SubjectAnatomy(derivatives, freesurfer, atlases, named, template_atlases)


def anatomy_threads(settings: Settings) -> int:
    """Threads of the anatomy nodes (N4, SyN, Atropos): every regional output waits for them,
    so they take all of ``--nprocs`` (at most 8), or ``--omp-nthreads`` if larger.

    Measured (benchmarks/results/participant.md): with one thread, the PET side of a
    participant was finished at 252 s and waited for SyN until 464 s on a 2-core machine.
    """
    return max(settings.omp_nthreads, min(settings.nprocs, 8))


def needs_template(settings: Settings, anatomy: SubjectAnatomy) -> bool:
    """Whether template files are needed: the default atlas, template-space atlases or maps."""
    return (DEFAULT_ATLAS in anatomy.named or bool(anatomy.template_atlases)
            or settings.voxelwise in ("MNI", "both"))


def init_single_subject_wf(settings: Settings, subject: str, runs: list[PetRun]) -> pe.Workflow:
    """Anatomy once for the participant, then one PET sub-workflow per run."""
    workflow = pe.Workflow(name=f"sub_{subject}_wf")
    anatomy = find_subject_anatomy(settings, subject)
    atlas_names = anatomy.atlas_names
    template = (find_template_inputs(atlases=DEFAULT_ATLAS in anatomy.named)
                if needs_template(settings, anatomy) else None)
    anat_wf = init_anat_wf(derivatives=anatomy.derivatives, atlases=anatomy.atlases,
                           freesurfer=anatomy.freesurfer, named=anatomy.named,
                           template_atlases=anatomy.template_atlases,
                           template=template, omp_nthreads=anatomy_threads(settings),
                           seed=settings.seed)
    _connect_anatomical_reference(workflow, anat_wf, runs, settings)
    out = {"output_dir": settings.output_dir, "subject": subject}
    ds_t1w = derivatives_sink("t1w_preproc", **out)
    ds_mask = derivatives_sink("brain_mask", **out)
    per_atlas = [{"atlas": a} for a in atlas_names]
    ds_dseg = derivatives_sink("dseg", entities=per_atlas, **out)
    ds_dseg_tsv = derivatives_sink("dseg_tsv", entities=per_atlas, **out)
    ds_morph = derivatives_sink("morph", entities=per_atlas, **out)
    ds_probseg = derivatives_sink("probseg", entities=[{"ref": t} for t in ("GM", "WM", "CSF")],
                                  **out)
    workflow.connect([
        (anat_wf, ds_t1w, [("outputnode.t1w_preproc", "in_files")]),
        (anat_wf, ds_mask, [("outputnode.brain_mask", "in_files")]),
        (anat_wf, ds_dseg, [("outputnode.dseg_files", "in_files")]),
        (anat_wf, ds_dseg_tsv, [("outputnode.dseg_tsvs", "in_files")]),
        (anat_wf, ds_morph, [("outputnode.morph_tsvs", "in_files")]),
        (anat_wf, ds_probseg, [("outputnode.probsegs", "in_files")]),
    ])
    if template is not None:
        for key, field in (("t1w_to_mni_xfm", "t1w_to_template"),
                           ("mni_to_t1w_xfm", "template_to_t1w")):
            sink = derivatives_sink(key, **out)
            workflow.connect(anat_wf, f"outputnode.{field}", sink, "in_files")
    for run in runs:
        pet_wf = init_pet_wf(settings, run, atlas_names, template)
        workflow.connect([
            (anat_wf, pet_wf, [("outputnode.t1w_preproc", "inputnode.t1w"),
                               ("outputnode.brain_mask", "inputnode.brain_mask"),
                               ("outputnode.dseg_files", "inputnode.dseg_files"),
                               ("outputnode.dseg_tsvs", "inputnode.dseg_tsvs")]),
        ])
        if template is not None:
            workflow.connect(anat_wf, "outputnode.t1w_to_template",
                             pet_wf, "inputnode.t1w_to_template")
    return workflow


def anatomical_reference(runs: list[PetRun], choice: str = "first") -> Path:
    """The T1w used for all of a participant's runs: the first run's in sorted order
    (``first``, and ``unbiased`` when there is only one T1w), or the T1w of ``ses-<label>``.

    Raises
    ------
    InputError
        When the chosen session has no run of this participant.
    """
    ordered = sorted(runs, key=lambda r: (r.session or "", str(r.pet)))
    if choice in ("first", "unbiased"):  # unbiased with one T1w: that T1w
        return ordered[0].t1w
    session = choice.removeprefix("ses-")
    chosen = [run.t1w for run in ordered if run.session == session]
    if not chosen:
        sessions = sorted({run.session or "(none)" for run in runs})
        raise InputError("--anat-reference", f"sub-{runs[0].subject} has no session "
                         f"'{session}' (sessions: {', '.join(sessions)})",
                         "choose one of its sessions, 'first' or 'unbiased'")
    return chosen[0]


def _connect_anatomical_reference(workflow: pe.Workflow, anat_wf: pe.Workflow,
                                  runs: list[PetRun], settings: Settings) -> None:
    """Feed the anatomy workflow its T1w: one session's, or the unbiased mid-space average."""
    ordered = sorted(runs, key=lambda r: (r.session or "", str(r.pet)))
    t1ws = list(dict.fromkeys(run.t1w for run in ordered))
    if settings.anat_reference != "unbiased" or len(t1ws) == 1:
        anat_wf.inputs.inputnode.t1w = str(anatomical_reference(runs, settings.anat_reference))
        return
    unbiased = pe.Node(UnbiasedReference(t1w_files=[str(p) for p in t1ws], seed=settings.seed,
                                         omp_nthreads=settings.omp_nthreads),
                       name="unbiased_reference", n_procs=settings.omp_nthreads)
    workflow.connect(unbiased, "t1w", anat_wf, "inputnode.t1w")


def _pick(items: list, index: int):
    """Connection function: one entry of a list output (runs inside nipype)."""
    return items[index]


def init_pet_wf(settings: Settings, run: PetRun, atlas_names: list[str],
                template: TemplateInputs | None = None) -> pe.Workflow:
    """One PET run: prepare → HMC → co-registration → TACs, PVC and models per atlas → sinks.

    ``template`` (needed for ``--voxelwise MNI|both``) gives the grid of template-space maps;
    the T1w → template transform arrives on ``inputnode.t1w_to_template``.
    """
    label = run.source_prefix.replace("-", "").replace("_", "")
    workflow = pe.Workflow(name=f"pet_{label}_wf")
    inputnode = pe.Node(niu.IdentityInterface(
        fields=["t1w", "brain_mask", "dseg_files", "dseg_tsvs", "t1w_to_template",
                "template_reference"]), name="inputnode")
    if template is not None:
        inputnode.inputs.template_reference = str(template.maps_reference)
    prepare = pe.Node(PreparePET(in_file=str(run.pet), sidecar=str(run.sidecar)),
                      name="prepare_pet")
    hmc_wf = init_pet_hmc_wf(start_time=settings.hmc_start_time, fwhm_mm=settings.hmc_fwhm,
                             hmc_off=settings.hmc_off, omp_nthreads=settings.omp_nthreads,
                             seed=settings.seed)
    coreg_wf = init_pet_coreg_wf(mode=settings.coreg, omp_nthreads=settings.omp_nthreads,
                                 seed=settings.seed)
    out = {"output_dir": settings.output_dir, "subject": run.subject,
           "session": run.session, "src": run.source_prefix}
    sidecar = pet_sidecar_node(run.pet)
    ds_confounds = derivatives_sink("confounds", **out)
    ds_preproc = derivatives_sink("preproc_pet", **out)
    ds_petref = derivatives_sink("petref", **out)
    ds_xfm = derivatives_sink("pet_to_t1w_xfm", **out)
    ds_petref_t1w = derivatives_sink("petref", entities={"space": "T1w"},
                                     name="ds_petref_t1w", **out)
    workflow.connect([
        (prepare, hmc_wf, [("out_file", "inputnode.pet_file"),
                           ("frame_start", "inputnode.frame_start"),
                           ("frame_duration", "inputnode.frame_duration")]),
        (prepare, sidecar, [("frame_start", "frame_start"),
                            ("frame_duration", "frame_duration")]),
        (hmc_wf, coreg_wf, [("outputnode.petref", "inputnode.petref")]),
        (inputnode, coreg_wf, [("t1w", "inputnode.t1w"), ("brain_mask", "inputnode.t1w_mask")]),
        (hmc_wf, ds_confounds, [("outputnode.confounds_tsv", "in_files"),
                                ("outputnode.hmc_json", "sidecars")]),
        (hmc_wf, ds_preproc, [("outputnode.pet_preproc", "in_files")]),
        (sidecar, ds_preproc, [("metadata", "metadata")]),
        (hmc_wf, ds_petref, [("outputnode.petref", "in_files")]),
        (coreg_wf, ds_xfm, [("outputnode.pet_to_t1w_xfm", "in_files"),
                            ("outputnode.coreg_json", "sidecars")]),
        (coreg_wf, ds_petref_t1w, [("outputnode.petref_t1w", "in_files")]),
    ])
    weight = body_weight_kg(settings.bids_dir, run.subject, run.session)
    for index, atlas in enumerate(atlas_names):
        _connect_atlas(workflow, settings, run, atlas, index, weight,
                       nodes=(inputnode, prepare, hmc_wf, coreg_wf), out=out)
    return workflow


def _connect_atlas(workflow: pe.Workflow, settings: Settings, run: PetRun, atlas: str,
                   index: int, body_weight: float | None, *, nodes: tuple, out: dict) -> None:
    """Regional TACs for one atlas (uncorrected and per PVC method) and their models.

    Voxelwise maps, the reference mask and corrected images are written for the first atlas
    only (they do not depend on the atlas).
    """
    inputnode, prepare, hmc_wf, coreg_wf = nodes
    first = index == 0
    tacs_wf = init_pet_tacs_wf(atlas_name=atlas, ref_region=settings.ref_region,
                               method=settings.tac_method, name=f"tacs_{atlas}_wf")
    _connect_regional_inputs(workflow, tacs_wf, index, nodes)
    ref = {"ref": reference_label(settings.ref_region)}
    ds_tacs = derivatives_sink("tacs", entities={"atlas": atlas}, name=f"ds_tacs_{atlas}", **out)
    workflow.connect(tacs_wf, "outputnode.tacs_tsv", ds_tacs, "in_files")
    workflow.connect(tacs_wf, "outputnode.tacs_json", ds_tacs, "sidecars")
    if first:
        ds_ref = derivatives_sink("ref_tacs", entities=ref, **out)
        ds_ref_mask = derivatives_sink("ref_mask", entities=ref, **out)
        workflow.connect(tacs_wf, "outputnode.ref_tacs_tsv", ds_ref, "in_files")
        workflow.connect(tacs_wf, "outputnode.ref_mask", ds_ref_mask, "in_files")
    _connect_models(workflow, settings, run, atlas=atlas, pvc=None, body_weight=body_weight,
                    sources={"tacs_tsv": (tacs_wf, "outputnode.tacs_tsv"),
                             "ref_tacs_tsv": (tacs_wf, "outputnode.ref_tacs_tsv"),
                             "pet_file": (hmc_wf, "outputnode.pet_preproc")},
                    voxelwise=first, nodes=nodes, out=out)
    if not settings.pvc:
        return
    pvc_wf = init_pet_pvc_wf(methods=settings.pvc, psf_fwhm_mm=pvc_psf(settings),
                             atlas_name=atlas, ref_region=settings.ref_region,
                             name=f"pvc_{atlas}_wf")
    _connect_regional_inputs(workflow, pvc_wf, index, nodes)
    for i, method in enumerate(settings.pvc):
        ds_pvc_tacs = derivatives_sink("tacs", entities={"atlas": atlas, "pvc": method},
                                       name=f"ds_tacs_{atlas}_pvc_{method}", **out)
        workflow.connect([(pvc_wf, ds_pvc_tacs, [
            (("outputnode.tacs_files", _pick, i), "in_files"),
            (("outputnode.jsons", _pick, i), "sidecars")])])
        voxelwise_method = get_method(method).voxelwise
        if first:
            ds_pvc_ref = derivatives_sink("ref_tacs", entities={**ref, "pvc": method},
                                          name=f"ds_ref_tacs_pvc_{method}", **out)
            workflow.connect([(pvc_wf, ds_pvc_ref, [
                (("outputnode.ref_tacs_files", _pick, i), "in_files")])])
        if first and voxelwise_method:
            ds_pvc_pet = derivatives_sink("pvc_pet", entities={"pvc": method},
                                          name=f"ds_pvc_pet_{method}", **out)
            workflow.connect([(pvc_wf, ds_pvc_pet, [
                (("outputnode.pvc_pet_files", _pick, i), "in_files"),
                (("outputnode.jsons", _pick, i), "sidecars")])])
        _connect_models(workflow, settings, run, atlas=atlas, pvc=method,
                        body_weight=body_weight,
                        sources={"tacs_tsv": (pvc_wf, "outputnode.tacs_files", i),
                                 "ref_tacs_tsv": (pvc_wf, "outputnode.ref_tacs_files", i),
                                 "pet_file": (pvc_wf, "outputnode.pvc_pet_files", i)},
                        voxelwise=first and voxelwise_method, nodes=nodes, out=out)


def _connect_regional_inputs(workflow: pe.Workflow, regional_wf: pe.Workflow, index: int,
                             nodes: tuple) -> None:
    """Inputs shared by the TAC and PVC workflows: PET, frames, transform, regions."""
    inputnode, prepare, hmc_wf, coreg_wf = nodes
    workflow.connect([
        (inputnode, regional_wf, [(("dseg_files", _pick, index), "inputnode.dseg"),
                                  (("dseg_tsvs", _pick, index), "inputnode.dseg_tsv"),
                                  ("brain_mask", "inputnode.brain_mask")]),
        (hmc_wf, regional_wf, [("outputnode.pet_preproc", "inputnode.pet_file")]),
        (prepare, regional_wf, [("frame_start", "inputnode.frame_start"),
                                ("frame_duration", "inputnode.frame_duration")]),
        (coreg_wf, regional_wf, [("outputnode.pet_to_t1w_matrix",
                                  "inputnode.pet_to_t1w_matrix")]),
    ])


def _connect_models(workflow: pe.Workflow, settings: Settings, run: PetRun, *, atlas: str,
                    pvc: str | None, body_weight: float | None, sources: dict[str, tuple],
                    voxelwise: bool, nodes: tuple, out: dict) -> None:
    """Kinetic models on one set of TACs (and their PET image for voxelwise maps) → sinks.

    ``sources`` maps kinetics inputs (tacs_tsv, ref_tacs_tsv, pet_file) to ``(node, field)``
    or ``(node, list_field, index)``.
    """
    inputnode, prepare, _, coreg_wf = nodes
    suffix = f"{atlas}_pvc_{pvc}" if pvc else atlas
    kinetics_wf = init_pet_kinetics_wf(
        models=run_models(settings, run), atlas_name=atlas, suvr_window=settings.suvr_window,
        ref_region=settings.ref_region, voxelwise_t1w=voxelwise and settings.voxelwise != "none",
        has_blood=bool(run.blood), tstar=settings.tstar, name=f"kinetics_{suffix}_wf")
    kinetics_wf.inputs.inputnode.body_weight_kg = body_weight
    kinetics_wf.inputs.inputnode.blood_files = [str(path) for path in run.blood]
    for field, (node, *source) in sources.items():
        spec = source[0] if len(source) == 1 else (source[0], _pick, source[1])
        workflow.connect([(node, kinetics_wf, [(spec, f"inputnode.{field}")])])
    extra = {"pvc": pvc} if pvc else {}
    ds_kinpar = derivatives_sink("kinpar", name=f"ds_kinpar_{suffix}", **out)
    ds_kinpar.inputs.extra_entities = extra
    workflow.connect([
        (prepare, kinetics_wf, [("frame_start", "inputnode.frame_start"),
                                ("frame_duration", "inputnode.frame_duration"),
                                ("metadata", "inputnode.pet_metadata"),
                                (("metadata", _injected_bq), "inputnode.injected_radioactivity_bq")]),
        (coreg_wf, kinetics_wf, [("outputnode.pet_to_t1w_matrix",
                                  "inputnode.pet_to_t1w_matrix")]),
        (inputnode, kinetics_wf, [("t1w", "inputnode.t1w_ref")]),
        (kinetics_wf, ds_kinpar, [("outputnode.kinpar_files", "in_files"),
                                  ("outputnode.kinpar_entities", "entities"),
                                  ("outputnode.kinpar_jsons", "sidecars")]),
    ])
    ds_fit = derivatives_sink("model_fit", name=f"ds_model_fit_{suffix}", **out)
    ds_fit.inputs.extra_entities = extra
    workflow.connect([(kinetics_wf, ds_fit, [("outputnode.fit_files", "in_files"),
                                             ("outputnode.fit_entities", "entities"),
                                             ("outputnode.fit_jsons", "sidecars")])])
    if not voxelwise or settings.voxelwise == "none":
        return
    metadata = {
        "Sources": [str(run.pet)], "ReferenceRegion": settings.ref_region,
        "UptakeWindow": list(settings.suvr_window), "UptakeWindowUnits": "s",
        "PartialVolumeCorrection": pvc or "none"}
    if settings.voxelwise in ("T1w", "both"):
        ds_mimap = derivatives_sink("mimap", name=f"ds_mimap_{suffix}", **out)
        ds_mimap.inputs.extra_entities = extra
        ds_mimap.inputs.metadata = {
            **metadata,
            "Description": "Voxelwise parametric map resampled to the T1w grid (trilinear)"}
        workflow.connect([(kinetics_wf, ds_mimap, [("outputnode.mimap_files", "in_files"),
                                                   ("outputnode.mimap_entities", "entities")])])
    if settings.voxelwise in ("MNI", "both"):
        to_template = pe.MapNode(ApplyTransforms(interpolation="linear"), iterfield=["moving"],
                                 name=f"mimap_to_template_{suffix}")
        ds_mni = derivatives_sink("mimap", name=f"ds_mimap_mni_{suffix}", **out)
        ds_mni.inputs.extra_entities = extra
        ds_mni.inputs.metadata = {
            **metadata, "Description": "Voxelwise parametric map resampled from T1w space to "
            "the 2 mm MNI152NLin2009cAsym grid (SyN transform, linear interpolation)"}
        workflow.connect([
            (kinetics_wf, to_template, [("outputnode.mimap_files", "moving")]),
            (inputnode, to_template, [("template_reference", "reference"),
                                      (("t1w_to_template", as_list), "transforms")]),
            (to_template, ds_mni, [("out_file", "in_files")]),
            (kinetics_wf, ds_mni, [(("outputnode.mimap_entities", _in_template_space),
                                    "entities")]),
        ])


def _in_template_space(entities: list) -> list:
    """Connection function: map entities with ``space`` set to the template."""
    return [{**e, "space": "MNI152NLin2009cAsym"} for e in entities]


def run_models(settings: Settings, run: PetRun) -> tuple[str, ...]:
    """Models for one run: the chosen ones, plus Logan VT (plasma input) under ``--preset k2``
    when the run has arterial blood data."""
    if settings.preset == "k2" and run.blood and "logan" not in settings.models:
        return (*settings.models, "logan")
    return settings.models


def pvc_psf(settings: Settings) -> tuple[float, float, float]:
    """The PSF FWHM (mm) per axis from ``--pvc-psf`` (one value means isotropic)."""
    values = settings.pvc_psf
    return (values[0],) * 3 if len(values) == 1 else tuple(values)


def _injected_bq(metadata: dict):
    return metadata.get("injected_radioactivity_bq")


def reference_label(ref_region: str) -> str:
    """BIDS label for a reference-region definition (``caudate+putamen`` → ``caudateputamen``)."""
    return "".join(ch for ch in ref_region if ch.isalnum())
