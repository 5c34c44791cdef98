"""Whole participant level: wall time, peak memory, per-stage time, scaling (issue 8).

Run (``full`` took 11 min on the shared 2-core machine at load 7; the scaling parts about
13 min more)::

    nice -n 19 python benchmarks/participant_bench.py WORK_DIR [--seed 1] [--nprocs 2]
        [--omp-nthreads N] [--part all|full|truth|frames|voxels|report] [--frames 15 30 60]
        [--voxels 1 2 4] [--hmc]

Results accumulate in ``WORK_DIR/results.json``; ``--part truth`` repeats the truth check on
the outputs of the last ``full`` run, ``--part report`` prints the Markdown tables.

Data: ``ketpet_bids.sim.simulate_study(n_patients=0, n_controls=1, size="standard")`` (2 mm PET
128×128×90, 31 frames; 1 mm T1w), written once to ``WORK_DIR/bids`` and reused. Templates: the
simulator's phantom TemplateFlow tree at 1 mm (``sim.templateflow.write_templateflow``), written
once to ``WORK_DIR/templateflow`` and given to the runs as ``TEMPLATEFLOW_HOME``.

``full``: the participant level exactly as a user runs it by default — no anatomical
derivatives (N4 + brain mask, SyN to MNI152NLin2009cAsym, Atropos with template priors, the
default atlas warped into T1w space), ``--preset k2``, HMC on, ``--voxelwise both`` (T1w and MNI
maps), ``--nprocs`` processes — as a subprocess. Wall time is the subprocess's; peak RSS is the
largest sum of RSS over the process and all its descendants, polled every 0.2 s with psutil
(shared pages are counted once per process, so this over-states the footprint; the sum of PSS,
which shares them out, is recorded too); CPU time is ``getrusage(RUSAGE_CHILDREN)`` of the
waited subprocess tree. Per-node times come from nipype's ``result_<node>.pklz`` files in the
work dir (``runtime.duration``; a MapNode's is the list of its sub-nodes' durations), and are
grouped into stages by node name (:data:`STAGES`): "node s" is the sum over instances (busy
time, not wall time: parallel instances overlap), start/end are relative to the first node's
start. After the run, the anatomy outputs are checked against the simulator's truth: Dice of
every default-atlas region (``sim.templateflow.default_atlas_truth`` on the T1w grid) and of
the hard GM/WM/CSF classes and the brain mask (``sim.phantom.build_labels``).

Scaling variants are built from the standard PET image, so the anatomy, tracer and noise stay the
same, and run with the simulator's anatomical derivatives (the anatomy does not depend on the
PET) and ``--hmc-off`` (HMC's cost per frame is measured in ``hmc_coreg.md``; without it the
runs show the cost of the voxel- and frame-proportional stages only; ``--part frames --hmc``
reruns the frame variants with HMC on):

- frames N: N equal frames of 3600/N s covering 0–60 min (FrameTimesStart/FrameDuration
  rewritten); new frame k holds the standard frame whose interval contains the new frame's
  mid time (frames subset or duplicated, the image content unchanged);
- voxels ×f (on the 30-frame variant, so ×1 is the ``frames 30`` run): the PET resampled
  (linear, ``scipy.ndimage.zoom`` with ``grid_mode=True``) to a voxel size halved along z (×2)
  or along x and z (×4); the affine scales the voxel axes and shifts the origin so that the new
  grid covers exactly the same field of view.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import nibabel as nib
import numpy as np

STANDARD_MINUTES = 60.0
SUBJECT = "01"
GOALS = {"wall_s": 600.0, "peak_rss_gb": 3.0}
"""Issue 8 goals: whole participant ≤ 10 min on 2 cores, peak RSS ≤ 3 GB."""
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("sinks", ("ds_",)),
    ("anatomy: N4 + brain mask", ("t1w_preproc",)),
    ("anatomy: SyN", ("template_registration",)),
    ("anatomy: Atropos", ("tissue_segmentation",)),
    ("anatomy: atlas", ("default_atlas", "dseg_", "morph", "brain_atlas")),
    ("PET prepare", ("prepare_pet", "pet_sidecar")),
    ("HMC", ("prepare_hmc", "estimate_motion", "refine_reference", "apply_hmc")),
    ("coreg", ("coreg_pet",)),
    ("TACs", ("ref_mask", "tacs")),
    ("kinetics", ("fit_",)),
    ("maps", ("map_", "mimap_to_template_")),
)
"""Stage → node-name prefixes (first match wins); the rest (identity, merge) is "other"."""


def simulate(bids: Path, seed: int) -> float:
    """Simulate the standard one-participant dataset into ``bids`` (reused if present).

    Returns
    -------
    float
        Simulation wall time (s; 0 when reused).
    """
    if (bids / "dataset_description.json").exists():
        return 0.0
    from ketpet_bids.sim import simulate_study

    start = time.perf_counter()
    simulate_study(bids, n_patients=0, n_controls=1, size="standard", seed=seed)
    return time.perf_counter() - start


def templates(root: Path) -> float:
    """Write the phantom TemplateFlow tree (1 mm) into ``root`` (reused if present).

    Returns
    -------
    float
        Wall time (s; 0 when reused).
    """
    if (root / "tpl-MNI152NLin2009cAsym" / "template_description.json").exists():
        return 0.0
    from ketpet_bids.sim.templateflow import write_templateflow

    start = time.perf_counter()
    write_templateflow(root, voxel_mm=1.0)
    return time.perf_counter() - start


def pet_files(bids: Path) -> list[Path]:
    """Raw 4D PET images of the dataset (``sub-*/**/pet/*_pet.nii.gz``)."""
    return sorted(bids.glob("sub-*/**/pet/*_pet.nii.gz"))


def _tree_memory(root) -> tuple[int, int]:
    """Summed RSS and PSS (bytes) of a psutil process and its descendants (0 if gone)."""
    import psutil

    rss = pss = 0
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0, 0
    for proc in procs:
        try:
            info = proc.memory_full_info()
        except psutil.Error:
            continue
        rss += info.rss
        pss += getattr(info, "pss", 0)
    return rss, pss


def run_participant(bids: Path, out: Path, work: Path, options: list[str],
                    env: dict[str, str]) -> dict:
    """Run the participant level as a subprocess; measure wall time, peak memory and CPU time.

    Parameters
    ----------
    bids, out, work
        BIDS dataset, output and work directories (``out`` and ``work`` are emptied first).
    options
        Participant-level options after ``-w WORK --skip-bids-validation``.
    env
        Extra environment variables (``TEMPLATEFLOW_HOME``).

    Returns
    -------
    dict
        ``wall_s``, ``peak_rss_gb`` and ``peak_pss_gb`` (sums over the process tree),
        ``cpu_s`` (user + system of the waited tree), ``load`` and ``load_max`` (mean and
        largest 1-min load average sampled every 5 s during the run), ``load_before`` (1, 5
        and 15-min load averages at the start), ``rc``, ``cmd``, ``log``.
    """
    import psutil

    for path in (out, work):
        shutil.rmtree(path, ignore_errors=True)
    cmd = [sys.executable, "-m", "ketpet_bids.cli.run", str(bids), str(out), "participant",
           "-w", str(work), "--skip-bids-validation", *options]
    log_path = work.parent / f"{out.name}.log"
    load_before = list(os.getloadavg())
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, **env})
        root = psutil.Process(proc.pid)
        peak_rss = peak_pss = 0
        loads, last_load = [], 0.0
        while proc.poll() is None:
            rss, pss = _tree_memory(root)
            peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
            now = time.perf_counter()
            if now - last_load >= 5.0:
                loads.append(os.getloadavg()[0])
                last_load = now
            time.sleep(0.2)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    loads = loads or [os.getloadavg()[0]]
    return {"cmd": " ".join(cmd), "env": env, "rc": proc.returncode, "wall_s": wall,
            "peak_rss_gb": peak_rss / 1e9, "peak_pss_gb": peak_pss / 1e9, "cpu_s": cpu,
            "load": float(np.mean(loads)), "load_max": float(np.max(loads)),
            "load_before": load_before, "log": str(log_path)}


def stage_times(work: Path) -> dict[str, dict]:
    """Per-node busy time and wall span from nipype result files, grouped by node name.

    Parameters
    ----------
    work
        The ``-w`` work directory of a finished run.

    Returns
    -------
    dict
        node name → ``{"seconds": summed duration, "instances": count, "start": first start,
        "end": last end}`` (times in s since the epoch); MapNode sub-nodes (under ``mapflow/``)
        are not read separately (their parent lists their runtimes).
    """
    from datetime import datetime

    from nipype.utils.filemanip import loadpkl

    stages: dict[str, dict] = defaultdict(
        lambda: {"seconds": 0.0, "instances": 0, "start": np.inf, "end": -np.inf})
    for path in work.rglob("result_*.pklz"):
        if "mapflow" in path.parts:
            continue
        runtime = getattr(loadpkl(path), "runtime", None)
        listed = runtime if isinstance(runtime, list) else [runtime]
        runtimes = [r for r in listed if r is not None]
        entry = stages[path.parent.name]
        for r in runtimes:
            entry["seconds"] += float(getattr(r, "duration", 0.0) or 0.0)
            entry["instances"] += 1
            entry["start"] = min(entry["start"], datetime.fromisoformat(r.startTime).timestamp())
            entry["end"] = max(entry["end"], datetime.fromisoformat(r.endTime).timestamp())
    return dict(sorted(stages.items(), key=lambda kv: -kv[1]["seconds"]))


def graph_span(stages: dict[str, dict]) -> float:
    """Wall time from the first node's start to the last node's end (s)."""
    return max(s["end"] for s in stages.values()) - min(s["start"] for s in stages.values())


def _linked_copy(src: Path, dst: Path) -> None:
    """Copy a dataset with hard links (raw PET files are replaced, never written through)."""
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, copy_function=os.link)


def _replace_pet(pet: Path, data: np.ndarray, affine: np.ndarray, header,
                 sidecar_update: dict) -> None:
    """Write a new PET image (float32) and update its JSON sidecar, breaking hard links."""
    new = nib.Nifti1Image(data.astype(np.float32), affine, header)
    new.set_qform(affine, code=1)
    new.set_sform(affine, code=1)
    pet.unlink()
    nib.save(new, pet)
    sidecar = pet.with_name(pet.name.replace(".nii.gz", ".json"))
    meta = json.loads(sidecar.read_text())
    meta.update(sidecar_update)
    sidecar.unlink()
    sidecar.write_text(json.dumps(meta, indent=2))


def frame_variant(src: Path, dst: Path, n_frames: int) -> None:
    """Dataset whose PET has ``n_frames`` equal frames over 0–60 min (see module docstring)."""
    _linked_copy(src, dst)
    for pet in pet_files(dst):
        img = nib.load(pet)
        sidecar = json.loads(pet.with_name(pet.name.replace(".nii.gz", ".json")).read_text())
        starts = np.asarray(sidecar["FrameTimesStart"], float)
        ends = starts + np.asarray(sidecar["FrameDuration"], float)
        duration = STANDARD_MINUTES * 60.0 / n_frames
        new_starts = np.arange(n_frames) * duration
        mids = new_starts + duration / 2
        source = np.clip(np.searchsorted(ends, mids, side="right"), 0, len(starts) - 1)
        data = np.asarray(img.dataobj, dtype=np.float32)[..., source]
        _replace_pet(pet, data, img.affine, img.header,
                     {"FrameTimesStart": new_starts.tolist(),
                      "FrameDuration": [duration] * n_frames})


def voxel_variant(src: Path, dst: Path, factor: int) -> None:
    """Dataset whose PET is resampled to ``factor``× the voxels (×2: z halved; ×4: x and z)."""
    from scipy import ndimage

    zoom = {1: (1, 1, 1), 2: (1, 1, 2), 4: (2, 1, 2)}[factor]
    _linked_copy(src, dst)
    for pet in pet_files(dst):
        img = nib.load(pet)
        data = np.asarray(img.dataobj, dtype=np.float32)
        out = np.stack([ndimage.zoom(data[..., t], zoom, order=1, grid_mode=True,
                                     mode="grid-constant", cval=0.0)
                        for t in range(data.shape[-1])], axis=-1)
        # new voxel j sits at old index (j + 0.5) / f - 0.5 along each axis
        scale = np.diag([1.0 / z for z in zoom] + [1.0])
        scale[:3, 3] = [(1.0 / z - 1.0) / 2.0 for z in zoom]
        header = img.header.copy()
        header.set_data_shape(out.shape)
        _replace_pet(pet, out, img.affine @ scale, header, {})


def stage_of(node: str) -> str:
    """Stage of a node name (:data:`STAGES`; ``"other"`` when none matches)."""
    return next((stage for stage, prefixes in STAGES if node.startswith(prefixes)), "other")


def group_stages(nodes: dict[str, dict]) -> dict[str, dict]:
    """Per-stage busy time and times of :func:`stage_times` nodes.

    Returns
    -------
    dict
        stage → ``{"seconds": summed node time, "instances": count, "start": first start,
        "end": last end}`` with start/end in s from the first node's start, in
        :data:`STAGES` order (then ``"other"``).
    """
    t0 = min(n["start"] for n in nodes.values())
    stages: dict[str, dict] = {}
    for name, node in nodes.items():
        entry = stages.setdefault(stage_of(name), {"seconds": 0.0, "instances": 0,
                                                   "start": np.inf, "end": -np.inf})
        entry["seconds"] += node["seconds"]
        entry["instances"] += node["instances"]
        entry["start"] = min(entry["start"], node["start"] - t0)
        entry["end"] = max(entry["end"], node["end"] - t0)
    order = [stage for stage, _ in STAGES] + ["other"]
    return {stage: stages[stage] for stage in order if stage in stages}


def truth_check(bids: Path, out: Path) -> dict:
    """Anatomy outputs of a run without anatomical derivatives against the simulator's truth.

    Parameters
    ----------
    bids
        The simulated dataset (its T1w grid is the phantom's centred grid).
    out
        Output directory of the run.

    Returns
    -------
    dict
        ``atlas``: default-atlas region name → ``{"dice", "truth_mm3", "stand_in"}`` (output
        ``seg-default`` vs :func:`ketpet_bids.sim.templateflow.default_atlas_truth` on the
        T1w grid; stand-ins are regions the phantom lacks, carved out of uniform white matter,
        so nothing in the T1w shows them: their Dice measures the warp inside white matter);
        ``tissues``: Dice of the hard GM/WM/CSF classes (argmax of the output probabilities)
        vs ``phantom.build_labels``, both inside the output brain mask; ``brain_mask``: Dice
        vs the phantom's brain without CSF (``parenchyma``) and with it (``with_csf``);
        ``mni_maps``: the template-space maps written, with their shape and fraction of
        finite non-zero voxels.
    """
    import pandas as pd
    from anat_syn import _dice, _tissue_dice  # the sibling benchmark script

    from ketpet_bids.bids.naming import output_path
    from ketpet_bids.core.anat import TISSUES
    from ketpet_bids.sim import phantom
    from ketpet_bids.sim.templateflow import STAND_INS, default_atlas_truth

    def image(key: str, **entities) -> np.ndarray:
        return np.asarray(nib.load(out / output_path(key, subject=SUBJECT, **entities)).dataobj)

    dseg_img = nib.load(out / output_path("dseg", subject=SUBJECT, atlas="default"))
    voxel_mm = float(dseg_img.header.get_zooms()[0])
    dseg = np.asarray(dseg_img.dataobj)
    table = pd.read_csv(out / output_path("dseg_tsv", subject=SUBJECT, atlas="default"),
                        sep="\t")
    truth, truth_table = default_atlas_truth(dseg.shape, voxel_mm)
    truth_index = dict(zip(truth_table["name"], truth_table["index"], strict=True))
    atlas = {}
    for index, name in zip(table["index"], table["name"], strict=True):
        inside = truth == truth_index.get(name, -1)  # a name missing from the truth: Dice 0
        atlas[name] = {"dice": round(_dice(dseg == index, inside), 3),
                       "truth_mm3": float(inside.sum() * voxel_mm ** 3),
                       "stand_in": name.rsplit("-", 1)[0] in STAND_INS}
    labels = phantom.build_labels(dseg.shape, voxel_mm)
    mask = image("brain_mask") > 0
    brain = phantom.atlas_labels(labels) > 0
    csf = labels == phantom.BY_NAME["csf"].index
    probs = {t: image("probseg", ref=t) for t in TISSUES}
    maps = {}
    for path in sorted(out.rglob("*space-MNI152NLin2009cAsym*.nii.gz")):
        data = np.asarray(nib.load(path).dataobj, dtype=np.float32)
        maps[path.name] = {"shape": list(data.shape),
                           "nonzero": round(float((np.isfinite(data) & (data != 0)).mean()), 3)}
    return {"atlas": atlas, "tissues": _tissue_dice(probs, np.where(mask, labels, 0), mask),
            "brain_mask": {"parenchyma": round(_dice(mask, brain & ~csf), 3),
                           "with_csf": round(_dice(mask, brain), 3)},
            "mni_maps": maps}


def _node_table(stages: dict[str, dict]) -> list[str]:
    lines = ["| node | stage | instances | node s (summed) | wall span s |",
             "|---|---|---|---|---|"]
    lines += [f"| {name} | {stage_of(name)} | {s['instances']} | {s['seconds']:.1f} | "
              f"{s['end'] - s['start']:.1f} |"
              for name, s in stages.items() if s["seconds"] >= 0.05]
    return lines


def _group_table(nodes: dict[str, dict], wall_s: float) -> list[str]:
    groups = group_stages(nodes)
    busy = sum(g["seconds"] for g in groups.values())
    lines = ["| stage | node instances | node s (summed) | % of node s | start s | end s |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {stage} | {g['instances']} | {g['seconds']:.1f} | "
              f"{100 * g['seconds'] / busy:.0f} | {g['start']:.1f} | {g['end']:.1f} |"
              for stage, g in groups.items()]
    lines.append(f"| **total** | {sum(g['instances'] for g in groups.values())} | {busy:.1f} "
                 f"| 100 | 0.0 | {graph_span(nodes):.1f} (run wall {wall_s:.1f}) |")
    return lines


def _truth_lines(check: dict) -> list[str]:
    atlas = check["atlas"]
    large = {k: v["dice"] for k, v in atlas.items()
             if v["truth_mm3"] >= 1000.0 and not v["stand_in"]}
    small = {k: v["dice"] for k, v in atlas.items()
             if v["truth_mm3"] < 1000.0 and not v["stand_in"]}
    stand_ins = {k: v["dice"] for k, v in atlas.items() if v["stand_in"]}
    worst = sorted(large.items(), key=lambda kv: kv[1])[:4]

    def listed(regions: dict[str, float]) -> str:
        return ", ".join(f"{k} {v:.3f} ({atlas[k]['truth_mm3']:.0f} mm³)"
                         for k, v in regions.items())

    mask = check["brain_mask"]
    lines = [f"- default atlas: {len(atlas)} regions; {len(large)} phantom regions ≥ 1 cm³: "
             f"Dice median {np.median(list(large.values())):.3f}, min "
             f"{min(large.values()):.3f}; lowest: "
             + ", ".join(f"{k} {v:.3f}" for k, v in worst),
             f"- phantom regions < 1 cm³: {listed(small)}",
             f"- stand-ins (invisible in the T1w, inside white matter): {listed(stand_ins)}",
             "- tissues (hard classes vs phantom, inside the output mask): " + ", ".join(
                 f"{k} {v:.3f}" for k, v in check["tissues"].items())
             + f"; brain mask vs phantom parenchyma {mask['parenchyma']:.3f} (vs brain with "
             f"CSF {mask['with_csf']:.3f})",
             "- MNI maps: " + ", ".join(f"{k} {v['shape']} (non-zero {v['nonzero']:.2f})"
                                        for k, v in check["mni_maps"].items())]
    return lines


def report(results: dict, root: Path) -> str:
    """Markdown tables of every recorded run (stages re-read from work dirs still present)."""
    runs = [k for k in results if k == "full" or k.startswith(("frames", "voxels"))]
    for name in runs:
        if (root / f"work-{name}").is_dir():
            results[name]["stages"] = stage_times(root / f"work-{name}")
            results[name]["graph_span_s"] = graph_span(results[name]["stages"])
    lines = ["| run | frames | PET voxels | anatomy | HMC | wall s | graph span s | "
             "node s / span | peak RSS GB | peak PSS GB | CPU s | mean load |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in runs:
        r = results[name]
        lines.append(f"| {name} | {r['n_frames']} | {r['n_voxels_pet']:,} | "
                     f"{'sim-anat' if '--anat-derivatives' in r['cmd'] else 'computed'} | "
                     f"{'off' if '--hmc-off' in r['cmd'] else 'on'} | {r['wall_s']:.1f} | "
                     f"{r['graph_span_s']:.1f} | "
                     f"{sum(v['seconds'] for v in r['stages'].values()) / r['graph_span_s']:.2f} | "
                     f"{r['peak_rss_gb']:.2f} | {r.get('peak_pss_gb', float('nan')):.2f} | "
                     f"{r['cpu_s']:.1f} | {r['load']:.2f} |")
    if "full" in results:
        full = results["full"]
        lines += ["", "Goals (full run): wall "
                  f"{full['wall_s']:.0f} s vs {GOALS['wall_s']:.0f} s, peak RSS "
                  f"{full['peak_rss_gb']:.2f} GB vs {GOALS['peak_rss_gb']:.0f} GB",
                  "", "Stages (full run):", "", *_group_table(full["stages"], full["wall_s"]),
                  "", "Nodes (full run):", "", *_node_table(full["stages"])]
        if "truth" in full:
            lines += ["", "Truth check (full run):", "", *_truth_lines(full["truth"])]
    variants = [n for n in runs if n != "full" and "--hmc-off" in results[n]["cmd"]]
    if variants:
        names = sorted({k for n in variants for k, v in results[n]["stages"].items()
                        if v["seconds"] >= 0.5}, key=lambda k: -results[variants[-1]]["stages"]
                       .get(k, {"seconds": 0})["seconds"])
        lines += ["", "Per-node seconds of the scaling runs (HMC off):", "",
                  "| node | " + " | ".join(variants) + " |", "|---|" + "---|" * len(variants)]
        for k in names:
            cells = [results[n]["stages"].get(k, {"seconds": 0.0})["seconds"] for n in variants]
            lines.append(f"| {k} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run the requested parts and print/append JSON results to ``WORK_DIR/results.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work_dir", type=Path)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--nprocs", type=int, default=2)
    parser.add_argument("--omp-nthreads", type=int,
                        help="passed to the participant level (default: its default)")
    parser.add_argument("--part",
                        choices=["all", "full", "truth", "frames", "voxels", "report"],
                        default="all")
    parser.add_argument("--frames", type=int, nargs="+", default=[15, 30, 60])
    parser.add_argument("--voxels", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--hmc", action="store_true",
                        help="run the frame variants with HMC on (recorded as framesN-hmc)")
    args = parser.parse_args(argv)
    root = args.work_dir.resolve()
    root.mkdir(parents=True, exist_ok=True)
    bids = root / "bids"
    results_file = root / "results.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    if args.part == "report":
        print(report(results, root))
        return
    results["machine"] = (f"{platform.node()} {os.cpu_count()} cores, "
                          f"Python {platform.python_version()}")
    results["simulate_s"] = simulate(bids, args.seed) or results.get("simulate_s", 0.0)
    results["templateflow_s"] = (templates(root / "templateflow")
                                 or results.get("templateflow_s", 0.0))
    img = nib.load(pet_files(bids)[0])
    results["standard_pet"] = {"shape": list(img.shape),
                               "zooms": [float(z) for z in img.header.get_zooms()]}
    common = ["--preset", "k2", "--nprocs", str(args.nprocs)]
    if args.omp_nthreads:
        common += ["--omp-nthreads", str(args.omp_nthreads)]
    sim_anat = ["--anat-derivatives", str(bids / "derivatives" / "sim-anat")]
    env = {"TEMPLATEFLOW_HOME": str(root / "templateflow")}

    def record(name: str, dataset: Path, options: list[str]) -> dict:
        run = run_participant(dataset, root / f"out-{name}", root / f"work-{name}",
                              [*common, *options], env)
        run["stages"] = stage_times(root / f"work-{name}")
        run["graph_span_s"] = graph_span(run["stages"]) if run["stages"] else float("nan")
        run["n_voxels_pet"] = int(np.prod(nib.load(pet_files(dataset)[0]).shape[:3]))
        run["n_frames"] = int(nib.load(pet_files(dataset)[0]).shape[3])
        results[name] = run
        results_file.write_text(json.dumps(results, indent=1))
        print(f"{name}: rc {run['rc']} wall {run['wall_s']:.1f} s, peak RSS "
              f"{run['peak_rss_gb']:.2f} GB (PSS {run['peak_pss_gb']:.2f}), CPU "
              f"{run['cpu_s']:.1f} s, load {run['load']:.2f} (max {run['load_max']:.2f})",
              flush=True)
        if run["rc"]:
            print(Path(run["log"]).read_text()[-4000:], flush=True)
        elif run["stages"]:
            print("\n".join(_group_table(run["stages"], run["wall_s"])), flush=True)
        return run

    if args.part in ("all", "full"):
        record("full", bids, ["--voxelwise", "both"])
    if args.part in ("all", "full", "truth") and not results["full"]["rc"]:
        full = results["full"]
        full["truth"] = truth_check(bids, root / "out-full")
        results_file.write_text(json.dumps(results, indent=1))
        print("\n".join(_truth_lines(full["truth"])), flush=True)
    if args.part in ("all", "frames"):
        for n in args.frames:
            if not (root / f"bids-frames{n}").exists():
                frame_variant(bids, root / f"bids-frames{n}", n)
            if args.hmc:
                record(f"frames{n}-hmc", root / f"bids-frames{n}", sim_anat)
            else:
                record(f"frames{n}", root / f"bids-frames{n}", [*sim_anat, "--hmc-off"])
    if args.part in ("all", "voxels"):
        if not (root / "bids-frames30").exists():
            frame_variant(bids, root / "bids-frames30", 30)
        for f in args.voxels:
            if f == 1 and "frames30" in results:
                continue
            voxel_variant(root / "bids-frames30", root / f"bids-voxels{f}", f)
            record(f"voxels{f}", root / f"bids-voxels{f}", [*sim_anat, "--hmc-off"])


if __name__ == "__main__":
    main()
