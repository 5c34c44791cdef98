"""Template files from TemplateFlow, through ``TEMPLATEFLOW_HOME`` (issue 4).

Templates and template-space atlases are read from a local TemplateFlow tree (the directory
in ``TEMPLATEFLOW_HOME``, or ``home=``): ``tpl-<name>/tpl-<name>_res-<r>_…``. A file that is
present is used as is, without any network access. A file that is only listed (TemplateFlow's
skeleton keeps zero-byte placeholders) or absent is fetched by the ``templateflow`` client
when the network allows; otherwise :func:`template_file` raises an :class:`InputError` that
names the missing file and the pre-fetch command. The Docker image pre-fetches
:data:`REQUIRED` at build time with ``scripts/prefetch_templates.py``; set
``TEMPLATEFLOW_AUTOUPDATE=0`` so that the client never tries to refresh its skeleton.
"""

from __future__ import annotations

import io
import os
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from ketpet_bids.errors import InputError

DEFAULT_TEMPLATE = "MNI152NLin2009cAsym"

ATLAS_QUERIES: dict[str, dict[str, str | int | None]] = {
    "aseg": {"resolution": 1, "suffix": "dseg", "segmentation": "aseg"},
    "schaefer": {"resolution": 1, "suffix": "dseg", "atlas": "Schaefer2018",
                 "desc": "100Parcels7Networks"},
    "massp": {"resolution": 1, "suffix": "dseg", "atlas": "MASSP20"},
}
"""The 1 mm template atlases the default atlas is built from (``core.atlas``), by source:
FreeSurfer aseg (``_res-01_seg-aseg_dseg``), Schaefer 2018 and MASSP 2.0."""
SCHAEFER_TABLE_QUERY: dict[str, str | int | None] = {
    **ATLAS_QUERIES["schaefer"], "resolution": None}
"""The Schaefer label table (``.tsv``; it has no ``res-`` entity)."""

REQUIRED: tuple[dict[str, str | int | None], ...] = (
    {"resolution": 1, "suffix": "T1w", "desc": None},
    {"resolution": 1, "suffix": "mask", "desc": "brain"},
    {"resolution": 1, "suffix": "probseg", "label": "GM"},
    {"resolution": 1, "suffix": "probseg", "label": "WM"},
    {"resolution": 1, "suffix": "probseg", "label": "CSF"},
    {"resolution": 2, "suffix": "T1w", "desc": None},
    {"resolution": 2, "suffix": "mask", "desc": "brain"},
    *ATLAS_QUERIES.values(),
    SCHAEFER_TABLE_QUERY,
)
"""Files of :data:`DEFAULT_TEMPLATE` the pipeline uses (queries for ``templateflow``):
the 1 mm T1w, brain mask and tissue priors (registration, Atropos), the 2 mm T1w and mask
(template-space maps), and the atlases of the default atlas (:data:`ATLAS_QUERIES`) with the
Schaefer label table. The pre-fetch also takes each query's ``.tsv`` where TemplateFlow has
one (MASSP 2.0's ``_res-01_atlas-MASSP20_dseg.tsv``)."""

PREFETCH_COMMAND = "python scripts/prefetch_templates.py"


def templateflow_home(home: Path | None = None) -> Path:
    """The TemplateFlow directory used: ``home``, else ``$TEMPLATEFLOW_HOME``, else the
    client's default (``~/.cache/templateflow``)."""
    if home is not None:
        return Path(home).absolute()
    from templateflow.conf.env import get_templateflow_home

    return Path(os.environ.get("TEMPLATEFLOW_HOME") or get_templateflow_home()).absolute()


def template_file(template: str = DEFAULT_TEMPLATE, *, home: Path | None = None,
                  extension: str = ".nii.gz", **query: str | int | None) -> Path:
    """Path of exactly one file of ``template`` in the local TemplateFlow tree.

    Parameters
    ----------
    template
        TemplateFlow identifier without ``tpl-``.
    home
        TemplateFlow directory (default: see :func:`templateflow_home`).
    extension
        File extension (``.nii.gz`` images, ``.tsv`` label tables).
    **query
        TemplateFlow entities (``resolution=1, suffix="T1w", desc=None`` …; ``None`` means
        the entity must be absent).

    Raises
    ------
    InputError
        Naming the file when it is missing and cannot be fetched (offline), or the query
        when it matches no file or several.
    """
    from templateflow.client import TemplateFlowClient  # lazy: indexes with pybids

    root = templateflow_home(home)
    client = TemplateFlowClient(root=root, autoupdate=False)
    hint = (f"pre-fetch the templates on a machine with network access: "
            f"TEMPLATEFLOW_HOME={root} {PREFETCH_COMMAND}")
    matches = client.ls(template, extension=extension, **query) if root.is_dir() else []
    described = ", ".join(f"{k}={v}" for k, v in query.items())
    if len(matches) != 1:
        raise InputError(root / f"tpl-{template}",
                         f"{len(matches)} files match {described}, extension={extension}",
                         hint)
    path = Path(matches[0])
    if path.is_file() and path.stat().st_size > 0:
        return path
    try:
        with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
            client.get(template, extension=extension, **query)  # it prints "Downloading …"
    except Exception as err:  # noqa: BLE001 - requests/OS/RuntimeError all mean "offline"
        raise InputError(path, f"template file missing and cannot be downloaded "
                         f"({type(err).__name__})", hint) from None
    return path
