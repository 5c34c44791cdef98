"""Writing derivatives atomically.

Every file is written to a hidden temporary file in its final directory and then renamed
(``os.replace``), so a reader never sees a half-written output, a crash leaves no partial file,
and two processes writing the same shared file (``dataset_description.json``) cannot corrupt it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from ketpet_bids import __version__


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    The temporary name keeps the target's extensions (``.nii.gz`` etc.) so that writers that
    infer the format from the name work.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(target.suffixes)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{suffix}",
                               dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_with(target: Path, writer: Callable[[Path], Any]) -> Path:
    """Call ``writer(tmp_path)`` and move the result onto ``target`` atomically."""
    with atomic_path(target) as tmp:
        writer(tmp)
    return Path(target)


def copy_file(source: Path, target: Path) -> Path:
    """Copy ``source`` to ``target`` atomically."""
    return write_with(target, lambda tmp: shutil.copyfile(source, tmp))


def write_json(target: Path, data: dict[str, Any]) -> Path:
    """Write a JSON file (sorted keys, indented) atomically."""
    text = json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n"
    return write_with(target, lambda tmp: tmp.write_text(text))


def write_tsv(target: Path, table: pd.DataFrame) -> Path:
    """Write a tab-separated table without index, ``n/a`` for missing values, atomically."""
    return write_with(
        target, lambda tmp: table.to_csv(tmp, sep="\t", index=False, na_rep="n/a",
                                         float_format="%.6g")
    )


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def dataset_description(source_datasets: list[str], container: dict[str, str] | None = None
                        ) -> dict[str, Any]:
    """The derivatives ``dataset_description.json`` content (BIDS 1.9, DatasetType derivative)."""
    generated: dict[str, Any] = {
        "Name": "ketpet_bids",
        "Version": __version__,
        "CodeURL": "https://github.com/ketpet-bids/ketpet_bids",
    }
    if container:
        generated["Container"] = container
    return {
        "Name": "ketpet_bids PET derivatives",
        "BIDSVersion": "1.9.0",
        "DatasetType": "derivative",
        "GeneratedBy": [generated],
        "SourceDatasets": [{"URL": s} for s in source_datasets],
    }


def container_info() -> dict[str, str] | None:
    """Describe the container we run in, if any (Docker or Apptainer/Singularity)."""
    if os.environ.get("APPTAINER_CONTAINER") or os.environ.get("SINGULARITY_CONTAINER"):
        return {"Type": "apptainer",
                "Tag": os.environ.get("KETPET_IMAGE_TAG", __version__)}
    if Path("/.dockerenv").exists():
        return {"Type": "docker", "Tag": os.environ.get("KETPET_IMAGE_TAG", __version__)}
    return None


def write_dataset_description(output_dir: Path, bids_dir: Path) -> Path:
    """Write ``dataset_description.json`` at the root of the derivatives (safe concurrently)."""
    content = dataset_description([Path(bids_dir).resolve().as_uri()], container_info())
    return write_json(Path(output_dir) / "dataset_description.json", content)
