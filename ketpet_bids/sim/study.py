"""``simulate_study``: draw a cohort, simulate every scan and write the dataset with its truth.

Truth definitions: true regional TACs are the noise-free, unblurred, motion-free PET signal of
each phantom region, ``(1 − vB)·C_T + vB·Cwb``, averaged over each frame (Bq/mL). The whole-brain
reference TAC (``wholebrain``) is the volume-weighted mean of the TACs of all ``seg-sim`` atlas
regions except ``csf`` (volumes from the T1w-grid labels). True SUVR of a region is the mean of
its TAC over 1800–3000 s divided by the reference's mean over the same window.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from ketpet_bids.sim import acquisition as acq
from ketpet_bids.sim import phantom, writer
from ketpet_bids.sim.cohort import (
    HABENULA,
    CohortSpec,
    Subject,
    assign_madrs,
    cohort_spec,
    draw_subjects,
    rng_for,
    session_parameters,
)
from ketpet_bids.sim.kinetics import (
    InputParams,
    RegionParams,
    blood_curves,
    interval_means,
    time_grid,
    tissue_curve,
)

SUVR_WINDOW_S = (1800.0, 3000.0)
BLOOD_SAMPLE_TIMES_S = np.array([*range(5, 61, 5), 75, 90, 120, 150, 180, 240, 300, 420, 600,
                                 900, 1200, 1800, 2400, 3000, 3600], dtype=float)
REFERENCE = "wholebrain"
# Random streams: (seed, purpose, subject index, session index).
_KINETICS, _T1W, _POSE, _MOTION, _NOISE, _BLOOD = 10, 11, 12, 13, 14, 15


@dataclass(frozen=True)
class ScanTruth:
    """Noise-free truth of one PET scan.

    Attributes
    ----------
    params, factors
        Regional parameters (per minute) and their VT multipliers (see ``cohort``).
    input_params, dose_mbq, mass_ug
        Blood model, injected radioactivity (MBq) and mass (µg).
    frame_tacs
        Region name → frame-mean TAC (Bq/mL), shape (n_frames,).
    reference_tac
        Whole-brain reference frame-mean TAC (Bq/mL).
    suvr
        Region name → true SUVR.
    """

    params: dict[str, RegionParams]
    factors: dict[str, dict[str, float]]
    input_params: InputParams
    dose_mbq: float
    mass_ug: float
    frame_tacs: dict[str, np.ndarray]
    reference_tac: np.ndarray
    suvr: dict[str, float]


def simulate_scan_truth(subject: Subject, session: str, spec: CohortSpec, rng: np.random.Generator,
                        starts: np.ndarray, ends: np.ndarray, volumes: dict[str, float],
                        dt: float = 1.0) -> ScanTruth:
    """Draw the blood input and regional parameters of one scan and compute its true TACs."""
    params, factors = session_parameters(subject, session, spec, rng)
    dose = float(rng.uniform(370.0, 555.0))
    scale = 1000.0 * dose / 450.0 * 75.0 / subject.body_weight * float(np.exp(0.15 * rng.normal()))
    inp = InputParams(scale=scale, delay_s=float(rng.uniform(8.0, 20.0)),
                      parent_t50_s=600.0 * float(np.exp(0.15 * rng.normal())))
    grid = time_grid(float(ends[-1]), dt)
    blood = blood_curves(grid, inp)
    curves = {name: tissue_curve(p, blood["parent_plasma"], blood["whole_blood"], dt)
              for name, p in params.items()}
    ref_regions = [r.name for r in phantom.REGIONS if r.in_reference]
    weights = np.array([volumes[r] for r in ref_regions])
    ref_curve = np.tensordot(weights / weights.sum(), np.array([curves[r] for r in ref_regions]),
                             axes=1)
    w0, w1 = np.array([SUVR_WINDOW_S[0]]), np.array([SUVR_WINDOW_S[1]])
    ref_late = interval_means(ref_curve, dt, w0, w1)[0]
    return ScanTruth(
        params=params, factors=factors, input_params=inp, dose_mbq=dose,
        mass_ug=float(rng.uniform(2.0, 8.0)),
        frame_tacs={n: interval_means(c, dt, starts, ends) for n, c in curves.items()},
        reference_tac=interval_means(ref_curve, dt, starts, ends),
        suvr={n: float(interval_means(c, dt, w0, w1)[0] / ref_late) for n, c in curves.items()})


def simulate_study(out_dir: Path, *, n_patients: int | None = None, n_controls: int | None = None,
                   size: Literal["tiny", "standard"] = "tiny", seed: int = 0,
                   preset: str | None = None, noise: float = 1.0, psf_fwhm_mm: float = 6.0,
                   max_motion_mm: float = 4.0, tracer: str = "K2", overwrite: bool = False,
                   voxel_sampling: Literal["average", "point"] = "average") -> Path:
    """Simulate a BIDS-PET study with known truth and write it to ``out_dir``.

    Parameters
    ----------
    out_dir
        New or empty directory (or a previous simulator output with ``overwrite=True``).
    n_patients, n_controls
        Group sizes; ``None`` → the preset's (34/49 for ``k2-ketamine``) or 2/2.
    size
        ``"tiny"`` (2 mm T1w, 4 mm PET, 14 frames) or ``"standard"`` (1 mm T1w, 2 mm PET
        128×128×90, 31 frames).
    seed
        Seed of every random draw (same seed → byte-identical files).
    preset
        ``"k2-ketamine"`` plants the study's group, treatment and symptom effects; ``None``
        plants none (between-subject variability only).
    noise
        PET noise scale (standard deviation multiplier; 1 ≈ realistic, 0 = off). Also scales
        the blood-sample and T1w noise.
    psf_fwhm_mm
        Isotropic Gaussian PSF FWHM (mm; 0 = off).
    max_motion_mm
        Largest head translation (mm); rotations up to 0.75° per mm (0 = no motion).
    tracer
        ``trc`` label of the PET files.
    overwrite
        Replace ``out_dir`` if it holds a previous simulator output.
    voxel_sampling
        ``"average"``: each PET voxel is the mean of the blurred activity over its footprint
        (as reconstructed voxels are; see :mod:`ketpet_bids.sim.acquisition`); ``"point"``:
        the value at the voxel centre (the rendering of simulator versions before 2026-11-30).

    Returns
    -------
    pathlib.Path
        ``out_dir``.
    """
    out = Path(out_dir)
    spec = cohort_spec(preset)
    n_p = spec.n_patients if n_patients is None else n_patients
    n_c = spec.n_controls if n_controls is None else n_controls
    _check_arguments(out, n_p, n_c, size, noise, psf_fwhm_mm, max_motion_mm, tracer, overwrite,
                     voxel_sampling)
    geometry = acq.SIZES[size]
    starts, ends = geometry.frame_times()
    subjects = draw_subjects(spec, n_p, n_c, seed)
    labels = phantom.build_labels(geometry.t1w_shape, geometry.t1w_voxel_mm)
    volumes = phantom.region_volumes(labels, geometry.t1w_voxel_mm)
    truths = {(s.label, ses): simulate_scan_truth(s, ses, spec, rng_for(seed, _KINETICS, i, j),
                                                  starts, ends, volumes)
              for i, s in enumerate(subjects) for j, ses in enumerate(s.sessions)}
    changes = true_changes(subjects, truths, volumes)
    madrs = assign_madrs(subjects, {k: v["cortical_suvr"] for k, v in changes.items()}, spec,
                         seed)
    run = _Run(out, geometry, labels, volumes, seed, noise, psf_fwhm_mm, max_motion_mm, tracer,
               voxel_sampling)
    _write_dataset_files(out, subjects, madrs, spec, size, seed, tracer)
    for i, subject in enumerate(subjects):
        run.write_subject(i, subject, truths)
    _write_cohort_truth(out, subjects, truths, changes, madrs, spec, seed, volumes)
    return out


def _check_arguments(out: Path, n_p: int, n_c: int, size: str, noise: float, psf: float,
                     motion: float, tracer: str, overwrite: bool, voxel_sampling: str) -> None:
    if size not in acq.SIZES:
        raise ValueError(f"size must be one of {sorted(acq.SIZES)}, not {size!r}")
    if voxel_sampling not in acq.VOXEL_SAMPLING:
        raise ValueError(f"voxel_sampling must be one of {acq.VOXEL_SAMPLING}, "
                         f"not {voxel_sampling!r}")
    if n_p < 0 or n_c < 0 or n_p + n_c == 0:
        raise ValueError("need at least one subject (n_patients, n_controls >= 0)")
    if min(noise, psf, motion) < 0:
        raise ValueError("noise, psf_fwhm_mm and max_motion_mm must be >= 0")
    if not tracer.isalnum():
        raise ValueError(f"tracer label must be alphanumeric, not {tracer!r}")
    if out.exists() and any(out.iterdir()):
        description = out / "dataset_description.json"
        ours = description.exists() and writer.GENERATED_BY["Name"] in description.read_text()
        if not (overwrite and ours):
            raise FileExistsError(f"{out} is not empty" + ("" if ours else
                                  " and does not hold a simulator output"))
        shutil.rmtree(out)


def true_changes(subjects: list[Subject], truths: dict[tuple[str, str], ScanTruth],
                 volumes: dict[str, float]) -> dict[str, dict[str, float]]:
    """Relative post-vs-baseline change of the cortical and habenular composites' true values.

    A composite is the volume-weighted mean of its regions' values, as the group level's
    ``cortex`` and ``habenula`` composites are (:func:`ketpet_bids.workflows.group.add_composites`
    with ``morph.tsv`` volumes), so the symptom correlation planted on this change is the one
    the group level measures.

    Parameters
    ----------
    subjects
        All subjects; those without a post session are skipped.
    truths
        ``(label, session)`` → the scan's truth.
    volumes
        Region volumes (mm³), the composite weights.

    Returns
    -------
    dict
        Patient label → ``{"cortical_suvr", "cortical_vt", "habenula_suvr", "habenula_vt"}``
        relative changes (post / baseline − 1).
    """
    groups = {"cortical": phantom.CORTICAL, "habenula": HABENULA}
    measures = {"suvr": lambda t, r: t.suvr[r], "vt": lambda t, r: t.params[r].VT}
    out = {}
    for s in subjects:
        if "post" not in s.sessions:
            continue
        base, post = truths[(s.label, "baseline")], truths[(s.label, "post")]
        out[s.label] = {
            f"{key}_{measure}": _composite(value, post, regions, volumes)
            / _composite(value, base, regions, volumes) - 1.0
            for key, regions in groups.items() for measure, value in measures.items()}
    return out


def _composite(value: Callable[[ScanTruth, str], float], truth: ScanTruth,
               regions: tuple[str, ...], volumes: dict[str, float]) -> float:
    """Volume-weighted mean of ``value(truth, region)`` over ``regions``."""
    weights = np.array([volumes[r] for r in regions])
    return float(weights @ np.array([value(truth, r) for r in regions]) / weights.sum())


class _Run:
    """Writes the per-subject files of one simulation (images, sidecars, truth)."""

    def __init__(self, out: Path, geometry: acq.Geometry, labels: np.ndarray,
                 volumes: dict[str, float], seed: int, noise: float, psf: float, motion: float,
                 tracer: str, voxel_sampling: Literal["average", "point"]) -> None:
        self.out, self.geometry, self.labels, self.volumes = out, geometry, labels, volumes
        self.seed, self.noise, self.psf, self.motion, self.tracer = seed, noise, psf, motion, tracer
        self.voxel_sampling = voxel_sampling
        self.atlas = phantom.atlas_labels(labels)
        self.probseg = phantom.tissue_probabilities(labels)

    def write_subject(self, i: int, subject: Subject, truths: dict[tuple[str, str], ScanTruth]
                      ) -> None:
        """Write the subject's T1w, anatomy derivatives, phantom truth and every PET scan."""
        g, lab = self.geometry, subject.label
        rng = rng_for(self.seed, _T1W, i)
        shift = rng.uniform(-10.0, 10.0, 3)
        t1w_affine = phantom.grid_to_phantom(g.t1w_shape, g.t1w_voxel_mm)
        t1w_affine[:3, 3] += shift  # T1w world = phantom coordinates + shift
        t1w = phantom.t1w_image(self.labels, rng, 0.02 * self.noise)
        o = self.out
        writer.write_nifti(o / writer.raw_path("t1w", lab), t1w, t1w_affine)
        writer.write_sidecar(o / writer.raw_path("t1w_json", lab), writer.T1W_SIDECAR)
        preproc = o / writer.anat_derivative_path("t1w_preproc", lab)
        writer.write_nifti(preproc, t1w, t1w_affine)
        writer.write_sidecar(preproc.with_name(preproc.name.replace(".nii.gz", ".json")),
                             writer.PREPROC_T1W_SIDECAR)
        writer.write_nifti(o / writer.anat_derivative_path("brain_mask", lab),
                           (self.atlas > 0).astype(np.uint8), t1w_affine)
        for tissue, prob in self.probseg.items():
            writer.write_nifti(o / writer.anat_derivative_path("probseg", lab, ref=tissue), prob,
                               t1w_affine)
        writer.write_nifti(o / writer.anat_derivative_path("dseg", lab), self.atlas, t1w_affine)
        writer.write_table(o / writer.anat_derivative_path("dseg_tsv", lab), pd.DataFrame(
            {"index": [r.index for r in phantom.REGIONS if r.in_atlas],
             "name": [r.name for r in phantom.REGIONS if r.in_atlas]}))
        writer.write_nifti(o / writer.truth_path("phantom_dseg", lab), self.labels, t1w_affine)
        writer.write_table(o / writer.truth_path("phantom_dseg_tsv", lab), pd.DataFrame(
            {"index": [r.index for r in phantom.REGIONS], "name": [r.name for r in phantom.REGIONS],
             "tissue": [r.tissue for r in phantom.REGIONS]}))
        head_centre = shift  # phantom origin in T1w world
        for j, session in enumerate(subject.sessions):
            self.write_scan(i, j, subject, session, truths[(lab, session)], t1w_affine,
                            head_centre)

    def write_scan(self, i: int, j: int, subject: Subject, session: str, truth: ScanTruth,
                   t1w_affine: np.ndarray, head_centre: np.ndarray) -> None:
        """Write one PET run, its blood recording and its truth files."""
        g, lab, o, trc = self.geometry, subject.label, self.out, self.tracer
        starts, ends = g.frame_times()
        durations = ends - starts
        pet_to_t1w, pet_affine = acq.pet_pose(rng_for(self.seed, _POSE, i, j), head_centre, g)
        centre = (np.linalg.inv(pet_to_t1w) @ np.append(head_centre, 1.0))[:3]
        motion = acq.motion_parameters(rng_for(self.seed, _MOTION, i, j), starts, ends,
                                       self.motion)
        to_reference = [acq.rigid_matrix(p, centre) for p in motion]
        renderer = acq.FrameRenderer(self.labels, t1w_affine, pet_to_t1w, pet_affine,
                                     g.pet_shape, self.psf, self.voxel_sampling)
        values = np.zeros((len(starts), 256), dtype=np.float32)
        for region in phantom.REGIONS:
            values[:, region.index] = truth.frame_tacs[region.name]
        noise_rng = rng_for(self.seed, _NOISE, i, j)

        def frames() -> Iterator[np.ndarray]:
            for f in range(len(starts)):
                frame = renderer.render(values[f], to_reference[f])
                yield acq.add_noise(frame, noise_rng, float(starts[f] + ends[f]) / 2,
                                    float(durations[f]), self.noise, g.pet_voxel_mm)

        writer.write_nifti_frames(o / writer.raw_path("pet", lab, session, trc), frames(),
                                  g.pet_shape, len(starts), pet_affine)
        writer.write_sidecar(o / writer.raw_path("pet_json", lab, session, trc), writer.pet_sidecar(
            tracer=trc, dose_mbq=truth.dose_mbq, mass_ug=truth.mass_ug, starts=starts,
            durations=durations, time_zero="10:00:00" if session == "baseline" else "13:00:00"))
        self._write_blood(i, j, lab, session, truth.input_params)
        self._write_scan_truth(lab, session, truth, starts, ends, pet_to_t1w, pet_affine,
                               t1w_affine, to_reference, motion, centre, renderer.description)

    def _write_blood(self, i: int, j: int, lab: str, session: str, inp: InputParams) -> None:
        t = BLOOD_SAMPLE_TIMES_S
        curves = blood_curves(t, inp)
        true = pd.DataFrame({"time": t, "plasma_radioactivity": curves["plasma"],
                             "whole_blood_radioactivity": curves["whole_blood"],
                             "metabolite_parent_fraction": curves["parent_fraction"]})
        rng = rng_for(self.seed, _BLOOD, i, j)
        noisy = true.copy()
        for col in ("plasma_radioactivity", "whole_blood_radioactivity"):
            noisy[col] *= 1.0 + 0.03 * self.noise * rng.standard_normal(len(t))
        noisy["metabolite_parent_fraction"] = np.clip(
            noisy["metabolite_parent_fraction"] + 0.02 * self.noise * rng.standard_normal(len(t)),
            0.0, 1.0)
        o, trc = self.out, self.tracer
        writer.write_table(o / writer.raw_path("blood", lab, session, trc), noisy)
        writer.write_sidecar(o / writer.raw_path("blood_json", lab, session, trc),
                             writer.blood_sidecar())
        writer.write_table(o / writer.truth_path("blood", lab, session, trc), true)

    def _write_scan_truth(self, lab: str, session: str, truth: ScanTruth, starts: np.ndarray,
                          ends: np.ndarray, pet_to_t1w: np.ndarray, pet_affine: np.ndarray,
                          t1w_affine: np.ndarray, to_reference: list[np.ndarray],
                          motion: np.ndarray, centre: np.ndarray,
                          rendering: dict[str, str | int]) -> None:
        o, trc = self.out, self.tracer
        frames = {"frame_start": starts, "frame_end": ends}
        writer.write_table(o / writer.truth_path("tacs", lab, session, trc),
                           pd.DataFrame({**frames, **truth.frame_tacs}))
        writer.write_table(o / writer.truth_path("ref_tacs", lab, session, trc),
                           pd.DataFrame({**frames, REFERENCE: truth.reference_tac}))
        rows = [{"region": r.name, **asdict(truth.params[r.name]), "VT": truth.params[r.name].VT,
                 "BPND": truth.params[r.name].BPND, "SUVR": truth.suvr[r.name],
                 "volume_mm3": round(self.volumes[r.name], 3)} for r in phantom.REGIONS]
        writer.write_table(o / writer.truth_path("kinpar", lab, session, trc), pd.DataFrame(rows))
        writer.write_sidecar(o / writer.truth_path("kinpar_json", lab, session, trc),
                             writer.KINPAR_SIDECAR)
        writer.write_sidecar(o / writer.truth_path("pet", lab, session, trc), {
            "conventions": acq.__doc__,
            "pet_to_t1w": pet_to_t1w, "pet_affine": pet_affine, "t1w_affine": t1w_affine,
            "frame_to_reference": to_reference,
            "motion_parameters": {"columns": ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y",
                                              "rot_z"], "units": ["mm"] * 3 + ["rad"] * 3,
                                  "rotation_centre_pet_world_mm": centre, "values": motion},
            "frame_start": starts, "frame_end": ends,
            "psf_fwhm_mm": self.psf, **rendering, "noise_scale": self.noise,
            "noise_alpha_bq_ml_s": acq.noise_alpha(self.geometry.pet_voxel_mm),
            "noise_reference": acq.NOISE_REFERENCE, "max_motion_mm": self.motion,
            "seed": self.seed, "input_function": truth.input_params.to_dict(),
            "injected_radioactivity_mbq": truth.dose_mbq, "injected_mass_ug": truth.mass_ug,
            "reference_region": {"name": REFERENCE, "regions": [
                r.name for r in phantom.REGIONS if r.in_reference], "weighting": "volume"},
            "suvr_window_s": SUVR_WINDOW_S, "vt_factors": truth.factors,
        })


