"""Kinetic modelling of one PET run: regional fits per model, voxelwise maps in T1w space."""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from ketpet_bids.core.kinetics.registry import get_model
from ketpet_bids.interfaces.kinetics import FitRegionalModel, WindowModelMapT1w

INPUT_FIELDS = ["tacs_tsv", "ref_tacs_tsv", "pet_file", "frame_start", "frame_duration",
                "pet_to_t1w_matrix", "t1w_ref", "injected_radioactivity_bq", "body_weight_kg"]
OUTPUT_FIELDS = ["kinpar_files", "kinpar_entities", "kinpar_jsons", "mimap_files",
                 "mimap_entities"]
SHARED_SETTINGS = [("ref_tacs_tsv", "ref_tacs_tsv"),
                   ("injected_radioactivity_bq", "injected_radioactivity_bq"),
                   ("body_weight_kg", "body_weight_kg")]


def init_pet_kinetics_wf(*, models: tuple[str, ...], atlas_name: str,
                         suvr_window: tuple[float, float] = (1800.0, 3000.0),
                         ref_region: str = "wholebrain", voxelwise_t1w: bool = True,
                         name: str = "pet_kinetics_wf") -> pe.Workflow:
    """Fit every requested model to the regional TACs and map the voxelwise-capable ones.

    Workflow Graph
        inputnode → fit_<model> (one per model) → merge → outputnode;
        inputnode → map_<model> (window models, when ``voxelwise_t1w``) → merge → outputnode.

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

    Outputs
    -------
    kinpar_files, kinpar_jsons, kinpar_entities
        One TSV, settings JSON and naming-entity dict per model.
    mimap_files, mimap_entities
        T1w-space maps and their entities (``space``, ``model``, ``param``); empty lists when
        no map is computed.
    """
    specs = [get_model(m) for m in models]
    window = (float(suvr_window[0]), float(suvr_window[1]))
    mapped = [s for s in specs if s.voxelwise] if voxelwise_t1w else []
    workflow = pe.Workflow(name=name)
    workflow.__desc__ = _methods(specs, window, ref_region, mapped)
    inputnode = pe.Node(niu.IdentityInterface(fields=INPUT_FIELDS), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=OUTPUT_FIELDS), name="outputnode")
    outputnode.inputs.kinpar_entities = [{"atlas": atlas_name, "model": s.name} for s in specs]
    outputnode.inputs.mimap_entities = [{"space": "T1w", "model": s.name, "param": p}
                                        for s in mapped for p in s.parameters]
    merge_tsv = pe.Node(niu.Merge(len(specs)), name="merge_kinpar", run_without_submitting=True)
    merge_json = pe.Node(niu.Merge(len(specs)), name="merge_kinpar_json",
                         run_without_submitting=True)
    workflow.connect([(merge_tsv, outputnode, [("out", "kinpar_files")]),
                      (merge_json, outputnode, [("out", "kinpar_jsons")])])
    for index, spec in enumerate(specs, start=1):
        fit = pe.Node(FitRegionalModel(model=spec.name, window=window, ref_region=ref_region),
                      name=f"fit_{spec.name}")
        workflow.connect([
            (inputnode, fit, [("tacs_tsv", "tacs_tsv"), *SHARED_SETTINGS]),
            (fit, merge_tsv, [("kinpar_tsv", f"in{index}")]),
            (fit, merge_json, [("kinpar_json", f"in{index}")]),
        ])
    if not mapped:
        outputnode.inputs.mimap_files = []
        return workflow
    merge_maps = pe.Node(niu.Merge(len(mapped)), name="merge_mimap", run_without_submitting=True)
    workflow.connect(merge_maps, "out", outputnode, "mimap_files")
    for index, spec in enumerate(mapped, start=1):
        mapper = pe.Node(WindowModelMapT1w(model=spec.name, window=window, ref_region=ref_region),
                         name=f"map_{spec.name}", mem_gb=1.0)
        workflow.connect([
            (inputnode, mapper, [("pet_file", "pet_file"), ("frame_start", "frame_start"),
                                 ("frame_duration", "frame_duration"),
                                 ("pet_to_t1w_matrix", "pet_to_t1w_matrix"),
                                 ("t1w_ref", "t1w_ref"), *SHARED_SETTINGS]),
            (mapper, merge_maps, [("out_files", f"in{index}")]),
        ])
    return workflow


def _methods(specs: list, window: tuple[float, float], ref_region: str, mapped: list) -> str:
    """Methods paragraph for the report."""
    names = ", ".join(s.name.upper() for s in specs)
    text = (f"Kinetic models ({names}) were fitted to the regional time-activity curves; "
            f"static measures averaged the frames over {window[0]:g}-{window[1]:g} s "
            f"(frames weighted by their time inside the window), with '{ref_region}' as the "
            "reference region for ratios. ")
    if mapped:
        text += ("Voxelwise maps were computed in PET space and resampled into T1w space "
                 "with trilinear interpolation. ")
    return text
