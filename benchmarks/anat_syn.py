"""Benchmark: T1w → template SyN and Atropos (``core.anat``) on a 1 mm T1w.

Template: the simulator's phantom seen through the synthetic template's known deformation
(``sim.templateflow``: 4 % larger, 3 mm sinusoidal displacement) on the 1 mm template grid
(193×237×193), with its brain mask, phantom labels and GM/WM/CSF priors. Subject: the
undeformed phantom at 1 mm (176×216×176, standard size) at another world pose, 2 % noise.

Each measured step runs in its own process (wall time, CPU time and peak RSS of that process,
``import ants`` included):

* ``syn``: ``register_to_template`` (default), ``quick``: the same with ``quick=True``
  (registration on 2 mm copies); Dice of the 13 phantom regions ≥ 1 cm³ (and the habenulae)
  brought from the template into the T1w with the ``to_t1w`` composite, against the truth.
* ``atropos``: ``segment_tissues`` from k-means; ``atropos-priors``: from the template priors
  warped into the T1w (``syn`` transform); Dice of the hard classes against the truth.

    ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=2 nice -n 19 python benchmarks/anat_syn.py OUT_DIR
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from ketpet_bids.core.anat import TISSUES, apply_transforms, register_to_template, segment_tissues
from ketpet_bids.sim import phantom
from ketpet_bids.sim.templateflow import Deformation, grid_world, template_grid

SHAPE = (176, 216, 176)
OFFSET_MM = (8.0, -12.0, 15.0)
STEPS = ("syn", "quick", "atropos", "atropos-priors")


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


def build(out: Path) -> None:
    """Write the template, its labels and priors, and the subject (T1w, mask, truth)."""
    out.mkdir(parents=True, exist_ok=True)
    t_shape, t_affine = template_grid(1.0)
    xyz = Deformation.from_seed(3.0, 0).template_to_phantom(grid_world(t_shape, t_affine))
    t_labels = phantom.labels_at(xyz.astype(np.float32), 1.0)
    s_labels = phantom.build_labels(SHAPE, 1.0)
    s_affine = phantom.grid_to_phantom(SHAPE, 1.0)
    s_affine[:3, 3] += OFFSET_MM
    rng = np.random.default_rng(0)
    images = {"template": (phantom.t1w_image(t_labels, rng, 0.0), t_affine),
              "template_mask": ((phantom.atlas_labels(t_labels) > 0).astype(np.uint8), t_affine),
              "template_atlas": (phantom.atlas_labels(t_labels), t_affine),
              "t1w": (phantom.t1w_image(s_labels, rng, 0.02), s_affine),
              "t1w_mask": ((phantom.atlas_labels(s_labels) > 0).astype(np.uint8), s_affine),
              "truth": (s_labels, s_affine)}
    images |= {f"prior_{t}": (p, t_affine)
               for t, p in phantom.tissue_probabilities(t_labels).items()}
    for name, (data, affine) in images.items():
        nib.save(nib.Nifti1Image(data, affine), out / f"{name}.nii.gz")


def _region_dice(moved: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    return {r.name: round(_dice(moved == r.index, truth == r.index), 3) for r in phantom.REGIONS
            if r.in_atlas and ((truth == r.index).sum() >= 1000 or "habenula" in r.name)}


def _tissue_dice(probs: dict[str, np.ndarray], truth: np.ndarray, mask: np.ndarray
                 ) -> dict[str, float]:
    tissue_of = np.full(256, "", dtype="<U5")
    for region in phantom.REGIONS:
        tissue_of[region.index] = region.tissue
    hard = np.asarray(TISSUES)[np.argmax(np.stack([probs[t] for t in TISSUES]), axis=0)]
    return {t: round(_dice((hard == t) & mask, tissue_of[truth] == t), 3) for t in TISSUES}


def run_step(out: Path, step: str) -> dict:
    """Run one step in this process; wall and CPU seconds of the step itself."""
    f = {p.name.removesuffix(".nii.gz"): p for p in out.glob("*.nii.gz")}
    truth = np.asarray(nib.load(f["truth"]).dataobj)
    start, cpu = time.perf_counter(), time.process_time()
    if step in ("syn", "quick"):
        xfm = register_to_template(f["t1w"], f["t1w_mask"], f["template"], f["template_mask"],
                                   out / f"{step}_", seed=1, quick=step == "quick")
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        moved = apply_transforms(f["template_atlas"], f["t1w"], [xfm.to_t1w], "genericLabel")
        result = {"dice": _region_dice(moved, truth),
                  "h5_mb": round(xfm.to_t1w.stat().st_size / 1e6, 1)}
    else:
        t1w = np.asarray(nib.load(f["t1w"]).dataobj, dtype=np.float32)
        mask = np.asarray(nib.load(f["t1w_mask"]).dataobj) > 0
        priors = None
        if step == "atropos-priors":
            xfm = [out / "syn_InverseComposite.h5"]
            priors = {t: apply_transforms(f[f"prior_{t}"], f["t1w"], xfm) for t in TISSUES}
        probs = segment_tissues(t1w, mask, priors)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        result = {"dice": _tissue_dice(probs, truth, mask)}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    return {"step": step, "wall_s": round(seconds, 1), "cpu_s": round(cpu, 1),
            "peak_rss_gb": round(peak, 2), **result}


def main(out: Path) -> None:
    start = time.perf_counter()
    build(out)
    print(f"build: {time.perf_counter() - start:.0f} s", flush=True)
    for step in STEPS:
        done = subprocess.run([sys.executable, __file__, str(out), step], check=True,
                              capture_output=True, text=True)
        print(done.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 3:
        print(json.dumps(run_step(Path(sys.argv[1]), sys.argv[2])))
    else:
        main(Path(sys.argv[1]))
