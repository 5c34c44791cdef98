"""PET sidecar → typed metadata (seconds, Bq), and image checks done before processing.

Every problem is an :class:`~ketpet_bids.errors.InputError` naming the file and the field, so
the command line can stop with exit code 2 and one line, before any node runs.

Times stay on the sidecar's clock (seconds relative to ``TimeZero``). Images are brought to
Bq/mL decay-corrected to ``InjectionStart`` (0 when absent) by :meth:`PetMetadata.scale_factors`.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ketpet_bids.core import units
from ketpet_bids.errors import InputError

#: Sidecar fields processing cannot do without (``ImageDecayCorrectionTime`` is also needed
#: when ``ImageDecayCorrected`` is true).
REQUIRED_FIELDS = ("FrameTimesStart", "FrameDuration", "Units", "TracerRadionuclide",
                   "ImageDecayCorrected")

#: Frames may overlap by this much (s) to tolerate rounding of times in sidecars.
FRAME_TOLERANCE_S = 0.01


@dataclass(frozen=True, eq=False)
class PetMetadata:
    """Typed PET sidecar: seconds, Bq.

    Attributes
    ----------
    frame_start, frame_duration
        Shape ``(T,)``, float64 seconds (relative to ``TimeZero``); sorted, durations > 0,
        frames do not overlap.
    units
        ``Units`` as written in the sidecar.
    to_bq_per_ml
        Factor from ``units`` to Bq/mL.
    decay_corrected
        ``ImageDecayCorrected``.
    decay_correction_time
        ``ImageDecayCorrectionTime`` (s); NaN when the image is not decay corrected and the
        sidecar does not give it.
    half_life
        Of the radionuclide (s).
    radionuclide
        Canonical spelling, e.g. ``"C11"``.
    tracer_name
        ``TracerName`` ("" when absent).
    injected_radioactivity_bq
        ``InjectedRadioactivity`` in Bq, or None when absent.
    raw
        The sidecar as read.
    injection_start
        ``InjectionStart`` (s, 0 when absent): the time images are decay-corrected to.
    """

    frame_start: np.ndarray
    frame_duration: np.ndarray
    units: str
    to_bq_per_ml: float
    decay_corrected: bool
    decay_correction_time: float
    half_life: float
    radionuclide: str
    tracer_name: str
    injected_radioactivity_bq: float | None
    raw: dict = field(repr=False)
    injection_start: float = 0.0

    @property
    def n_frames(self) -> int:
        """Number of frames ``T``."""
        return int(self.frame_start.size)

    @property
    def frame_end(self) -> np.ndarray:
        """Shape ``(T,)``, seconds."""
        return self.frame_start + self.frame_duration

    @property
    def frame_mid(self) -> np.ndarray:
        """Shape ``(T,)``, seconds."""
        return self.frame_start + 0.5 * self.frame_duration

    def scale_factors(self) -> np.ndarray:
        """Per-frame factors turning the image into Bq/mL decay-corrected to injection start.

        Returns
        -------
        numpy.ndarray
            Shape ``(T,)``: ``to_bq_per_ml`` × the decay factors of
            :func:`ketpet_bids.core.units.decay_correction_factors`.
        """
        return self.to_bq_per_ml * units.decay_correction_factors(
            self.frame_start, self.frame_duration, self.half_life,
            decay_corrected=self.decay_corrected,
            decay_correction_time=self.decay_correction_time,
            reference_time=self.injection_start)

    def to_dict(self) -> dict[str, Any]:
        """The typed fields (not ``raw``) as plain JSON types (NaN → None)."""
        def plain(value: Any) -> Any:
            if isinstance(value, np.ndarray):
                return [float(v) for v in value]
            if isinstance(value, float) and math.isnan(value):
                return None
            return value
        return {name: plain(getattr(self, name)) for name in self.__dataclass_fields__
                if name != "raw"}


def read_pet_metadata(sidecar: Path, *, image_path: Path | None = None) -> PetMetadata:
    """Read and check a PET sidecar.

    Parameters
    ----------
    sidecar
        The ``_pet.json`` file.
    image_path
        The PET image; when given it is checked with :func:`check_image` and its number of
        frames (4th dimension, 1 for a 3D image) must equal the sidecar's.

    Returns
    -------
    PetMetadata

    Raises
    ------
    InputError
        Missing/unreadable sidecar; missing or invalid ``FrameTimesStart``, ``FrameDuration``,
        ``Units``, ``TracerRadionuclide``, ``ImageDecayCorrected``,
        ``ImageDecayCorrectionTime``, ``InjectedRadioactivity[Units]``; frame arrays of
        different length, negative or zero durations, unsorted or overlapping frames; an
        image that is unreadable or has another number of frames.
    """
    sidecar = Path(sidecar)
    raw = _load_json(sidecar)
    missing = [name for name in REQUIRED_FIELDS if name not in raw]
    if missing:
        raise InputError(sidecar, f"required field {missing[0]} is missing"
                         + (f" (also {', '.join(missing[1:])})" if missing[1:] else ""),
                         "add it to the PET sidecar as the BIDS-PET specification describes")
    start = _frame_array(raw, "FrameTimesStart", sidecar)
    duration = _frame_array(raw, "FrameDuration", sidecar)
    _check_frames(start, duration, sidecar)
    to_bq_per_ml = _converted(units.activity_concentration_factor, raw, "Units", sidecar)
    half_life = _converted(units.half_life_seconds, raw, "TracerRadionuclide", sidecar)
    decay_corrected = raw["ImageDecayCorrected"]
    if not isinstance(decay_corrected, bool):
        raise InputError(sidecar, f"ImageDecayCorrected must be true or false, not "
                         f"{decay_corrected!r}", "write a JSON boolean")
    decay_time = _number(raw, "ImageDecayCorrectionTime", sidecar, required=decay_corrected)
    meta = PetMetadata(
        frame_start=start, frame_duration=duration, units=str(raw["Units"]),
        to_bq_per_ml=to_bq_per_ml, decay_corrected=decay_corrected,
        decay_correction_time=decay_time, half_life=half_life,
        radionuclide=units.canonical_radionuclide(raw["TracerRadionuclide"]),
        tracer_name=str(raw.get("TracerName", "")),
        injected_radioactivity_bq=_injected_bq(raw, sidecar), raw=raw,
        injection_start=0.0 if "InjectionStart" not in raw
        else _number(raw, "InjectionStart", sidecar, required=True))
    if image_path is not None:
        shape = check_image(Path(image_path), what="PET image")
        n_image = shape[3] if len(shape) == 4 else 1
        if n_image != meta.n_frames:
            raise InputError(sidecar, f"FrameDuration and FrameTimesStart have {meta.n_frames} "
                             f"entries but the image {Path(image_path).name} has {n_image} "
                             "frames", "make the sidecar's frame arrays match the image")
    return meta


def check_image(path: Path, *, what: str = "image") -> tuple[int, ...]:
    """Check that a NIfTI image is readable and complete; return its shape.

    The header is read with nibabel; the data are not loaded, but a gzip stream is read
    through once (constant memory, ~0.5 s per 100 MB) so that a truncated or corrupt file is
    reported here rather than in the middle of processing.

    Parameters
    ----------
    path
        ``.nii`` or ``.nii.gz`` file.
    what
        How to call the image in messages, e.g. ``"PET image"``.

    Returns
    -------
    tuple of int
        The image shape; 3D or 4D.

    Raises
    ------
    InputError
        Missing, empty, unreadable, truncated or corrupt file, or not 3D/4D.
    """
    import nibabel as nb

    hint = "replace it with the full image (re-convert it from the scanner data)"
    if path.is_symlink() and not path.exists():
        raise InputError(path, f"{what} is a broken symbolic link (to {os.readlink(path)}), "
                         "e.g. a DataLad/git-annex file whose content was not fetched",
                         "fetch the content (datalad get / git annex get) or replace the link")
    if not path.is_file():
        raise InputError(path, f"{what} not found", hint)
    if path.stat().st_size == 0:
        raise InputError(path, f"{what} is empty (0 bytes)", hint)
    try:
        img = nb.load(path)
        proxy = img.dataobj  # an ArrayProxy: offset and dtype of the data in the file
        expected = int(proxy.offset) + int(np.prod(img.shape, dtype=np.int64)) * np.dtype(
            proxy.dtype).itemsize
    except Exception as exc:  # nibabel raises many exception types for bad files
        raise InputError(path, f"{what} cannot be read as NIfTI ({type(exc).__name__}: {exc})",
                         hint) from None
    try:
        size = _gzip_payload_size(path) if _is_gzip(path) else path.stat().st_size
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(path, f"{what} is corrupt: its gzip stream cannot be read "
                         f"({type(exc).__name__}: {exc})", hint) from None
    if size < expected:
        raise InputError(path, f"{what} is truncated: {size} bytes of data where the header "
                         f"({'x'.join(map(str, img.shape))}) needs {expected}", hint)
    if len(img.shape) not in (3, 4):
        raise InputError(path, f"{what} has {len(img.shape)} dimensions "
                         f"({'x'.join(map(str, img.shape))}); expected 3 or 4")
    return tuple(int(n) for n in img.shape)


def check_pet_values(path: Path) -> None:
    """Check the voxel values of a PET image that :func:`check_image` accepted.

    Rejected, because the program would have to guess what they mean: NaN or ±Inf values
    anywhere (a failed reconstruction or conversion), and a frame of zeros after a frame with
    data (a lost frame: activity cannot vanish within a scan). Frames of zeros at the start,
    before the tracer arrives, are accepted.

    Parameters
    ----------
    path
        3D or 4D PET NIfTI, read one frame at a time (memory of one frame).

    Raises
    ------
    InputError
        Naming the image, the number of bad values and the first frame concerned.
    """
    import nibabel as nb

    image_class = type(nb.load(path))  # NIfTI-1 or NIfTI-2
    opener = gzip.open if _is_gzip(path) else open
    with opener(path, "rb") as stream:  # one pass through the file, one frame in memory
        img = image_class.from_stream(stream)
        n_frames = img.shape[3] if len(img.shape) == 4 else 1
        frames = ((img.dataobj[..., t] if len(img.shape) == 4 else img.dataobj)
                  for t in range(n_frames))
        counts = np.array([(np.count_nonzero(~np.isfinite(f)), np.count_nonzero(f))
                           for f in map(np.asanyarray, frames)])
    nonfinite, nonzero = counts[:, 0], counts[:, 1]
    if nonfinite.any():
        bad = np.flatnonzero(nonfinite)
        raise InputError(path, f"PET image has {int(nonfinite.sum())} NaN/Inf voxel values in "
                         f"{bad.size} frame(s), the first in frame {bad[0]}",
                         "write 0 where there is no data, in the reconstruction or conversion")
    if not nonzero.any():
        raise InputError(path, "PET image is all zeros", "check the conversion from the scanner")
    empty = np.flatnonzero(nonzero == 0)
    late = empty[empty > np.flatnonzero(nonzero)[0]]
    if late.size:
        raise InputError(path, f"frame {late[0]} of the PET image is all zeros although earlier "
                         "frames have data (a lost frame)",
                         "re-reconstruct it, or remove it from the image and from "
                         "FrameTimesStart/FrameDuration")


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def _gzip_payload_size(path: Path) -> int:
    """Uncompressed size of a gzip file, read through once (checks the CRC at the end)."""
    total = 0
    with gzip.open(path, "rb") as stream:
        while chunk := stream.read(1 << 22):
            total += len(chunk)
    return total


def _load_json(sidecar: Path) -> dict:
    if not sidecar.is_file():
        raise InputError(sidecar, "PET sidecar not found",
                         "add the JSON sidecar next to the PET image, with the same name")
    try:
        raw = json.loads(sidecar.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(sidecar, f"not valid JSON ({exc})", "fix the JSON syntax") from None
    if not isinstance(raw, dict):
        raise InputError(sidecar, "the sidecar must hold a JSON object {...}")
    return raw


def _frame_array(raw: dict, name: str, sidecar: Path) -> np.ndarray:
    """A list of finite numbers (a single number is taken as one frame)."""
    value = raw[name]
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, int | float) and not isinstance(v, bool)
                             and math.isfinite(v) for v in values):
        raise InputError(sidecar, f"{name} must be a non-empty list of numbers (seconds), "
                         f"not {json.dumps(value)[:60]}")
    return np.asarray(values, dtype=float)


def _check_frames(start: np.ndarray, duration: np.ndarray, sidecar: Path) -> None:
    if start.size != duration.size:
        raise InputError(sidecar, f"FrameTimesStart has {start.size} entries but FrameDuration "
                         f"has {duration.size}", "give one start and one duration per frame")
    bad = np.flatnonzero(duration <= 0)
    if bad.size:
        raise InputError(sidecar, f"FrameDuration[{bad[0]}] = {duration[bad[0]]:g} s; durations "
                         "must be positive")
    unsorted = np.flatnonzero(np.diff(start) <= 0)
    if unsorted.size:
        i = unsorted[0]
        raise InputError(sidecar, f"FrameTimesStart is not increasing: frame {i + 1} starts at "
                         f"{start[i + 1]:g} s, frame {i} at {start[i]:g} s",
                         "list frames in acquisition order")
    overlap = np.flatnonzero(start[1:] < start[:-1] + duration[:-1] - FRAME_TOLERANCE_S)
    if overlap.size:
        i = overlap[0]
        hint = "FrameDuration holds each frame's length in seconds"
        if np.allclose(duration[:-1], start[1:]):
            hint += "; these values look like frame end times — use end minus start"
        raise InputError(sidecar, f"frames overlap: frame {i} ends at "
                         f"{start[i] + duration[i]:g} s (FrameTimesStart + FrameDuration) after "
                         f"frame {i + 1} starts at {start[i + 1]:g} s", hint)


def _converted(convert: Any, raw: dict, name: str, sidecar: Path) -> float:
    """``convert(raw[name])``, turning its ValueError into an InputError naming the field."""
    try:
        return float(convert(raw[name]))
    except ValueError as exc:
        raise InputError(sidecar, f"{name}: {exc}") from None


def _number(raw: dict, name: str, sidecar: Path, *, required: bool) -> float:
    """A finite number field (s); NaN when absent and not required."""
    if name not in raw:
        if required:
            raise InputError(sidecar, f"required field {name} is missing",
                             f"add {name} (seconds relative to TimeZero)")
        return math.nan
    value = raw[name]
    if (not isinstance(value, int | float) or isinstance(value, bool)
            or not math.isfinite(value)):
        raise InputError(sidecar, f"{name} must be a number (seconds), not {value!r}")
    return float(value)


def _injected_bq(raw: dict, sidecar: Path) -> float | None:
    if "InjectedRadioactivity" not in raw:
        return None
    amount = _number(raw, "InjectedRadioactivity", sidecar, required=True)
    if "InjectedRadioactivityUnits" not in raw:
        raise InputError(sidecar, "InjectedRadioactivity is given without "
                         "InjectedRadioactivityUnits", "add the unit, e.g. \"MBq\"")
    return amount * _converted(units.activity_factor, raw, "InjectedRadioactivityUnits", sidecar)
