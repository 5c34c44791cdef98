"""Accuracy and speed of head-motion correction and PET→T1w co-registration (issue 3).

Run (about 15 min on a loaded 2-core machine)::

    nice -n 10 python benchmarks/hmc_coreg.py WORK_DIR [--seed 1] [--poses 20] [--part all]

Data: ``ketpet_bids.sim.simulate_study(n_patients=1, n_controls=0, size="standard",
max_motion_mm=8, noise=1.0)`` (2 mm PET 128×128×90, 31 frames; 1 mm T1w). The simulator draws
the largest translation in 60–100 % of ``max_motion_mm`` and the largest rotation in 60–100 %
of 0.75°/mm, so a run rarely reaches the full 8 mm / 6°. The benchmark therefore rescales the
simulator's motion trajectory of each session so that its largest translation is exactly
8 mm and its largest rotation exactly 6°, and re-renders the frames with the simulator's own
``FrameRenderer`` (true regional TACs, 6 mm PSF, no double interpolation) and ``add_noise``
(noise = 1, seed given). Truth: ``frame_to_reference`` ``M_i = rigid_matrix(p_i, c)`` with the
rescaled parameters, ``pet_to_t1w`` ``B`` from the truth JSON.

HMC error. The HMC reference is the mean of the moved frames, so its pose differs from the
motion-free reference by a common rigid offset ``D`` (``M_i ≈ D·M̂_i``). ``D`` is removed
explicitly: it is the least-squares rigid fit (Kabsch) of ``M̂_i·p`` onto ``M_i·p`` over all
estimated frames and brain points jointly (6 parameters for 25 × 6 measured ones). The error of
frame ``i`` is the mean (and 95th percentile) over brain voxels of ``|D·M̂_i·p − M_i·p|`` with
``p = M_i⁻¹·q`` and ``q`` the T1w brain voxels (every 2nd voxel) mapped into motion-free PET
space by ``B⁻¹``. Also reported: the composite PET-frame → T1w error ``|B̂·M̂_i·p − B·M_i·p|``
with ``B̂`` from co-registering the HMC ``petref`` (this includes the co-registration error).

Co-registration error. The PET reference is the time-weighted mean (frames ≥ 120 s) of the
frames corrected with the *true* transforms (so it lies exactly in motion-free space). Each
trial moves the PET header by a random rigid ``P`` (rotation angle uniform in [0, 15°] about a
random axis through the PET field-of-view centre, translation uniform in [0, 20 mm] along a
random direction): affine ``P·A``, truth ``B·P⁻¹``. Error: mean and max over T1w brain voxels
``x`` of ``|B̂⁻¹·x − (B·P⁻¹)⁻¹·x|``; > 3 mm is a gross failure. Two tracers: the simulated
[11C]K-2 reference, and a tracer rendered from the simulator's anatomy with high white-matter
uptake (WM 1.0, GM 0.45, deep GM 0.55, cerebellum 0.4, CSF 0.05, skull 0.02, scalp 0.15; 6 mm
PSF; noise of a 300 s frame at 3450 s).

Speed: HMC runs as the nipype workflow with the Linear plugin (one process, one ITK thread);
seconds per frame are the workflow's wall time divided by the number of frames, and the
estimation nodes' own mean time is given too. Co-registration is timed per call (one thread).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "1")
os.environ.setdefault("NIPYPE_NO_ET", "1")

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ketpet_bids.core import coreg, motion  # noqa: E402
from ketpet_bids.core.timing import time_weighted_mean  # noqa: E402
from ketpet_bids.sim import acquisition as acq  # noqa: E402
from ketpet_bids.sim import phantom, simulate_study, writer  # noqa: E402

MAX_TRANS_MM = 8.0
MAX_ROT_DEG = 6.0
START_TIME = 120.0
SESSIONS = ("baseline", "post")
HIGH_WM_VALUES = {"GM": 0.45, "WM": 1.0, "CSF": 0.05}
HIGH_WM_SPECIAL = {"caudate": 0.55, "putamen": 0.55, "thalamus": 0.55, "cerebellum": 0.4,
                   "skull": 0.02, "scalp": 0.15}


# --- data ----------------------------------------------------------------------------------

class Scan:
    """Truth and files of one simulated PET session with 8 mm / 6° motion."""

    def __init__(self, bids: Path, work: Path, session: str, seed: int) -> None:
        prefix = writer.source_prefix("01", session, "K2")
        truth = json.loads((bids / writer.truth_path("pet", "01", session, "K2")).read_text())
        self.session = session
        self.b = np.array(truth["pet_to_t1w"])
        self.pet_affine = np.array(truth["pet_affine"])
        self.t1w_affine = np.array(truth["t1w_affine"])
        self.starts = np.array(truth["frame_start"])
        self.durations = np.array(truth["frame_end"]) - self.starts
        centre = np.array(truth["motion_parameters"]["rotation_centre_pet_world_mm"])
        params = np.array(truth["motion_parameters"]["values"])
        params[:, :3] *= MAX_TRANS_MM / np.linalg.norm(params[:, :3], axis=1).max()
        params[:, 3:] *= np.deg2rad(MAX_ROT_DEG) / np.abs(params[:, 3:]).max()
        self.params = params
        self.m = np.stack([acq.rigid_matrix(p, centre) for p in params])
        self.labels = np.asanyarray(nib.load(bids / writer.truth_path("phantom_dseg", "01"))
                                    .dataobj).astype(np.uint8)
        anat = bids / writer.ANAT_DERIVATIVES / "sub-01" / "anat"
        self.t1w_file = anat / "sub-01_desc-preproc_T1w.nii.gz"
        self.mask_file = anat / "sub-01_desc-brain_mask.nii.gz"
        mask = np.asanyarray(nib.load(self.mask_file).dataobj) > 0
        self.brain_t1w = _points(mask, self.t1w_affine, step=2)
        self.brain_pet = _apply(np.linalg.inv(self.b), self.brain_t1w)
        self.tacs = pd.read_csv(bids / writer.truth_path("tacs", "01", session, "K2"), sep="\t")
        self.pet_file = work / f"{prefix}_motion-8mm6deg_pet.nii.gz"
        self.shape = tuple(acq.SIZES["standard"].pet_shape)
        if not self.pet_file.exists():
            self._render(seed)

    def renderer(self) -> acq.FrameRenderer:
        return acq.FrameRenderer(self.labels, self.t1w_affine, self.b, self.pet_affine,
                                 self.shape, 6.0)

    def _render(self, seed: int) -> None:
        renderer = self.renderer()
        values = np.zeros((len(self.starts), 256), dtype=np.float32)
        for region in phantom.REGIONS:
            values[:, region.index] = self.tacs[region.name]
        rng = np.random.default_rng([seed, SESSIONS.index(self.session)])
        frames = np.stack([acq.add_noise(renderer.render(values[f], self.m[f]), rng,
                                         float(self.starts[f] + self.durations[f] / 2),
                                         float(self.durations[f]), 1.0, 2.0)
                           for f in range(len(self.starts))], axis=-1)
        nib.save(nib.Nifti1Image(frames, self.pet_affine), self.pet_file)


def _points(mask: np.ndarray, affine: np.ndarray, step: int = 1) -> np.ndarray:
    """World coordinates (N, 3) of every ``step``-th voxel (per axis) of a mask."""
    sub = np.zeros_like(mask)
    sub[::step, ::step, ::step] = True
    ijk = np.argwhere(mask & sub)
    return ijk @ affine[:3, :3].T + affine[:3, 3]


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:3, :3].T + matrix[:3, 3]


def kabsch(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Rigid 4×4 ``D`` minimising ``Σ|D·source − target|²`` (points (N, 3))."""
    sc, tc = source.mean(axis=0), target.mean(axis=0)
    u, _, vt = np.linalg.svd((source - sc).T @ (target - tc))
    flip = np.diag([1.0, 1.0, np.sign(np.linalg.det(vt.T @ u.T))])
    rot = vt.T @ flip @ u.T
    out = np.eye(4)
    out[:3, :3] = rot
    out[:3, 3] = tc - rot @ sc
    return out


