"""Thin nipype interfaces for T1w processing, template registration, tissue classes and
atlas bookkeeping (numerics in ``core``). ITK follows ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS``
(the scheduler sets it)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    InputMultiObject,
    OutputMultiObject,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from ketpet_bids.bids.sink import write_tsv, write_with
from ketpet_bids.core.anat import (
    LABEL_INTERPOLATIONS,
    TISSUES,
    apply_transforms,
    brain_mask,
    n4_bias_correct,
    register_to_template,
    segment_tissues,
)
from ketpet_bids.core.freesurfer import freesurfer_lut, labels_to_t1w
from ketpet_bids.core.regions import (
    as_label_array,
    read_label_table,
    region_volumes,
    resample_nearest,
)


def _save_like(data: np.ndarray, ref: nib.Nifti1Image, path: Path, dtype: type) -> str:
    header = ref.header.copy()
    header.set_data_dtype(dtype)
    img = nib.Nifti1Image(data.astype(dtype), ref.affine, header)
    img.header.set_slope_inter(1, 0)
    nib.save(img, path)
    return str(path)


class _T1wPreprocInputSpec(BaseInterfaceInputSpec):
    t1w = File(exists=True, mandatory=True, desc="T1w image (raw or already preprocessed)")
    in_mask = File(exists=True, desc="brain mask to use instead of computing one")
    bias_correct = traits.Bool(True, usedefault=True, desc="run N4 on the T1w")
    nthreads = traits.Int(desc="ITK threads (default: ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS)")


class _T1wPreprocOutputSpec(TraitedSpec):
    t1w_preproc = File(exists=True, desc="bias-corrected T1w")
    brain_mask = File(exists=True, desc="brain mask (uint8) in T1w space")


class T1wPreprocess(SimpleInterface):
    """N4 bias correction and a brain mask of a T1w (either may be skipped)."""

    input_spec = _T1wPreprocInputSpec
    output_spec = _T1wPreprocOutputSpec

    def _run_interface(self, runtime):
        img = nib.load(self.inputs.t1w)
        zooms = img.header.get_zooms()[:3]
        data = np.asarray(img.dataobj, dtype=np.float32)
        if data.ndim == 4 and data.shape[3] == 1:
            data = data[..., 0]
        given = self.inputs.in_mask if self.inputs.in_mask else None
        mask = np.asarray(nib.load(given).dataobj) > 0 if given else None
        if self.inputs.bias_correct:
            data = n4_bias_correct(data, zooms, mask, nthreads=self.inputs.nthreads or None)
            self._results["t1w_preproc"] = _save_like(
                data, img, Path(runtime.cwd) / "t1w_preproc.nii.gz", np.float32)
        else:
            self._results["t1w_preproc"] = self.inputs.t1w
        if given:
            self._results["brain_mask"] = given
        else:
            self._results["brain_mask"] = _save_like(
                brain_mask(data, zooms), img, Path(runtime.cwd) / "brain_mask.nii.gz", np.uint8)
        return runtime


class _BrainAtlasInputSpec(BaseInterfaceInputSpec):
    brain_mask = File(exists=True, mandatory=True, desc="brain mask in T1w space")
    csf_probseg = File(exists=True, desc="CSF probability map on the mask's grid")


class _BrainAtlasOutputSpec(TraitedSpec):
    dseg = File(exists=True, desc="label image: 1 = wholebrain")
    dseg_tsv = File(exists=True, desc="label table (index, name)")


class BrainAtlas(SimpleInterface):
    """Fallback one-region atlas ``wholebrain``: the brain mask minus voxels with P(CSF) > 0.5."""

    input_spec = _BrainAtlasInputSpec
    output_spec = _BrainAtlasOutputSpec

    def _run_interface(self, runtime):
        img = nib.load(self.inputs.brain_mask)
        mask = np.asarray(img.dataobj) > 0
        if self.inputs.csf_probseg:
            mask &= ~(np.asarray(nib.load(self.inputs.csf_probseg).dataobj) > 0.5)
        cwd = Path(runtime.cwd)
        self._results["dseg"] = _save_like(mask, img, cwd / "brain_dseg.nii.gz", np.uint8)
        tsv = cwd / "brain_dseg.tsv"
        write_tsv(tsv, pd.DataFrame({"index": [1], "name": ["wholebrain"]}))
        self._results["dseg_tsv"] = str(tsv)
        return runtime


class _RegionVolumesInputSpec(BaseInterfaceInputSpec):
    dseg = File(exists=True, mandatory=True, desc="label image")
    dseg_tsv = File(exists=True, mandatory=True, desc="label table (index, name)")


class _RegionVolumesOutputSpec(TraitedSpec):
    morph_tsv = File(exists=True, desc="index, name, volume_mm3")


class RegionVolumes(SimpleInterface):
    """Region volumes (mm³) of a label image → ``morph.tsv``."""

    input_spec = _RegionVolumesInputSpec
    output_spec = _RegionVolumesOutputSpec

    def _run_interface(self, runtime):
        img = nib.load(self.inputs.dseg)
        labels = as_label_array(np.asanyarray(img.dataobj), self.inputs.dseg)
        table = read_label_table(Path(self.inputs.dseg_tsv))
        morph = region_volumes(labels, table, abs(np.linalg.det(img.affine[:3, :3])))
        out = Path(runtime.cwd) / "morph.tsv"
        # 10 significant digits: whole-brain volumes (~1e6 mm³) stay exact to 0.001 mm³.
        write_with(out, lambda tmp: morph.to_csv(tmp, sep="\t", index=False,
                                                 float_format="%.10g"))
        self._results["morph_tsv"] = str(out)
        return runtime


class _FreeSurferToT1wInputSpec(BaseInterfaceInputSpec):
    aparc_aseg = File(exists=True, mandatory=True, desc="FreeSurfer aparc+aseg.mgz")
    brainmask = File(exists=True, desc="FreeSurfer brainmask.mgz (> 0 is brain)")
    reference = File(exists=True, mandatory=True, desc="T1w defining the output grid")


class _FreeSurferToT1wOutputSpec(TraitedSpec):
    dseg = File(exists=True, desc="aparc+aseg labels on the T1w grid (int16)")
    dseg_tsv = File(exists=True, desc="label table (index, name) of the labels present")
    brain_mask = File(desc="FreeSurfer brain mask on the T1w grid (uint8), if given")


class FreeSurferToT1w(SimpleInterface):
    """FreeSurfer ``aparc+aseg`` (and brain mask) → T1w grid, nearest neighbour, via the
    shared scanner-RAS affines (``core.freesurfer``)."""

    input_spec = _FreeSurferToT1wInputSpec
    output_spec = _FreeSurferToT1wOutputSpec

    def _run_interface(self, runtime):
        ref = nib.load(self.inputs.reference)
        fs = nib.load(self.inputs.aparc_aseg)
        labels = as_label_array(np.asanyarray(fs.dataobj), self.inputs.aparc_aseg)
        moved, table = labels_to_t1w(labels, fs.affine, ref.shape[:3], ref.affine,
                                     freesurfer_lut(), self.inputs.aparc_aseg)
        cwd = Path(runtime.cwd)
        self._results["dseg"] = _save_like(moved, ref, cwd / "aparcaseg_dseg.nii.gz",
                                           np.int16)
        tsv = cwd / "aparcaseg_dseg.tsv"
        write_tsv(tsv, pd.DataFrame({"index": list(table), "name": list(table.values())}))
        self._results["dseg_tsv"] = str(tsv)
        if self.inputs.brainmask:
            mimg = nib.load(self.inputs.brainmask)
            mask = resample_nearest(np.asanyarray(mimg.dataobj) > 0, mimg.affine,
                                    ref.shape[:3], ref.affine)
            self._results["brain_mask"] = _save_like(mask, ref, cwd / "fs_brain_mask.nii.gz",
                                                     np.uint8)
        return runtime


class _TemplateRegistrationInputSpec(BaseInterfaceInputSpec):
    t1w = File(exists=True, mandatory=True, desc="bias-corrected T1w (3D)")
    brain_mask = File(exists=True, desc="T1w brain mask (restricts the SyN metric)")
    template_t1w = File(exists=True, mandatory=True, desc="template T1w (e.g. res-01)")
    template_mask = File(exists=True, desc="template brain mask")
    seed = traits.Int(0, usedefault=True, desc="seed (same seed, identical transforms)")
    quick = traits.Bool(False, usedefault=True, desc="register 2 mm copies (≈10× faster)")
    nthreads = traits.Int(desc="ITK threads (default: ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS)")


class _TemplateRegistrationOutputSpec(TraitedSpec):
    t1w_to_template = File(exists=True, desc="ANTs composite (HDF5): T1w → template")
    template_to_t1w = File(exists=True, desc="ANTs composite (HDF5): template → T1w")


class TemplateRegistration(SimpleInterface):
    """T1w → template SyN (``core.anat.register_to_template``); both composite transforms."""

    input_spec = _TemplateRegistrationInputSpec
    output_spec = _TemplateRegistrationOutputSpec

    def _run_interface(self, runtime):
        optional = {name: Path(getattr(self.inputs, name)) if getattr(self.inputs, name)
                    else None for name in ("brain_mask", "template_mask")}
        xfm = register_to_template(
            Path(self.inputs.t1w), optional["brain_mask"], Path(self.inputs.template_t1w),
            optional["template_mask"], Path(runtime.cwd) / "t1w_to_template_",
            seed=self.inputs.seed, quick=self.inputs.quick, nthreads=self.inputs.nthreads or None)
        self._results["t1w_to_template"] = str(xfm.to_template)
        self._results["template_to_t1w"] = str(xfm.to_t1w)
        return runtime


class _TissueSegmentationInputSpec(BaseInterfaceInputSpec):
    t1w = File(exists=True, mandatory=True, desc="bias-corrected T1w (3D)")
    brain_mask = File(exists=True, mandatory=True, desc="brain mask (CSF included)")
    prior_files = InputMultiObject(File(exists=True), requires=["template_to_t1w"],
                                   desc="[GM, WM, CSF] prior probabilities in template space")
    template_to_t1w = File(exists=True, desc="ANTs transform(s) template → T1w for the priors")
    prior_weight = traits.Range(0.0, 1.0, 0.25, usedefault=True,
                                desc="weight of the priors (0: initialisation only)")
    nthreads = traits.Int(desc="ITK threads (default: ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS)")


class _TissueSegmentationOutputSpec(TraitedSpec):
    probsegs = OutputMultiObject(File(exists=True),
                                 desc="[GM, WM, CSF] probability maps in T1w space (float32)")


class TissueSegmentation(SimpleInterface):
    """GM/WM/CSF probabilities (``core.anat.segment_tissues``, Atropos), from k-means or from
    template priors warped into T1w space (linear)."""

    input_spec = _TissueSegmentationInputSpec
    output_spec = _TissueSegmentationOutputSpec

    def _run_interface(self, runtime):
        img = nib.load(self.inputs.t1w)
        data = np.asarray(img.dataobj, dtype=np.float32).reshape(img.shape[:3])
        mask = np.asarray(nib.load(self.inputs.brain_mask).dataobj).reshape(img.shape[:3]) > 0
        priors = None
        if self.inputs.prior_files:
            if len(self.inputs.prior_files) != len(TISSUES):
                raise ValueError(f"prior_files must be {list(TISSUES)}, got "
                                 f"{len(self.inputs.prior_files)} files")
            xfm = [Path(self.inputs.template_to_t1w)]
            priors = {tissue: apply_transforms(Path(f), Path(self.inputs.t1w), xfm, "linear")
                      for tissue, f in zip(TISSUES, self.inputs.prior_files, strict=True)}
        probs = segment_tissues(data, mask, priors, self.inputs.prior_weight,
                                nthreads=self.inputs.nthreads or None)
        cwd = Path(runtime.cwd)
        self._results["probsegs"] = [
            _save_like(probs[t], img, cwd / f"label-{t}_probseg.nii.gz", np.float32)
            for t in TISSUES]
        return runtime


class _ApplyTransformsInputSpec(BaseInterfaceInputSpec):
    moving = File(exists=True, mandatory=True, desc="3D image to resample (labels or a map)")
    reference = File(exists=True, mandatory=True, desc="image defining the output grid")
    transforms = InputMultiObject(File(exists=True), mandatory=True,
                                  desc="ANTs transforms, antsApplyTransforms order")
    interpolation = traits.Enum("linear", *LABEL_INTERPOLATIONS, usedefault=True,
                                desc="linear for maps; genericLabel/nearestNeighbor for labels")


class _ApplyTransformsOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="resampled image: labels keep their dtype, maps float32")


class ApplyTransforms(SimpleInterface):
    """Resample an image through ANTs transforms (``core.anat.apply_transforms``): atlases
    template → T1w, parametric maps T1w → template (NaN stays NaN, without spreading)."""

    input_spec = _ApplyTransformsInputSpec
    output_spec = _ApplyTransformsOutputSpec

    def _run_interface(self, runtime):
        moving = Path(self.inputs.moving)
        data = apply_transforms(moving, Path(self.inputs.reference),
                                [Path(t) for t in self.inputs.transforms],
                                self.inputs.interpolation)
        labels = self.inputs.interpolation in LABEL_INTERPOLATIONS
        dtype = nib.load(moving).get_data_dtype().type if labels else np.float32
        name = moving.name.removesuffix(".gz").removesuffix(".nii")
        self._results["out_file"] = _save_like(
            data, nib.load(self.inputs.reference), Path(runtime.cwd) / f"{name}_warped.nii.gz",
            dtype)
        return runtime