def _write_dataset_files(out: Path, subjects: list[Subject], madrs: dict[str, dict[str, int]],
                         spec: CohortSpec, size: str, seed: int, tracer: str) -> None:
    writer.write_sidecar(out / "dataset_description.json",
                         writer.dataset_description(f"ketpet_bids simulated study ({spec.name})"))
    text = writer.README.format(version=writer.GENERATED_BY["Version"], preset=spec.name,
                                n_patients=sum(s.group == "patient" for s in subjects),
                                n_controls=sum(s.group == "control" for s in subjects),
                                size=size, seed=seed)
    writer.write_with(out / "README", lambda tmp: tmp.write_text(text))
    participants = pd.DataFrame([{"participant_id": f"sub-{s.label}", "group": s.group,
                                  "arm": s.arm, "age": s.age, "sex": s.sex,
                                  "body_weight": s.body_weight} for s in subjects])
    writer.write_table(out / "participants.tsv", participants)
    writer.write_sidecar(out / "participants.json", writer.PARTICIPANTS_SIDECAR)
    writer.write_sidecar(out / "sessions.json", writer.SESSIONS_SIDECAR)
    for s in subjects:
        table = pd.DataFrame({"session_id": [f"ses-{x}" for x in s.sessions],
                              "madrs": [madrs[s.label][x] for x in s.sessions]})
        writer.write_table(out / writer.raw_path("sessions", s.label), table)
    # The validator's schema indexes phenotype tables by participant_id alone: one row each.
    writer.write_table(out / "phenotype" / "madrs.tsv", pd.DataFrame(
        [{"participant_id": f"sub-{s.label}",
          **{f"madrs_{ses}": madrs[s.label].get(ses) for ses in ("baseline", "post")}}
         for s in subjects]))
    writer.write_sidecar(out / "phenotype" / "madrs.json", writer.MADRS_SIDECAR)
    anat = out / writer.ANAT_DERIVATIVES
    writer.write_sidecar(anat / "dataset_description.json",
                         writer.dataset_description("ketpet_bids simulated anatomy",
                                                    "derivative"))
    writer.write_with(anat / "README", lambda tmp: tmp.write_text(
        "T1w-space anatomy of the simulated study (sMRIPrep-style names): preprocessed T1w, "
        "brain mask, GM/WM/CSF probabilities and the seg-sim atlas.\n"))


