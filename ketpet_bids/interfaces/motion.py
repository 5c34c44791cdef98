"""Thin nipype interfaces for head-motion correction (numerics in ``core.motion``).

Steps, so that the frames can be estimated in parallel by a MapNode:
:class:`PrepareHMC` (plan, reference and one smoothed working-grid file per frame to
estimate) → :class:`EstimateMotion` (one frame) → optionally :class:`RefineReference`
(re-average the corrected frames) and :class:`EstimateMotion` again from the first
estimates → :class:`ApplyMotion` (all frames, one resampling each from the original data).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from ketpet_bids.core import motion
from ketpet_bids.core.timing import time_weighted_mean


class _PrepareHMCInputSpec(BaseInterfaceInputSpec):
    pet_file = File(exists=True, mandatory=True, desc="PET, 3D or 4D NIfTI (Bq/mL)")
    frame_start = traits.List(traits.Float, mandatory=True, desc="frame starts (s)")
    frame_duration = traits.List(traits.Float, mandatory=True, desc="frame durations (s)")
    start_time = traits.Float(120.0, usedefault=True, desc="HMC start time (s)")
    fwhm_mm = traits.Float(6.0, usedefault=True, desc="smoothing before estimation (mm)")
    hmc_off = traits.Bool(False, usedefault=True, desc="skip estimation")


class _PrepareHMCOutputSpec(TraitedSpec):
    plan_file = File(exists=True, desc="JSON of core.motion.HMCPlan")
    reference_file = File(exists=True, desc="smoothed, background-masked reference on the "
                                            "working grid (core.motion.working_grid)")
    mask_file = File(exists=True, desc="reference foreground mask")
    frame_files = traits.List(File(exists=True),
                              desc="smoothed, masked frames to estimate, in plan order; the "
                                   "reference itself when nothing is estimated (identity)")


class PrepareHMC(SimpleInterface):
    """Plan the frames, build the registration reference and split the frames to estimate."""

    input_spec = _PrepareHMCInputSpec
    output_spec = _PrepareHMCOutputSpec

    def _run_interface(self, runtime):
        import nibabel as nb

        img = nb.load(self.inputs.pet_file)
        start, duration = _timing(img.shape, self.inputs.frame_start, self.inputs.frame_duration)
        plan = motion.plan_hmc(start, duration, self.inputs.start_time,
                               hmc_off=self.inputs.hmc_off)
        data = img.get_fdata(dtype=np.float32)  # once: slicing a .nii.gz re-inflates it
        reference = time_weighted_mean(data, duration, plan.reference)
        smoothed, mask = motion.smooth_and_mask(reference, img.affine, self.inputs.fwhm_mm)
        grid, affine = motion.working_grid(mask, img.affine)
        cwd = Path(runtime.cwd)
        self._results["plan_file"] = str(cwd / "plan.json")
        Path(self._results["plan_file"]).write_text(json.dumps(dataclasses.asdict(plan)))
        self._results["reference_file"] = _save(smoothed[grid], affine, cwd / "reference.nii")
        self._results["mask_file"] = _save(mask[grid].astype(np.uint8), affine, cwd / "mask.nii")
        self._results["frame_files"] = [
            _save(motion.smooth_and_mask(data[..., t], img.affine, self.inputs.fwhm_mm)[0][grid],
                  affine, cwd / f"frame{t:04d}.nii")
            for t in plan.estimate] or [self._results["reference_file"]]
        return runtime


class _EstimateMotionInputSpec(BaseInterfaceInputSpec):
    frame_file = File(exists=True, mandatory=True, desc="smoothed, masked frame")
    reference_file = File(exists=True, mandatory=True, desc="smoothed, masked reference")
    mask_file = File(exists=True, mandatory=True, desc="reference foreground mask")
    initial_file = File(exists=True, desc=".npy (4, 4) starting frame_to_reference; when set,"
                                          " only the finest level runs (second pass)")
    seed = traits.Int(0, usedefault=True, desc="seed of the metric sampling")
    omp_nthreads = traits.Int(1, usedefault=True, desc="ITK threads")


class _EstimateMotionOutputSpec(TraitedSpec):
    xform_file = File(exists=True, desc=".npy (4, 4): RAS frame_to_reference matrix")


class EstimateMotion(SimpleInterface):
    """Rigid registration of one frame to the reference (``core.motion``)."""

    input_spec = _EstimateMotionInputSpec
    output_spec = _EstimateMotionOutputSpec

    def _run_interface(self, runtime):
        import nibabel as nb

        frame = nb.load(self.inputs.frame_file)
        reference = np.asanyarray(nb.load(self.inputs.reference_file).dataobj)
        mask = np.asanyarray(nb.load(self.inputs.mask_file).dataobj) > 0
        second = isdefined(self.inputs.initial_file)
        matrix = motion.estimate_frame_motion(
            np.asanyarray(frame.dataobj), reference, frame.affine, mask,
            levels_mm=motion.REFINE_LEVELS_MM if second else (8.0, 4.0),
            iterations=motion.REFINE_ITERATIONS if second else (100, 50),
            initial=np.load(self.inputs.initial_file) if second else None, seed=self.inputs.seed,
            nthreads=self.inputs.omp_nthreads)
        self._results["xform_file"] = str(Path(runtime.cwd) / "frame_to_reference.npy")
        np.save(self._results["xform_file"], matrix)
        return runtime


class _RefineReferenceInputSpec(BaseInterfaceInputSpec):
    frame_files = traits.List(File(exists=True), mandatory=True,
                              desc="PrepareHMC frame files (working grid), in plan order")
    xform_files = traits.List(File(exists=True), mandatory=True,
                              desc="first-pass EstimateMotion outputs, in plan order")
    reference_file = File(exists=True, mandatory=True, desc="first-pass reference")
    plan_file = File(exists=True, mandatory=True, desc="PrepareHMC plan")
    frame_duration = traits.List(traits.Float, mandatory=True, desc="frame durations (s)")


class _RefineReferenceOutputSpec(TraitedSpec):
    reference_file = File(exists=True, desc="duration-weighted mean of the corrected frames "
                                            "(the first reference when nothing was estimated)")


class RefineReference(SimpleInterface):
    """Re-average the smoothed frames corrected with the first-pass estimates."""

    input_spec = _RefineReferenceInputSpec
    output_spec = _RefineReferenceOutputSpec

    def _run_interface(self, runtime):
        import nibabel as nb

        plan = json.loads(Path(self.inputs.plan_file).read_text())
        if len(plan["estimate"]) < 2:
            self._results["reference_file"] = self.inputs.reference_file
            return runtime
        first = nb.load(self.inputs.frame_files[0])
        frames = np.stack([np.asanyarray(nb.load(f).dataobj) for f in self.inputs.frame_files],
                          axis=-1)
        weights = np.asarray(self.inputs.frame_duration, dtype=float)[plan["estimate"]]
        refined = motion.refined_reference(frames, first.affine,
                                           np.stack([np.load(f) for f in self.inputs.xform_files]),
                                           weights)
        self._results["reference_file"] = _save(refined, first.affine,
                                                Path(runtime.cwd) / "reference_refined.nii")
        return runtime


class _ApplyMotionInputSpec(BaseInterfaceInputSpec):
    pet_file = File(exists=True, mandatory=True, desc="PET, 3D or 4D NIfTI (Bq/mL)")
    frame_start = traits.List(traits.Float, mandatory=True, desc="frame starts (s)")
    frame_duration = traits.List(traits.Float, mandatory=True, desc="frame durations (s)")
    plan_file = File(exists=True, mandatory=True, desc="PrepareHMC plan")
    xform_files = traits.List(File(exists=True), mandatory=True,
                              desc="EstimateMotion outputs, in plan order")
    fwhm_mm = traits.Float(6.0, usedefault=True, desc="smoothing used (for the summary)")


class _ApplyMotionOutputSpec(TraitedSpec):
    pet_preproc = File(exists=True, desc="motion-corrected PET, same grid, float32 (the input "
                                         "file itself when estimation was skipped)")
    petref = File(exists=True, desc="time-weighted mean of corrected frames (3D, float32)")
    confounds_tsv = File(exists=True, desc="six motion parameters and FD per frame")
    xforms = File(exists=True, desc=".npy (T, 4, 4): RAS frame_to_reference matrices")
    hmc_json = File(exists=True, desc="summary (confounds sidecar)")


class ApplyMotion(SimpleInterface):
    """Resample every frame once with its transform; write the reference, table and summary."""

    input_spec = _ApplyMotionInputSpec
    output_spec = _ApplyMotionOutputSpec

    def _run_interface(self, runtime):
        import nibabel as nb
        import pandas as pd

        img = nb.load(self.inputs.pet_file)
        _, duration = _timing(img.shape, self.inputs.frame_start, self.inputs.frame_duration)
        raw = json.loads(Path(self.inputs.plan_file).read_text())
        plan = motion.HMCPlan(**{k: tuple(v) if isinstance(v, list) else v
                                 for k, v in raw.items()})
        matrices = (motion.expand_transforms(plan.n_frames, plan.estimate,
                                             [np.load(f) for f in self.inputs.xform_files])
                    if plan.estimate else np.tile(np.eye(4), (plan.n_frames, 1, 1)))
        centre = motion.image_centre(img.shape, img.affine)
        params = np.stack([motion.matrix_to_params(m, centre) for m in matrices])
        fd = motion.framewise_displacement(params)
        cwd = Path(runtime.cwd)
        data = img.get_fdata(dtype=np.float32)
        if plan.skipped:
            self._results["pet_preproc"] = self.inputs.pet_file
            corrected = data
        else:
            corrected = motion.correct_frames(data, img.affine, matrices)
            self._results["pet_preproc"] = _save(corrected, img.affine,
                                                 cwd / "pet_preproc.nii.gz", img.header)
        self._results["petref"] = _save(time_weighted_mean(corrected, duration, plan.petref),
                                        img.affine, cwd / "petref.nii.gz", img.header)
        table = pd.DataFrame(params, columns=list(motion.PARAM_NAMES))
        table["framewise_displacement"] = fd
        self._results["confounds_tsv"] = str(cwd / "confounds.tsv")
        table.to_csv(self._results["confounds_tsv"], sep="\t", index=False, float_format="%.6g")
        self._results["xforms"] = str(cwd / "frame_to_reference.npy")
        np.save(self._results["xforms"], matrices)
        self._results["hmc_json"] = str(cwd / "hmc.json")
        Path(self._results["hmc_json"]).write_text(json.dumps(
            motion.summarise_hmc(fd, plan, self.inputs.fwhm_mm), indent=2))
        return runtime


def _timing(shape: tuple[int, ...], frame_start: list[float],
            frame_duration: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Frame timing checked against the image; a 3D image without timing is one frame of
    unit weight."""
    n_frames = shape[3] if len(shape) == 4 else 1
    if len(shape) == 3 and len(frame_duration) != 1:
        return np.zeros(1), np.ones(1)
    if len(frame_start) != n_frames or len(frame_duration) != n_frames:
        raise ValueError(f"{len(frame_start)} frame starts and {len(frame_duration)} durations "
                         f"for an image with {n_frames} frames")
    return np.asarray(frame_start, dtype=float), np.asarray(frame_duration, dtype=float)


def _save(data: np.ndarray, affine: np.ndarray, path: Path, header=None) -> str:
    """Save an array as NIfTI (float32 unless integer), keeping ``header`` fields if given."""
    import nibabel as nb

    dtype = np.uint8 if data.dtype == np.uint8 else np.float32
    img = nb.Nifti1Image(np.asarray(data, dtype=dtype), affine, header)
    img.set_data_dtype(dtype)
    img.header.set_slope_inter(1.0, 0.0)
    nb.save(img, path)
    return str(path)
