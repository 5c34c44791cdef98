"""Frozen, typed run settings.

:class:`Settings` is built once by the command-line parser and passed by value; nothing reads a
global configuration. It is written next to the outputs as TOML (``sub-<s>/log/settings.toml``) so a
run can be described and repeated. Importing this module has no side effects.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

AnalysisLevel = Literal["participant", "group"]
VoxelwiseSpace = Literal["none", "T1w", "MNI", "both"]


@dataclass(frozen=True)
class Settings:
    """Everything a run needs to know; times in seconds, lengths in mm, memory in GB."""

    bids_dir: Path
    output_dir: Path
    analysis_level: AnalysisLevel
    work_dir: Path
    participant_label: tuple[str, ...] = ()
    session_label: tuple[str, ...] = ()
    tracer_label: tuple[str, ...] = ()
    rec_label: tuple[str, ...] = ()
    run_label: tuple[str, ...] = ()
    bids_filters: dict[str, Any] = field(default_factory=dict)
    nprocs: int = 1
    omp_nthreads: int = 1
    mem_gb: float | None = None
    plugin: str = "MultiProc"
    plugin_config: dict[str, Any] = field(default_factory=dict)
    skip_bids_validation: bool = False
    preset: str | None = None
    hmc_off: bool = False
    hmc_start_time: float = 120.0
    hmc_fwhm: float = 6.0
    coreg: Literal["ants", "identity"] = "ants"
    atlas: tuple[str, ...] = ()
    atlas_space: str | None = None
    fs_subjects_dir: Path | None = None
    anat_derivatives: Path | None = None
    anat_reference: str = "first"
    tac_method: Literal["weighted", "unmix"] = "weighted"
    pvc: tuple[str, ...] = ()
    pvc_psf: tuple[float, ...] = ()
    models: tuple[str, ...] = ("suvr",)
    ref_region: str = "wholebrain"
    suvr_window: tuple[float, float] = (1800.0, 3000.0)
    tstar: float | None = None
    voxelwise: VoxelwiseSpace = "T1w"
    group_spec: Path | None = None
    seed: int = 20261130
    progress: bool = True

    def to_toml(self) -> str:
        """Render the settings as a TOML document (``None`` values are left out)."""
        lines = ["# ketpet_bids run settings", "[settings]"]
        for key, value in asdict(self).items():
            if value is None:
                continue
            lines.append(f"{key} = {_toml_value(value)}")
        return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Path | str):
        return _toml_string(str(value))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{_toml_string(str(k))} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _toml_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'
