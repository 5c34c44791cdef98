"""Thin nipype interface for PET-reference → T1w co-registration (numerics in ``core.coreg``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from ketpet_bids.core import coreg


class _CoregPETInputSpec(BaseInterfaceInputSpec):
    petref = File(exists=True, mandatory=True, desc="PET reference (3D NIfTI)")
    t1w = File(exists=True, mandatory=True, desc="T1w (NIfTI)")
    t1w_mask = File(exists=True, mandatory=True, desc="T1w brain mask (nonzero = brain)")
    mode = traits.Enum("ants", "identity", usedefault=True,
                       desc="register with ANTs, or take the data as already aligned")
    seed = traits.Int(0, usedefault=True, desc="seed of the metric sampling")
    omp_nthreads = traits.Int(1, usedefault=True, desc="ITK threads")


class _CoregPETOutputSpec(TraitedSpec):
    pet_to_t1w_xfm = File(exists=True, desc="ITK affine text file (LPS, T1w → petref points)")
    pet_to_t1w_matrix = File(exists=True, desc="RAS 4×4 pet_to_t1w (core.tacs.read_matrix)")
    petref_t1w = File(exists=True, desc="petref resampled to the T1w grid (float32)")
    coreg_json = File(exists=True, desc="similarity, initialisation, warnings")


class CoregPET(SimpleInterface):
    """Register (or, in identity mode, score) the PET reference against the T1w."""

    input_spec = _CoregPETInputSpec
    output_spec = _CoregPETOutputSpec

    def _run_interface(self, runtime):
        import nibabel as nb

        pet = nb.load(self.inputs.petref)
        t1w = nb.load(self.inputs.t1w)
        pet_data = pet.get_fdata(dtype=np.float32)
        t1w_data = t1w.get_fdata(dtype=np.float32)
        mask = np.asanyarray(nb.load(self.inputs.t1w_mask).dataobj) > 0
        if self.inputs.mode == "identity":
            result = coreg.assess_alignment(pet_data, pet.affine, t1w_data, t1w.affine, mask,
                                            np.eye(4), "identity (--coreg identity)",
                                            seed=self.inputs.seed,
                                            nthreads=self.inputs.omp_nthreads)
        else:
            result = coreg.register_pet_to_t1w(pet_data, pet.affine, t1w_data, t1w.affine, mask,
                                               seed=self.inputs.seed,
                                               nthreads=self.inputs.omp_nthreads)
        cwd = Path(runtime.cwd)
        self._results["pet_to_t1w_xfm"] = str(coreg.write_itk_affine(
            cwd / "from-petref_to-T1w_mode-image_xfm.txt", result.pet_to_t1w))
        self._results["pet_to_t1w_matrix"] = str(coreg.write_pet_to_t1w(
            cwd / "pet_to_t1w_ras.txt", result.pet_to_t1w))
        resampled = coreg.resample_petref_to_t1w(pet_data, pet.affine, result.pet_to_t1w,
                                                 t1w_data.shape[:3], t1w.affine)
        out = nb.Nifti1Image(resampled, t1w.affine, t1w.header)
        out.set_data_dtype(np.float32)
        out.header.set_slope_inter(1.0, 0.0)
        self._results["petref_t1w"] = str(cwd / "petref_space-T1w.nii.gz")
        nb.save(out, self._results["petref_t1w"])
        self._results["coreg_json"] = str(cwd / "coreg.json")
        Path(self._results["coreg_json"]).write_text(json.dumps({
            "Method": "rigid, ANTs Mattes mutual information" if self.inputs.mode == "ants"
                      else "identity (data taken as aligned)",
            "Initialisation": result.initialisation,
            "SimilarityMetric": "MattesMutualInformation (higher is better)",
            "Similarity": result.mutual_information,
            "PETBrainInsideT1wMask": result.inside_fraction,
            "ReRegistrationShift_mm": result.check_shift_mm,
            "Warnings": result.warnings,
        }, indent=2))
        return runtime