# --- head-motion correction ----------------------------------------------------------------

def run_hmc(scan: Scan, work: Path, **builder_args) -> dict:
    """Run the HMC workflow (Linear plugin); return its outputs and timings."""
    from nipype.interfaces import utility as niu
    from nipype.pipeline import engine as pe

    from ketpet_bids.workflows.pet.hmc import init_pet_hmc_wf

    wf = init_pet_hmc_wf(start_time=START_TIME, omp_nthreads=1, seed=1, **builder_args)
    wf.inputs.inputnode.pet_file = str(scan.pet_file)
    wf.inputs.inputnode.frame_start = scan.starts.tolist()
    wf.inputs.inputnode.frame_duration = scan.durations.tolist()
    fields = ["xforms", "petref"]
    tag = "refined" if builder_args.get("refine_reference", True) else "single"
    parent = pe.Workflow(name=f"hmc_{scan.session}_{tag}", base_dir=str(work / "nipype"))
    merge = pe.Node(niu.Merge(len(fields)), name="collect")
    parent.connect([(wf, merge, [(f"outputnode.{f}", f"in{k + 1}")
                                 for k, f in enumerate(fields)])])
    parent.config["execution"].update({"remove_unnecessary_outputs": False})
    tic, cpu = time.perf_counter(), time.process_time()
    graph = parent.run(plugin="Linear")
    wall, cpu = time.perf_counter() - tic, time.process_time() - cpu
    nodes = {n.name: n for n in graph.nodes()}
    out = dict(zip(fields, nodes["collect"].result.outputs.out, strict=True))
    durations: dict[str, list[float]] = {}
    for node in graph.nodes():
        if node.name == "collect":
            continue
        runtime = node.result.runtime
        items = runtime if isinstance(runtime, list) else [runtime]
        durations.setdefault(node.name, []).extend(float(r.duration) for r in items)
    return {"xforms": np.load(out["xforms"]), "petref": out["petref"], "wall_s": wall, "cpu_s": cpu,
            "node_s": durations}


