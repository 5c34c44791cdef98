"""Kinetic modelling of one PET run: regional fits per model, voxelwise maps in T1w space."""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from ketpet_bids.core.kinetics.base import KineticModel
from ketpet_bids.core.kinetics.fitting import CurveModel
from ketpet_bids.core.kinetics.registry import MODELS, get_model
from ketpet_bids.errors import InputError
from ketpet_bids.interfaces.kinetics import FitRegionalModel, ModelMapT1w

INPUT_FIELDS = ["tacs_tsv", "ref_tacs_tsv", "pet_file", "frame_start", "frame_duration",
                "pet_to_t1w_matrix", "t1w_ref", "injected_radioactivity_bq", "body_weight_kg",
                "blood_files", "pet_metadata"]
OUTPUT_FIELDS = ["kinpar_files", "kinpar_entities", "kinpar_jsons", "fit_files",
                 "fit_entities", "fit_jsons", "mimap_files", "mimap_entities"]
SHARED_SETTINGS = [("ref_tacs_tsv", "ref_tacs_tsv"),
                   ("injected_radioactivity_bq", "injected_radioactivity_bq"),
                   ("body_weight_kg", "body_weight_kg"), ("blood_files", "blood_files"),
                   ("pet_metadata", "pet_metadata")]


def choose_model(name: str, has_blood: bool) -> KineticModel:
    """The model with its input: plasma when the run has blood data and the model takes it,
    otherwise its first non-plasma input; InputError for a plasma-only model without blood."""
    kinds = MODELS[get_model(name).name].input_kinds
    if has_blood and "plasma" in kinds:
        return get_model(name, "plasma")
    other = [k for k in kinds if k != "plasma"]
    if not other:
        raise InputError("--models", f"model '{name}' needs arterial blood data, but the run has "
                         "no _blood.tsv recording", "add the blood recording or choose a "
                         "reference-tissue model (srtm, srtm2, mrtm, mrtm2, logan, patlak)")
    return get_model(name, other[0])


