"""Thin nipype interfaces for kinetic modelling: load files → call ``core.kinetics`` → save.

- :class:`FitRegionalModel`: one model on a regional TAC table → ``_kinpar``-shaped TSV
  (``region`` then parameters then ``r2 aic n_frames_used``) and a JSON of model settings;
  for fitted (curve) models also the fit itself in long format (:data:`FIT_COLUMNS`: the
  fitted variable, observed and predicted, per region and used frame) with a JSON describing
  its columns. Window models (SUV, SUVR) fit nothing and write no fit table.
- :class:`ModelMapT1w`: voxelwise maps of a model in PET space, resampled into the T1w grid.
  Window models (SUV, SUVR) stream the 4D image frame by frame; fitted models (Patlak, Logan,
  SRTM, SRTM2, MRTM, MRTM2) fit every voxel with a positive time integral, in chunks, after
  settling t* and k2′ on the regional TAC table so that maps and regional fits share them.

Plasma input comes from the run's ``_blood.tsv`` files (``core.blood``), with the decay state
and half-life of the PET taken from ``pet_metadata`` (the ``metadata`` output of PreparePET:
``half_life``, ``source_decay_corrected``, ``source_decay_correction_time``,
``injection_start``).
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from ketpet_bids.core.blood import plasma_input
from ketpet_bids.core.kinetics.base import (
    Frames,
    ModelInputs,
    WindowModel,
    weighted_frame_mean,
    window_weights,
)
from ketpet_bids.core.kinetics.fitting import CurveFit, CurveModel
from ketpet_bids.core.kinetics.graphical import GraphicalModel
from ketpet_bids.core.kinetics.registry import get_model
from ketpet_bids.core.kinetics.timecourse import C11_HALF_LIFE_S
from ketpet_bids.core.motion import resample
from ketpet_bids.core.tacs import read_matrix
from ketpet_bids.errors import InputError

TIME_COLUMNS = ("frame_start", "frame_end")
FIT_COLUMNS = ("region", "frame_start", "frame_end", "x", "observed", "predicted", "weight")
"""Columns of the long-format model-fit table (registry key ``model_fit``)."""
#: Meaning of ``x`` and of the fitted variable of the graphical plots (other curve models fit
#: the tissue TAC against frame mid-time).
PLOT_AXES = {"logan": ("Logan abscissa: integral of the input (plus C_R/k2' with a reference "
                       "and k2') divided by C_T", "s",
                       "Logan ordinate: integral of C_T divided by C_T", "s"),
             "patlak": ("Patlak abscissa: integral of the input divided by the input", "s",
                        "Patlak ordinate: C_T divided by the input", "unitless")}
TAC_AXES = ("frame mid-time", "s", "tissue activity (frame mean)", "Bq/mL")


def read_tac_table(path: str | Path) -> tuple[Frames, list[str], np.ndarray]:
    """Read a TAC TSV: ``frame_start frame_end`` (s) then one column per region (Bq/mL).

    Returns
    -------
    frames : Frames
    regions : list of str
    tacs : np.ndarray, shape (n_regions, n_frames), float64
    """
    table = pd.read_csv(path, sep="\t", na_values=["n/a"])
    missing = [c for c in TIME_COLUMNS if c not in table.columns]
    if missing or table.shape[1] < 3:
        raise InputError(path, f"needs columns {list(TIME_COLUMNS)} and at least one region "
                         f"(found {list(table.columns)})")
    frames = Frames.from_lists(table["frame_start"], table["frame_end"] - table["frame_start"])
    regions = [c for c in table.columns if c not in TIME_COLUMNS]
    return frames, regions, table[regions].to_numpy(dtype=float).T


def read_reference(path: str | Path | None, frames: Frames) -> np.ndarray | None:
    """The single reference TAC (Bq/mL) of a reference TSV, checked against ``frames``."""
    if not path:
        return None
    ref_frames, _, tacs = read_tac_table(path)
    if ref_frames.start.size != frames.start.size or not np.allclose(
            ref_frames.start, frames.start, atol=1e-3):
        raise InputError(path, "frame timing differs from the PET/tissue TACs",
                         "use the reference TAC of the same run")
    return tacs[0]


def _optional_float(value: float | None) -> float | None:
    return None if value is None or not isdefined(value) else float(value)


class _ModelSpec(BaseInterfaceInputSpec):
    model = traits.Str(mandatory=True, desc="registry name of the model")
    input_kind = traits.Enum("default", "plasma", "reference", "none", usedefault=True,
                             desc="input of the model (default: its preferred one)")
    ref_tacs_tsv = File(exists=True, desc="reference TAC table (frame_start frame_end ref)")
    ref_region = traits.Str("wholebrain", usedefault=True, desc="reference region name")
    window = traits.Tuple(traits.Float, traits.Float, mandatory=True,
                          desc="averaging window (start, end) in s")
    injected_radioactivity_bq = traits.Either(None, traits.Float, default=None, usedefault=True)
    body_weight_kg = traits.Either(None, traits.Float, default=None, usedefault=True)
    blood_files = traits.List(File(exists=True), value=[], usedefault=True,
                              desc="_blood.tsv recordings of the run")
    pet_metadata = traits.Dict(value={}, usedefault=True,
                               desc="PreparePET metadata (half-life, decay state)")
    tstar = traits.Either(None, traits.Float, default=None, usedefault=True,
                          desc="start of the fitted range (s); None: found or all frames")
    k2prime = traits.Either(None, traits.Float, default=None, usedefault=True,
                            desc="reference efflux k2' (1/min); None: estimated or omitted")
    weighting = traits.Enum("duration_decay", "uniform", usedefault=True, desc="frame weights")


def _model(spec: _ModelSpec):
    return get_model(spec.model, None if spec.input_kind == "default" else spec.input_kind)


def _model_inputs(spec: _ModelSpec, frames: Frames, input_kind: str
                  ) -> tuple[ModelInputs, dict]:
    """ModelInputs of a run, and the blood settings for the sidecar ({} without plasma)."""
    meta = spec.pet_metadata or {}
    half_life = float(meta.get("half_life") or C11_HALF_LIFE_S)
    plasma, blood_settings = None, {}
    if input_kind == "plasma":
        decay_time = meta.get("source_decay_correction_time")
        plasma, blood_settings = plasma_input(
            list(spec.blood_files), scan_end_s=float(frames.end[-1]), half_life_s=half_life,
            decay_corrected=bool(meta.get("source_decay_corrected", True)),
            decay_correction_time=float(decay_time) if decay_time is not None else 0.0,
            injection_start=float(meta.get("injection_start") or 0.0))
    inputs = ModelInputs(
        reference_tac=read_reference(spec.ref_tacs_tsv if isdefined(spec.ref_tacs_tsv)
                                     else None, frames),
        reference_name=spec.ref_region, plasma=plasma,
        injected_radioactivity_bq=_optional_float(spec.injected_radioactivity_bq),
        body_weight_kg=_optional_float(spec.body_weight_kg),
        window=tuple(spec.window), tstar=_optional_float(spec.tstar),
        weighting=spec.weighting, half_life_s=half_life,
        k2prime=_optional_float(spec.k2prime))
    return inputs, blood_settings


class _FitRegionalInputSpec(_ModelSpec):
    tacs_tsv = File(exists=True, mandatory=True, desc="regional TAC table")


class _FitRegionalOutputSpec(TraitedSpec):
    kinpar_tsv = File(exists=True, desc="region, parameters, r2, aic, n_frames_used")
    kinpar_json = File(exists=True, desc="model settings")
    fit_tsv = File(exists=True, desc="long-format fit table (curve models only)")
    fit_json = File(exists=True, desc="columns of the fit table (curve models only)")


class FitRegionalModel(SimpleInterface):
    """Fit one kinetic model to every region of a TAC table (and keep the fit of curve
    models: ``fit_tsv``/``fit_json`` stay undefined for window models)."""

    input_spec = _FitRegionalInputSpec
    output_spec = _FitRegionalOutputSpec

    def _run_interface(self, runtime):
        model = _model(self.inputs)
        frames, regions, tacs = read_tac_table(self.inputs.tacs_tsv)
        inputs, blood_settings = _model_inputs(self.inputs, frames, model.input_kind)
        inputs = model.prepare(tacs, frames, inputs)
        out_tsv = Path(runtime.cwd) / f"model-{model.name}_kinpar.tsv"
        if isinstance(model, CurveModel):
            fit = model.fit_curves(tacs, frames, inputs)
            table = pd.DataFrame({**{p: fit.params[p] for p in model.parameters},
                                  **fit.diagnostics()})
            fit_tsv = out_tsv.with_name(f"model-{model.name}_desc-fit_tacs.tsv")
            fit_table(model, fit, tacs, frames, inputs, regions).to_csv(
                fit_tsv, sep="\t", index=False, na_rep="n/a", float_format="%.8g")
            fit_json = fit_tsv.with_suffix(".json")
            fit_json.write_text(json.dumps(fit_sidecar(model), indent=2))
            self._results.update(fit_tsv=str(fit_tsv), fit_json=str(fit_json))
        else:
            table = model.fit_regional(tacs, frames, inputs)
        table.insert(0, "region", regions)
        table.to_csv(out_tsv, sep="\t", index=False, na_rep="n/a", float_format="%.6g")
        out_json = out_tsv.with_suffix(".json")
        out_json.write_text(json.dumps({**model.settings(frames, inputs), **blood_settings},
                                       indent=2))
        self._results.update(kinpar_tsv=str(out_tsv), kinpar_json=str(out_json))
        return runtime


def fit_table(model: CurveModel, fit: CurveFit, tacs: np.ndarray, frames: Frames,
              inputs: ModelInputs, regions: list[str]) -> pd.DataFrame:
    """The fit of every region in long format (:data:`FIT_COLUMNS`), one row per used frame.

    The used frames are the last ``n_used`` frames (every model fits from t* on, or all
    frames). ``x`` is the graphical plot's abscissa for Logan/Patlak and the frame mid-time
    (s) otherwise; ``observed``/``predicted`` are the fitted variable and the model's
    prediction of it, ``weight`` the least-squares weight of the frame.

    Parameters
    ----------
    model, fit
        The model and its :class:`~ketpet_bids.core.kinetics.fitting.CurveFit` of ``tacs``.
    tacs : np.ndarray, shape (n_regions, n_frames)
        The fitted TACs (Bq/mL).
    frames, inputs
        Frame timing (s) and the prepared model inputs.
    regions
        ``n_regions`` names.

    Returns
    -------
    pandas.DataFrame
        ``n_regions × n_used`` rows, regions in input order, frames in time order.
    """
    n_regions, n_used = fit.observed.shape
    used = slice(frames.start.size - n_used, None)
    if isinstance(model, GraphicalModel):
        x = np.broadcast_to(model.plot(tacs, frames, inputs)[0][:, used], fit.observed.shape)
    else:
        x = np.broadcast_to((frames.start + frames.end)[used] / 2.0, fit.observed.shape)
    return pd.DataFrame({
        "region": np.repeat(np.asarray(regions, dtype=object), n_used),
        "frame_start": np.tile(frames.start[used], n_regions),
        "frame_end": np.tile(frames.end[used], n_regions),
        "x": x.ravel(), "observed": fit.observed.ravel(), "predicted": fit.predicted.ravel(),
        "weight": np.tile(fit.weights, n_regions)})


def fit_sidecar(model: CurveModel) -> dict:
    """BIDS column descriptions of a fit table (units of ``x`` and the fitted variable)."""
    x_desc, x_unit, y_desc, y_unit = PLOT_AXES.get(model.name, TAC_AXES)
    return {"Model": model.name, "Input": model.input_kind,
            "region": {"Description": "region name (column of the TAC table)"},
            "frame_start": {"Description": "frame start", "Units": "s"},
            "frame_end": {"Description": "frame end", "Units": "s"},
            "x": {"Description": x_desc, "Units": x_unit},
            "observed": {"Description": f"fitted variable: {y_desc}", "Units": y_unit},
            "predicted": {"Description": "model prediction of the fitted variable",
                          "Units": y_unit},
            "weight": {"Description": "least-squares weight of the frame (relative)"}}


class _MapInputSpec(_ModelSpec):
    pet_file = File(exists=True, mandatory=True, desc="4D PET in PET space (Bq/mL)")
    frame_start = traits.List(traits.Float, mandatory=True, desc="frame starts (s)")
    frame_duration = traits.List(traits.Float, mandatory=True, desc="frame durations (s)")
    pet_to_t1w_matrix = File(exists=True, mandatory=True, desc="4x4 RAS matrix (.txt/.npy)")
    t1w_ref = File(exists=True, mandatory=True, desc="image defining the T1w grid")
    tacs_tsv = File(exists=True, desc="regional TAC table (settles t* and k2' of fitted "
                                      "models; the voxels' mean curve is used without it)")


class _MapOutputSpec(TraitedSpec):
    out_files = traits.List(File(exists=True), desc="one T1w-space map per model parameter")
    params = traits.List(traits.Str, desc="parameter of each map")


class ModelMapT1w(SimpleInterface):
    """Voxelwise maps of one model in T1w space (float32; non-finite values written as 0)."""

    input_spec = _MapInputSpec
    output_spec = _MapOutputSpec

    def _run_interface(self, runtime):
        model = _model(self.inputs)
        frames = Frames.from_lists(self.inputs.frame_start, self.inputs.frame_duration)
        inputs, _ = _model_inputs(self.inputs, frames, model.input_kind)
        pet = nib.load(self.inputs.pet_file, keep_file_open=True)
        n_frames = pet.shape[3] if pet.ndim == 4 else 1
        if n_frames != frames.start.size:
            raise InputError(self.inputs.pet_file, f"{n_frames} frames in the image but "
                             f"{frames.start.size} in the frame timing")
        if isinstance(model, WindowModel):
            weights = window_weights(frames, inputs.window)
            stream = ((i, pet.dataobj[..., i] if pet.ndim == 4 else pet.dataobj)
                      for i in np.flatnonzero(weights))
            maps = model.map_from_mean(weighted_frame_mean(stream, weights), frames, inputs)
        else:
            maps = _fitted_maps(model, pet, frames, inputs, self.inputs.tacs_tsv
                                if isdefined(self.inputs.tacs_tsv) else None)
        t1w = nib.load(self.inputs.t1w_ref)
        matrix = read_matrix(self.inputs.pet_to_t1w_matrix)
        out_files = []
        for param, volume in maps.items():
            volume = np.where(np.isfinite(volume), volume, 0.0).astype(np.float32)
            data = resample(volume, pet.affine, matrix, t1w.shape[:3], t1w.affine, order=1)
            image = nib.Nifti1Image(data, t1w.affine)
            image.set_qform(t1w.affine, code=1)
            image.set_sform(t1w.affine, code=1)
            image.header.set_xyzt_units("mm")
            out = Path(runtime.cwd) / f"model-{model.name}_meas-{param}_mimap.nii.gz"
            image.to_filename(out)
            out_files.append(str(out))
        self._results.update(out_files=out_files, params=list(maps))
        return runtime


def _fitted_maps(model, pet, frames: Frames, inputs: ModelInputs,
                 tacs_tsv: str | None) -> dict[str, np.ndarray]:
    """PET-space maps of a fitted model; voxels without positive time integral get NaN."""
    data = np.asarray(pet.dataobj, dtype=np.float32).reshape(-1, frames.start.size)
    inside = np.flatnonzero(np.isfinite(data).all(axis=1)
                            & (data @ frames.duration.astype(np.float32) > 0))
    if tacs_tsv is not None:
        _, _, tacs = read_tac_table(tacs_tsv)
        inputs = model.prepare(tacs, frames, inputs)
    fitted = model.fit_voxelwise(data[inside], frames, inputs)
    maps = {}
    for param, values in fitted.items():
        volume = np.full(data.shape[0], np.nan, dtype=np.float32)
        volume[inside] = values
        maps[param] = volume.reshape(pet.shape[:3])
    return maps