def hmc_errors(scan: Scan, estimated: np.ndarray, frames: np.ndarray) -> pd.DataFrame:
    """Per-frame displacement errors (mm) after removing the common offset ``D``."""
    q = scan.brain_pet
    frame_pts = [_apply(np.linalg.inv(scan.m[i]), q) for i in frames]
    src = np.concatenate([_apply(estimated[i], p) for i, p in zip(frames, frame_pts,
                                                                   strict=True)])
    offset = kabsch(src, np.tile(q, (len(frames), 1)))
    rows, pooled = [], []
    for i, p in zip(frames, frame_pts, strict=True):
        err = np.linalg.norm(_apply(offset @ estimated[i], p) - q, axis=1)
        pooled.append(err)
        rows.append({"frame": int(i), "true_disp_mm": float(np.linalg.norm(p - q, axis=1).mean()),
                     "mean_mm": float(err.mean()), "p95_mm": float(np.percentile(err, 95)),
                     "max_mm": float(err.max())})
    table = pd.DataFrame(rows)
    table.attrs["pooled_p95"] = float(np.percentile(np.concatenate(pooled), 95))
    table.attrs["offset_mm"] = float(np.linalg.norm(_apply(offset, q) - q, axis=1).mean())
    return table


def composite_errors(scan: Scan, estimated: np.ndarray, b_hat: np.ndarray,
                     frames: np.ndarray) -> np.ndarray:
    """Mean |B̂·M̂_i·p − B·M_i·p| (mm) over brain points, per frame."""
    out = []
    for i in frames:
        p = _apply(np.linalg.inv(scan.m[i]), scan.brain_pet)
        out.append(np.linalg.norm(_apply(b_hat @ estimated[i], p) - scan.brain_t1w,
                                  axis=1).mean())
    return np.array(out)


# --- co-registration -----------------------------------------------------------------------

def true_petref(scan: Scan) -> np.ndarray:
    """Time-weighted mean (frames ≥ 120 s) of the frames corrected with the true transforms."""
    data = nib.load(scan.pet_file).get_fdata(dtype=np.float32)
    chosen = np.flatnonzero(scan.starts >= START_TIME)
    corrected = motion.correct_frames(data[..., chosen], scan.pet_affine, scan.m[chosen])
    return time_weighted_mean(corrected, scan.durations[chosen])


def high_wm_petref(scan: Scan, seed: int) -> np.ndarray:
    """Motion-free tracer image with high white-matter uptake (module docstring)."""
    values = np.zeros(256, dtype=np.float32)
    for region in phantom.REGIONS:
        values[region.index] = HIGH_WM_SPECIAL.get(region.name,
                                                   HIGH_WM_VALUES.get(region.tissue, 0.0))
    image = 1.0e4 * scan.renderer().render(values, np.eye(4))
    return acq.add_noise(image, np.random.default_rng(seed), 3450.0, 300.0, 1.0, 2.0)


