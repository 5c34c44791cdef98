"""Thin nipype interface for the unbiased longitudinal T1w reference (``core.longitudinal``)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nb
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    InputMultiObject,
    OutputMultiObject,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from ketpet_bids.core.coreg import write_itk_affine
from ketpet_bids.core.longitudinal import unbiased_reference


class _UnbiasedReferenceInputSpec(BaseInterfaceInputSpec):
    t1w_files = InputMultiObject(File(exists=True), mandatory=True,
                                 desc="the sessions' T1w images; the first sets the output grid")
    seed = traits.Int(0, usedefault=True, desc="seed of the registrations' metric sampling")
    omp_nthreads = traits.Int(1, usedefault=True, desc="ITK threads")


class _UnbiasedReferenceOutputSpec(TraitedSpec):
    t1w = File(exists=True, desc="mid-space average T1w (float32, first T1w's grid)")
    session_to_reference = OutputMultiObject(
        File(exists=True), desc="per input T1w, in order: ITK affine text file (LPS, "
                                "mid-space points → session points; antsApplyTransforms "
                                "-i session -r t1w)")


class UnbiasedReference(SimpleInterface):
    """Average a participant's session T1w images in their rigid mid-space."""

    input_spec = _UnbiasedReferenceInputSpec
    output_spec = _UnbiasedReferenceOutputSpec

    def _run_interface(self, runtime):
        average, session_to_mid = unbiased_reference(
            [Path(p) for p in self.inputs.t1w_files], seed=self.inputs.seed,
            nthreads=self.inputs.omp_nthreads)
        cwd = Path(runtime.cwd)
        self._results["t1w"] = str(cwd / "unbiased_T1w.nii.gz")
        nb.save(average, self._results["t1w"])
        self._results["session_to_reference"] = [
            str(write_itk_affine(cwd / f"session{i:02d}_to-unbiased_xfm.txt", matrix))
            for i, matrix in enumerate(session_to_mid)]
        return runtime
