"""All derivative sinks in one place (DESIGN.md §5).

Every sink is a :class:`~ketpet_bids.interfaces.io.DerivativesSink` node whose output name comes
from the naming registry; builders elsewhere never write into the output directory.
"""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from ketpet_bids.interfaces.io import DerivativesSink


def derivatives_sink(
    key: str,
    *,
    output_dir: Path,
    subject: str,
    session: str | None = None,
    src: str | None = None,
    entities: dict[str, str] | list[dict[str, str]] | None = None,
    name: str | None = None,
) -> pe.Node:
    """A sink node for one registry key; connect ``in_files`` (and optionally ``sidecars``,
    ``entities`` or ``metadata``) to it."""
    node = pe.Node(
        DerivativesSink(key=key, output_dir=str(output_dir), subject=subject, session=session,
                        src=src),
        name=name or f"ds_{key}",
        run_without_submitting=True,
    )
    if entities is not None:
        node.inputs.entities = entities
    return node


def pet_sidecar_node(source_file: Path, name: str = "pet_sidecar") -> pe.Node:
    """Node building the JSON sidecar of ``desc-preproc_pet`` from the frame timing."""
    node = pe.Node(
        niu.Function(input_names=["frame_start", "frame_duration", "source"],
                     output_names=["metadata"], function=preproc_pet_metadata),
        name=name,
        run_without_submitting=True,
    )
    node.inputs.source = str(source_file)
    return node


def preproc_pet_metadata(frame_start: list[float], frame_duration: list[float],
                         source: str) -> dict:
    """Sidecar of the motion-corrected PET: frame timing (s), units and provenance.

    Runs inside a nipype Function node, so its annotations use builtins only.
    """
    return {
        "FrameTimesStart": [float(t) for t in frame_start],
        "FrameDuration": [float(d) for d in frame_duration],
        "Units": "Bq/mL",
        "ImageDecayCorrected": True,
        "ImageDecayCorrectionTime": 0,
        "Sources": [source],
        "Description": "Motion-corrected PET in native PET space",
    }