def random_pose(rng: np.random.Generator, centre: np.ndarray) -> np.ndarray:
    """Rigid ``P``: rotation U[0, 15°] about a random axis through ``centre``, translation
    U[0, 20 mm] in a random direction."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = np.deg2rad(rng.uniform(0.0, 15.0))
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rot = np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k
    direction = rng.normal(size=3)
    shift = rng.uniform(0.0, 20.0) * direction / np.linalg.norm(direction)
    pose = np.eye(4)
    pose[:3, :3] = rot
    pose[:3, 3] = centre + shift - rot @ centre
    return pose


def coreg_trials(scan: Scan, petref: np.ndarray, n_poses: int, seed: int, label: str
                 ) -> pd.DataFrame:
    """Register ``petref`` from ``n_poses`` random header poses; errors and times."""
    t1w = nib.load(scan.t1w_file).get_fdata(dtype=np.float32)
    mask = np.asanyarray(nib.load(scan.mask_file).dataobj) > 0
    rng = np.random.default_rng(seed)
    centre = motion.image_centre(scan.shape, scan.pet_affine)
    rows = []
    for k in range(n_poses):
        pose = random_pose(rng, centre)
        truth = scan.b @ np.linalg.inv(pose)
        tic = time.perf_counter()
        result = coreg.register_pet_to_t1w(petref, pose @ scan.pet_affine, t1w, scan.t1w_affine,
                                           mask, seed=k)
        seconds = time.perf_counter() - tic
        err = np.linalg.norm(_apply(np.linalg.inv(result.pet_to_t1w), scan.brain_t1w)
                             - _apply(np.linalg.inv(truth), scan.brain_t1w), axis=1)
        rows.append({"tracer": label, "trial": k,
                     "start_rot_deg": float(np.rad2deg(np.arccos(np.clip(
                         (np.trace(pose[:3, :3]) - 1) / 2, -1, 1)))),
                     "start_mm": float(np.linalg.norm(_apply(truth, scan.brain_pet) -
                                                      scan.brain_t1w, axis=1).mean()),
                     "mean_mm": float(err.mean()), "max_mm": float(err.max()),
                     "seconds": seconds, "warned": bool(result.warnings),
                     "init": result.initialisation})
        print(rows[-1], flush=True)
    return pd.DataFrame(rows)


# --- main ----------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--poses", type=int, default=20)
    parser.add_argument("--part", choices=["hmc", "coreg", "all"], default="all")
    parser.add_argument("--sessions", nargs="+", default=list(SESSIONS))
    args = parser.parse_args(argv)
    work = args.work.resolve()
    bids = work / "bids"
    if not bids.exists():
        simulate_study(bids, n_patients=1, n_controls=0, size="standard", seed=args.seed,
                       max_motion_mm=8.0, noise=1.0)
    print(f"# {time.strftime('%Y-%m-%d')} {platform.node()} {platform.processor()} "
          f"Python {platform.python_version()}; {' '.join(sys.argv)}")
    results: dict[str, pd.DataFrame] = {}
    for session in args.sessions:
        scan = Scan(bids, work, session, args.seed)
        if args.part in ("hmc", "all"):
            t1w = nib.load(scan.t1w_file).get_fdata(dtype=np.float32)
            mask = np.asanyarray(nib.load(scan.mask_file).dataobj) > 0
            frames = np.flatnonzero(scan.starts >= START_TIME)
            for refine in (True, False):
                hmc = run_hmc(scan, work, refine_reference=refine)
                table = hmc_errors(scan, hmc["xforms"], frames)
                petref = nib.load(hmc["petref"])
                b_hat = coreg.register_pet_to_t1w(petref.get_fdata(dtype=np.float32),
                                                  petref.affine, t1w, scan.t1w_affine,
                                                  mask).pet_to_t1w
                table["composite_mm"] = composite_errors(scan, hmc["xforms"], b_hat, frames)
                table.insert(0, "refine_reference", refine)
                table.insert(0, "session", session)
                n = len(scan.starts)
                print(table.to_string(float_format="%.3f"))
                print(f"[{session} refine={refine}] offset D {table.attrs['offset_mm']:.3f} mm; "
                      f"mean {table.mean_mm.mean():.3f}, pooled p95 {table.attrs['pooled_p95']:.3f}"
                      f", worst frame {table.mean_mm.max():.3f} mm; wall {hmc['wall_s']:.1f} s, "
                      f"cpu {hmc['cpu_s']:.1f} s for {n} frames = {hmc['wall_s'] / n:.2f} / "
                      f"{hmc['cpu_s'] / n:.2f} s per frame; "
                      + "; ".join(f"{k}: n={len(v)} mean {np.mean(v):.2f} s"
                                  for k, v in hmc["node_s"].items()), flush=True)
                results[f"hmc_{session}_{'refined' if refine else 'single'}"] = table
        if args.part in ("coreg", "all"):
            for label, image in (("K2", true_petref(scan)),
                                 ("high-WM", high_wm_petref(scan, args.seed))):
                trials = coreg_trials(scan, image, args.poses,
                                      args.seed * 100 + SESSIONS.index(session), label)
                trials.insert(0, "session", session)
                results[f"coreg_{session}_{label}"] = trials
                print(trials.drop(columns="init").describe().to_string(float_format="%.3f"),
                      flush=True)
    for name, table in results.items():
        table.to_csv(work / f"{name}.tsv", sep="\t", index=False, float_format="%.4f")


if __name__ == "__main__":
    main()
