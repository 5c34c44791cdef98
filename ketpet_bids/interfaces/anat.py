"""Thin nipype interfaces for T1w processing and atlas bookkeeping (numerics in ``core``)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from ketpet_bids.bids.sink import write_tsv, write_with
from ketpet_bids.core.anat import brain_mask, n4_bias_correct
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
            data = n4_bias_correct(data, zooms, mask)
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
