"""Nipype interface that writes derivatives under their registry names, atomically."""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from ketpet_bids.bids.naming import output_path, sidecar_path
from ketpet_bids.bids.sink import copy_file, write_json


class _DerivativesSinkInputSpec(BaseInterfaceInputSpec):
    in_files = traits.Either(traits.File(exists=True), traits.List(traits.File(exists=True)),
                             mandatory=True, desc="file(s) to write")
    entities = traits.Either(traits.Dict(), traits.List(traits.Dict()), default={},
                             usedefault=True,
                             desc="entities per file (one dict for all, or one per file)")
    sidecars = traits.Either(None, traits.File(exists=True), traits.List(traits.File()),
                             default=None, usedefault=True,
                             desc="JSON sidecar(s) written beside the file(s)")
    extra_entities = traits.Dict(desc="entities added to every file's entities")
    metadata = traits.Dict(desc="JSON sidecar content written beside every file")
    key = traits.Str(mandatory=True, desc="naming-registry key")
    output_dir = traits.Directory(mandatory=True, desc="derivatives root")
    subject = traits.Str(mandatory=True)
    session = traits.Either(None, traits.Str, default=None, usedefault=True)
    src = traits.Either(None, traits.Str, default=None, usedefault=True,
                        desc="source PET prefix")


class _DerivativesSinkOutputSpec(TraitedSpec):
    out_files = traits.List(traits.File(), desc="written files")


class DerivativesSink(SimpleInterface):
    """Copy result files to their contract names under the output directory.

    Each file is written atomically (temporary file + rename). Always rerun (never cached), so
    a rerun rewrites outputs that a user deleted.
    """

    input_spec = _DerivativesSinkInputSpec
    output_spec = _DerivativesSinkOutputSpec
    always_run = True

    def _run_interface(self, runtime):
        files = _as_list(self.inputs.in_files)
        entities = _broadcast(self.inputs.entities, len(files), "entities")
        sidecars = (_broadcast(self.inputs.sidecars, len(files), "sidecars")
                    if self.inputs.sidecars else [None] * len(files))
        written = []
        for in_file, ents, sidecar in zip(files, entities, sidecars, strict=True):
            rel = output_path(self.inputs.key, subject=self.inputs.subject,
                              session=self.inputs.session, src=self.inputs.src,
                              **{**ents, **(self.inputs.extra_entities or {})})
            target = Path(self.inputs.output_dir) / rel
            written.append(str(copy_file(Path(in_file), target)))
            if sidecar:
                copy_file(Path(sidecar), Path(self.inputs.output_dir) / sidecar_path(rel))
            elif self.inputs.metadata:
                write_json(Path(self.inputs.output_dir) / sidecar_path(rel),
                           self.inputs.metadata)
        self._results["out_files"] = written
        return runtime


def _as_list(value):
    return list(value) if isinstance(value, list | tuple) else [value]


def _broadcast(value, n: int, what: str) -> list:
    values = _as_list(value)
    if len(values) == 1 or n == 0:
        return values[:1] * n
    if len(values) != n:
        raise ValueError(f"{what}: {len(values)} given for {n} files")
    return values