def init_pet_kinetics_wf(*, models: tuple[str, ...], atlas_name: str,
                         suvr_window: tuple[float, float] = (1800.0, 3000.0),
                         ref_region: str = "wholebrain", voxelwise_t1w: bool = True,
                         has_blood: bool = False, tstar: float | None = None,
                         k2prime: float | None = None, weighting: str = "duration_decay",
                         name: str = "pet_kinetics_wf") -> pe.Workflow:
    """Fit every requested model to the regional TACs and map the voxelwise-capable ones.

    Workflow Graph
        inputnode → fit_<model> (one per model) → merge → outputnode (parameter tables of
        every model; fit tables of the fitted models, not of SUV/SUVR);
        inputnode → map_<model> (voxelwise models, when ``voxelwise_t1w``) → merge → outputnode.

    Parameters
    ----------
    models
        Registry names (``core.kinetics.registry``); unknown names raise InputError at build.
    atlas_name
        Atlas label of the TAC table (``seg-<atlas>`` entity of the outputs).
    suvr_window
        ``(start, end)`` of the averaging window of SUV/SUVR, seconds from injection.
    ref_region
        Name of the reference region (recorded in the sidecars).
    voxelwise_t1w
        Also compute parametric maps in T1w space for voxelwise-capable models.
    has_blood
        Whether the run has ``_blood.tsv`` recordings. Models taking either input (Logan,
        Patlak) use plasma input when True and the reference region when False; plasma-only
        models (ma1, 1tcm, 2tcm, 2tcmirr) raise InputError at build when False.
    tstar
        Start (s) of the fitted range of graphical/multilinear models; None: found by the
        graphical models' criterion, all frames for MRTM/MRTM2.
    k2prime
        Reference efflux rate k2′ (1/min) for Logan-reference, SRTM2 and MRTM2; None: left out
        of Logan-reference, estimated by SRTM2/MRTM2 from the regional TACs.
    weighting
        Frame weights of the fits: ``duration_decay`` or ``uniform``.
    name
        Workflow name.

    Inputs
    ------
    tacs_tsv, ref_tacs_tsv
        Regional and reference TAC tables (``frame_start frame_end`` s, then Bq/mL columns).
    pet_file
        Motion-corrected 4D PET in PET space.
    frame_start, frame_duration
        Frame timing lists (s).
    pet_to_t1w_matrix
        4×4 RAS matrix file (``.txt`` or ``.npy``), PET world → T1w world.
    t1w_ref
        Image defining the T1w grid.
    injected_radioactivity_bq, body_weight_kg
        Dose (Bq) and weight (kg), or None (needed by SUV only).
    blood_files
        List of the run's ``_blood.tsv`` paths (``[]`` without blood; must be non-empty when
        ``has_blood``).
    pet_metadata
        The ``metadata`` dict output of PreparePET (half-life and the sidecar's decay state,
        which the blood data are taken to share).

    Outputs
    -------
    kinpar_files, kinpar_jsons, kinpar_entities
        One TSV, settings JSON and naming-entity dict per model.
    fit_files, fit_jsons, fit_entities
        Long-format fit table (registry key ``model_fit``: ``region frame_start frame_end x
        observed predicted weight``), its column JSON and entities, one per fitted model
        (window models SUV/SUVR have none); empty lists when no model is fitted.
    mimap_files, mimap_entities
        T1w-space maps and their entities (``space``, ``model``, ``param``); empty lists when
        no map is computed.
    """
    specs = [choose_model(m, has_blood) for m in models]
    window = (float(suvr_window[0]), float(suvr_window[1]))
    options = {"window": window, "ref_region": ref_region, "tstar": tstar, "k2prime": k2prime,
               "weighting": weighting}
    mapped = [s for s in specs if s.voxelwise] if voxelwise_t1w else []
    workflow = pe.Workflow(name=name)
    workflow.__desc__ = _methods(specs, window, ref_region, mapped, tstar, weighting)
    inputnode = pe.Node(niu.IdentityInterface(fields=INPUT_FIELDS), name="inputnode")
    inputnode.inputs.blood_files = []
    inputnode.inputs.pet_metadata = {}
    outputnode = pe.Node(niu.IdentityInterface(fields=OUTPUT_FIELDS), name="outputnode")
    outputnode.inputs.kinpar_entities = [{"atlas": atlas_name, "model": s.name} for s in specs]
    fitted = [s for s in specs if isinstance(s, CurveModel)]
    outputnode.inputs.fit_entities = [{"atlas": atlas_name, "model": s.name} for s in fitted]
    outputnode.inputs.mimap_entities = [{"space": "T1w", "model": s.name, "param": p}
                                        for s in mapped for p in s.parameters]
    merge = {field: pe.Node(niu.Merge(len(items)), name=f"merge_{field}",
                            run_without_submitting=True)
             for field, items in (("kinpar_files", specs), ("kinpar_jsons", specs),
                                  ("fit_files", fitted), ("fit_jsons", fitted)) if items}
    workflow.connect([(node, outputnode, [("out", field)]) for field, node in merge.items()])
    if not fitted:
        outputnode.inputs.fit_files = []
        outputnode.inputs.fit_jsons = []
    for spec in specs:
        fit = pe.Node(FitRegionalModel(model=spec.name, input_kind=spec.input_kind, **options),
                      name=f"fit_{spec.name}")
        workflow.connect(inputnode, "tacs_tsv", fit, "tacs_tsv")
        workflow.connect([(inputnode, fit, SHARED_SETTINGS)])
        for field, out, group in (("kinpar_files", "kinpar_tsv", specs),
                                  ("kinpar_jsons", "kinpar_json", specs),
                                  ("fit_files", "fit_tsv", fitted),
                                  ("fit_jsons", "fit_json", fitted)):
            if spec in group:
                workflow.connect(fit, out, merge[field], f"in{group.index(spec) + 1}")
    if not mapped:
        outputnode.inputs.mimap_files = []
        return workflow
    merge_maps = pe.Node(niu.Merge(len(mapped)), name="merge_mimap", run_without_submitting=True)
    workflow.connect(merge_maps, "out", outputnode, "mimap_files")
    for index, spec in enumerate(mapped, start=1):
        mapper = pe.Node(ModelMapT1w(model=spec.name, input_kind=spec.input_kind, **options),
                         name=f"map_{spec.name}", mem_gb=2.0)
        workflow.connect([
            (inputnode, mapper, [("pet_file", "pet_file"), ("frame_start", "frame_start"),
                                 ("frame_duration", "frame_duration"),
                                 ("pet_to_t1w_matrix", "pet_to_t1w_matrix"),
                                 ("t1w_ref", "t1w_ref"), ("tacs_tsv", "tacs_tsv"),
                                 *SHARED_SETTINGS]),
            (mapper, merge_maps, [("out_files", f"in{index}")]),
        ])
    return workflow


def _methods(specs: list, window: tuple[float, float], ref_region: str, mapped: list,
             tstar: float | None, weighting: str) -> str:
    """Methods paragraph for the report."""
    names = ", ".join(f"{s.name.upper()} ({s.input_kind} input)" if s.input_kind != "none"
                      else s.name.upper() for s in specs)
    text = (f"Kinetic models ({names}) were fitted to the regional time-activity curves; "
            f"static measures averaged the frames over {window[0]:g}-{window[1]:g} s "
            f"(frames weighted by their time inside the window), with '{ref_region}' as the "
            "reference region. Fits weighted the frames "
            + ("by duration and decay; " if weighting == "duration_decay" else "uniformly; "))
    text += (f"graphical and multilinear fits started at t* = {tstar:g} s. " if tstar is not None
             else "t* of graphical plots was the earliest frame after which a line fits every "
             "point within 10%. ")
    if any(s.input_kind == "plasma" for s in specs):
        text += ("The arterial input was the metabolite-corrected plasma (Hill-type parent "
                 "fraction fit) interpolated on a 1 s grid. ")
    if mapped:
        text += ("Voxelwise maps were computed in PET space (vectorised over voxels) and "
                 "resampled into T1w space with trilinear interpolation. ")
    return text
