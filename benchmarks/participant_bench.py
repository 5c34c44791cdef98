"""Whole participant level: wall time, peak RSS, per-stage time, scaling (issue 8).

Run (about 13 min on a loaded 2-core machine, +5 min for ``--part frames --frames 15 60 --hmc``)::

    nice -n 19 python benchmarks/participant_bench.py WORK_DIR [--seed 1] [--nprocs 2]
        [--part all|full|frames|voxels|report] [--frames 15 30 60] [--voxels 1 2 4] [--hmc]

Results accumulate in ``WORK_DIR/results.json``; ``--part report`` prints the Markdown tables.

Data: ``ketpet_bids.sim.simulate_study(n_patients=0, n_controls=1, size="standard")`` (2 mm PET
128×128×90, 31 frames; 1 mm T1w), written once to ``WORK_DIR/bids`` and reused.

``full``: the participant level exactly as a user runs it (``--preset k2``, HMC on, anatomy from
``derivatives/sim-anat``, ``--nprocs`` processes) as a subprocess. Wall time is the subprocess's;
peak RSS is the largest sum of RSS over the process and all its descendants, polled every 0.2 s
with psutil (shared pages are counted once per process, so this over-states the true footprint);
CPU time is ``getrusage(RUSAGE_CHILDREN)`` of the waited subprocess tree. Per-stage times come
from nipype's ``result_<node>.pklz`` files in the work dir (``runtime.duration``; a MapNode's is
the list of its sub-nodes' durations), grouped by node name: "node s" is the sum over instances
(busy time, not wall time: parallel instances overlap).

Scaling variants are built from the standard PET image, so the anatomy, tracer and noise stay the
same, and run with ``--hmc-off`` (HMC's cost per frame is measured in ``hmc_coreg.md``; without it
the runs show the cost of the voxel- and frame-proportional stages only; ``--part frames --hmc``
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


def pet_files(bids: Path) -> list[Path]:
    """Raw 4D PET images of the dataset (``sub-*/**/pet/*_pet.nii.gz``)."""
    return sorted(bids.glob("sub-*/**/pet/*_pet.nii.gz"))


def run_participant(bids: Path, out: Path, work: Path, nprocs: int,
                    extra: list[str]) -> dict:
    """Run the participant level as a subprocess; measure wall time, peak RSS and CPU time.

    Returns
    -------
    dict
        ``wall_s``, ``peak_rss_gb`` (sum over the process tree), ``cpu_s`` (user + system of
        the waited tree), ``load`` (mean 1-min load average sampled during the run), ``rc``.
    """
    import psutil

    for path in (out, work):
        shutil.rmtree(path, ignore_errors=True)
    cmd = [sys.executable, "-m", "ketpet_bids.cli.run", str(bids), str(out), "participant",
           "-w", str(work), "--anat-derivatives", str(bids / "derivatives" / "sim-anat"),
           "--preset", "k2", "--nprocs", str(nprocs), "--skip-bids-validation", *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    log = (work.parent / f"{out.name}.log").open("w")
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    root = psutil.Process(proc.pid)
    peak, loads, last_load = 0, [], 0.0
    while proc.poll() is None:
        rss = 0
        try:
            for p in [root, *root.children(recursive=True)]:
                try:
                    rss += p.memory_info().rss
                except psutil.Error:
                    pass
        except psutil.Error:
            pass
        peak = max(peak, rss)
        now = time.perf_counter()
        if now - last_load >= 5.0:
            loads.append(os.getloadavg()[0])
            last_load = now
        time.sleep(0.2)
    wall = time.perf_counter() - start
    log.close()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"cmd": " ".join(cmd), "rc": proc.returncode, "wall_s": wall,
            "peak_rss_gb": peak / 1e9, "cpu_s": cpu,
            "load": float(np.mean(loads)) if loads else os.getloadavg()[0]}


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


def _stage_table(stages: dict[str, dict]) -> list[str]:
    lines = ["| node | instances | node s (summed) | wall span s |", "|---|---|---|---|"]
    lines += [f"| {name} | {s['instances']} | {s['seconds']:.1f} | {s['end'] - s['start']:.1f} |"
              for name, s in stages.items() if s["seconds"] >= 0.05]
    return lines


def report(results: dict, root: Path) -> str:
    """Markdown tables of every recorded run (stages re-read from the work dirs)."""
    runs = [k for k in results if k == "full" or k.startswith(("frames", "voxels"))]
    for name in runs:
        results[name]["stages"] = stage_times(root / f"work-{name}")
        results[name]["graph_span_s"] = graph_span(results[name]["stages"])
    lines = ["| run | frames | PET voxels | HMC | wall s | graph span s | node s / span | "
             "peak RSS GB | CPU s | mean load |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name in runs:
        r = results[name]
        lines.append(f"| {name} | {r['n_frames']} | {r['n_voxels_pet']:,} | "
                     f"{'off' if '--hmc-off' in r['cmd'] else 'on'} | {r['wall_s']:.1f} | "
                     f"{r['graph_span_s']:.1f} | "
                     f"{sum(v['seconds'] for v in r['stages'].values()) / r['graph_span_s']:.2f} | "
                     f"{r['peak_rss_gb']:.2f} | {r['cpu_s']:.1f} | "
                     f"{r['load']:.2f} |")
    lines += ["", "Per-stage (full run):", "", *_stage_table(results["full"]["stages"])]
    variants = [n for n in runs if n != "full" and "--hmc-off" in results[n]["cmd"]]
    names = sorted({k for n in variants for k, v in results[n]["stages"].items()
                    if v["seconds"] >= 0.5}, key=lambda k: -results[variants[-1]]["stages"]
                   .get(k, {"seconds": 0})["seconds"])
    lines += ["", "Per-stage node seconds of the scaling runs (HMC off):", "",
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
    parser.add_argument("--part", choices=["all", "full", "frames", "voxels", "report"],
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
    results["machine"] = (f"{platform.node()} {os.cpu_count()} cores, "
                          f"Python {platform.python_version()}")
    results["simulate_s"] = simulate(bids, args.seed) or results.get("simulate_s", 0.0)
    img = nib.load(pet_files(bids)[0])
    results["standard_pet"] = {"shape": list(img.shape),
                               "zooms": [float(z) for z in img.header.get_zooms()]}

    def record(name: str, dataset: Path, extra: list[str]) -> None:
        run = run_participant(dataset, root / f"out-{name}", root / f"work-{name}",
                              args.nprocs, extra)
        run["stages"] = stage_times(root / f"work-{name}")
        run["graph_span_s"] = graph_span(run["stages"])
        run["n_voxels_pet"] = int(np.prod(nib.load(pet_files(dataset)[0]).shape[:3]))
        run["n_frames"] = int(nib.load(pet_files(dataset)[0]).shape[3])
        results[name] = run
        results_file.write_text(json.dumps(results, indent=1))
        print(f"{name}: rc {run['rc']} wall {run['wall_s']:.1f} s, peak RSS "
              f"{run['peak_rss_gb']:.2f} GB, CPU {run['cpu_s']:.1f} s, load {run['load']:.2f}",
              flush=True)
        print("\n".join(_stage_table(run["stages"])), flush=True)

    if args.part == "report":
        print(report(results, root))
        return
    if args.part in ("all", "full"):
        record("full", bids, [])
    if args.part in ("all", "frames"):
        for n in args.frames:
            if not (root / f"bids-frames{n}").exists():
                frame_variant(bids, root / f"bids-frames{n}", n)
            if args.hmc:
                record(f"frames{n}-hmc", root / f"bids-frames{n}", [])
            else:
                record(f"frames{n}", root / f"bids-frames{n}", ["--hmc-off"])
    if args.part in ("all", "voxels"):
        if not (root / "bids-frames30").exists():
            frame_variant(bids, root / "bids-frames30", 30)
        for f in args.voxels:
            if f == 1 and "frames30" in results:
                continue
            voxel_variant(root / "bids-frames30", root / f"bids-voxels{f}", f)
            record(f"voxels{f}", root / f"bids-voxels{f}", ["--hmc-off"])


if __name__ == "__main__":
    main()