def _write_cohort_truth(out: Path, subjects: list[Subject],
                        truths: dict[tuple[str, str], ScanTruth],
                        changes: dict[str, dict[str, float]], madrs: dict[str, dict[str, int]],
                        spec: CohortSpec, seed: int, volumes: dict[str, float]) -> None:
    rows = []
    for s in subjects:
        scores = madrs[s.label]
        change = changes.get(s.label, {})
        rows.append({"participant_id": f"sub-{s.label}", "group": s.group, "arm": s.arm,
                     "madrs_baseline": scores["baseline"], "madrs_post": scores.get("post"),
                     "madrs_change": (scores["post"] - scores["baseline"]
                                      if "post" in scores else None),
                     **{f"true_{k}_change": v for k, v in change.items()},
                     "planted_treatment_cortical": _mean_effect(s, phantom.CORTICAL),
                     "planted_treatment_habenula": _mean_effect(s, HABENULA)})
    table = pd.DataFrame(rows)
    writer.write_table(out / writer.truth_path("cohort_tsv"), table)
    patients = table[table["group"] == "patient"].dropna(subset=["madrs_change"])
    realised = (float(np.corrcoef(patients["madrs_change"], patients["true_cortical_suvr_change"])
                      [0, 1]) if len(patients) > 2 else None)
    doc: dict[str, Any] = {
        "description": "Planted cohort effects; see ketpet_bids.sim.cohort for the model.",
        "seed": seed, "spec": asdict(spec), "suvr_window_s": SUVR_WINDOW_S,
        "reference_region": {"name": REFERENCE, "definition": "volume-weighted mean of the true "
                             "TACs of all seg-sim atlas regions except csf"},
        "region_volumes_mm3": volumes,
        "madrs_change_vs_cortical_suvr_change_r": realised,
        "subjects": {s.label: {
            "group": s.group, "arm": s.arm, "vt_factor_subject": s.vt_factor,
            "k1_factor_subject": s.k1_factor, "treatment_effect": s.treatment,
            "true_changes": changes.get(s.label), "madrs": madrs[s.label],
            "sessions": {ses: {"vt_factors": truths[(s.label, ses)].factors,
                               "suvr": truths[(s.label, ses)].suvr,
                               "VT": {r: p.VT for r, p in truths[(s.label, ses)].params.items()}}
                         for ses in s.sessions}} for s in subjects},
    }
    writer.write_sidecar(out / writer.truth_path("cohort_json"), doc)


def _mean_effect(subject: Subject, regions: tuple[str, ...]) -> float | None:
    if subject.group != "patient":
        return None
    return float(np.mean([subject.treatment.get(r, 0.0) for r in regions]))
