"""Bring a PET image into the program's conventions: float32 Bq/mL, decay-corrected to the
injection start, finite values, frame timing as lists of seconds."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from nipype import logging
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from ketpet_bids.bids.metadata import read_pet_metadata

LOGGER = logging.getLogger("nipype.interface")


class _PreparePETInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="PET image (3D or 4D NIfTI)")
    sidecar = File(exists=True, mandatory=True, desc="PET JSON sidecar")


class _PreparePETOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="float32 PET in Bq/mL, decay-corrected to injection "
                                      "start; 3D in, 3D out")
    frame_start = traits.List(traits.Float, desc="frame start times (s)")
    frame_duration = traits.List(traits.Float, desc="frame durations (s)")
    metadata = traits.Dict(desc="typed metadata of out_file, plain JSON types")
    n_nonfinite = traits.Int(desc="NaN/Inf voxel values set to 0")


class PreparePET(SimpleInterface):
    """Convert units, decay-correct and sanitise a PET image.

    ``metadata`` describes ``out_file`` (``units`` "Bq/mL", ``decay_corrected`` true,
    ``decay_correction_time`` = injection start) and keeps the sidecar's values under
    ``source_units``, ``source_decay_corrected`` and ``source_decay_correction_time``.
    """

    input_spec = _PreparePETInputSpec
    output_spec = _PreparePETOutputSpec

    def _run_interface(self, runtime):
        import nibabel as nb

        meta = read_pet_metadata(Path(self.inputs.sidecar), image_path=Path(self.inputs.in_file))
        img = nb.load(self.inputs.in_file)
        data = img.get_fdata(dtype=np.float32)
        data *= meta.scale_factors().astype(np.float32).reshape(
            (1,) * 3 + ((meta.n_frames,) if data.ndim == 4 else ()))
        bad = ~np.isfinite(data)
        n_bad = int(np.count_nonzero(bad))
        data[bad] = 0.0
        if n_bad:
            LOGGER.warning("%s: %d NaN/Inf voxel values set to 0", self.inputs.in_file, n_bad)

        header = img.header.copy()
        header.set_data_dtype(np.float32)
        header.set_slope_inter(1.0, 0.0)
        out = img.__class__(data, img.affine, header)
        out_file = Path(runtime.cwd) / (Path(self.inputs.in_file).name.split(".", 1)[0]
                                        + "_bqml.nii.gz")
        out.to_filename(out_file)

        prepared = dataclasses.replace(meta, units="Bq/mL", to_bq_per_ml=1.0,
                                       decay_corrected=True,
                                       decay_correction_time=meta.injection_start)
        self._results.update(
            out_file=str(out_file), frame_start=meta.frame_start.tolist(),
            frame_duration=meta.frame_duration.tolist(), n_nonfinite=n_bad,
            metadata={**prepared.to_dict(), "source_units": meta.units,
                      "source_decay_corrected": meta.decay_corrected,
                      "source_decay_correction_time": meta.to_dict()["decay_correction_time"]})
        return runtime
