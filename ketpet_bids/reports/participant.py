"""Per-participant HTML report, assembled from the derivatives on disk.

The report reads every input by its contract name (:mod:`ketpet_bids.bids.naming`), draws what
it finds and says in plain words what it did not find, so it works on partial outputs (a
stage switched off, a crash) and never crashes because one figure cannot be drawn.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ketpet_bids.bids import naming
from ketpet_bids.reports import figures
from ketpet_bids.reports import html as h
from ketpet_bids.reports.boilerplate import CITATION_MD, software_versions

#: Columns of a ``kinpar.tsv`` that are fit diagnostics, not parameters (DESIGN.md §6).
FIT_DIAGNOSTICS = ("r2", "aic", "n_frames_used")
TISSUES = ("GM", "WM", "CSF")


def read_tsv(path: Path) -> pd.DataFrame:
    """Read a BIDS TSV (``n/a`` is missing)."""
    return pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False)


def load_ras(path: Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Load a 3-D NIfTI in RAS+ voxel order.

    Returns
    -------
    data : numpy.ndarray
        Shape (X, Y, Z), float32.
    zooms : tuple of float
        Voxel sizes (mm).
    """
    import nibabel as nib

    image = nib.as_closest_canonical(nib.load(str(path)))
    data = np.asarray(image.dataobj, dtype=np.float32)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ValueError(f"{path.name} is {data.ndim}-D, expected a 3-D image")
    return data, tuple(float(z) for z in image.header.get_zooms()[:3])  # type: ignore


def frame_times_min(sidecar: Path) -> np.ndarray:
    """Frame mid-times (min) from a PET JSON sidecar (``FrameTimesStart``, ``FrameDuration``)."""
    meta = json.loads(sidecar.read_text())
    start = np.asarray(meta["FrameTimesStart"], float)
    return figures.frame_mid_times_min(start, start + np.asarray(meta["FrameDuration"], float))


def figure_path(subject: str, src: str, kind: str, *labels: str | None) -> Path:
    """Figure path from the registry; atlas/pvc/model/parameter labels go into ``desc``.

    >>> figure_path("01", "sub-01_trc-K2", "tacs", "sim", None).as_posix()
    'sub-01/figures/sub-01_trc-K2_desc-tacsSim.svg'
    """
    desc = kind + "".join(lab[:1].upper() + lab[1:] for lab in labels if lab)
    return naming.output_path("figure", subject=subject, src=src, desc=desc, ext=".svg")


class _Page:
    """Collects what one report found, drew, missed and failed on."""

    def __init__(self, output_dir: Path, subject: str) -> None:
        self.root = Path(output_dir)
        self.subject = subject
        self.missing: list[str] = []
        self.problems: list[str] = []

    def find(self, relative: Path, what: str, parts: list[str]) -> Path | None:
        """The absolute path if it exists; else note (in ``parts`` and the summary) it is missing."""
        path = self.root / relative
        if path.is_file():
            return path
        text = f"Not found: {what} ({relative.as_posix()})."
        self.missing.append(text)
        parts.append(h.paragraph(text, "missing"))
        return None

    def draw(self, relative: Path, caption: str, draw: Callable[[Path], object],
             parts: list[str]) -> None:
        """Draw one figure into ``relative``; on failure, report the error in plain words."""
        try:
            draw(self.root / relative)
        except Exception as exc:  # noqa: BLE001 - one bad input must not break the report
            text = f"Could not draw {caption}: {type(exc).__name__}: {exc}"
            self.problems.append(text)
            parts.append(h.paragraph(text, "error"))
            return
        parts.append(h.figure(relative, caption))


def _summary(page: _Page, runs: Sequence[Mapping[str, Any]], settings_toml: str | None) -> str:
    parts = [h.paragraph(f"Participant sub-{page.subject}: {len(runs)} PET run(s).")]
    overview = pd.DataFrame([{"source": r["src"], "session": r.get("session") or "n/a",
                              "atlases": ", ".join(r.get("atlases", ())) or "none",
                              "PVC": ", ".join(r.get("pvc", ())) or "none",
                              "models": ", ".join(map(str, r.get("models", ()))) or "none"}
                             for r in runs])
    if runs:
        parts.append(h.table(overview))
    for run in runs:
        if run.get("metadata"):
            parts += [f"<h3>{h.esc(run['src'])}: metadata</h3>",
                      h.mapping_table(run["metadata"])]
    parts.append("<h3>Settings</h3>")
    parts.append(h.preformatted(settings_toml) if settings_toml
                 else h.paragraph("No settings were given to the report.", "missing"))
    parts += ["<h3>Software versions</h3>", h.mapping_table(software_versions())]
    citation = page.root / CITATION_MD
    if citation.is_file():
        parts += ["<h3>Methods</h3>", h.preformatted(citation.read_text(encoding="utf-8"))]
    return "\n".join(parts)


def _motion(page: _Page, run: Mapping[str, Any], parts: list[str]) -> None:
    ids = {"subject": page.subject, "session": run.get("session"), "src": run["src"]}
    confounds = page.find(naming.output_path("confounds", **ids), "motion parameters", parts)
    if confounds is None:
        return
    sidecar = page.root / naming.sidecar_path(naming.output_path("preproc_pet", **ids))
    times = frame_times_min(sidecar) if sidecar.is_file() else None
    table = read_tsv(confounds)
    fd = table["framewise_displacement"] if "framewise_displacement" in table else pd.Series()
    if fd.notna().any():
        parts.append(h.paragraph(f"Framewise displacement: mean {fd.mean():.3g} mm, "
                                 f"max {fd.max():.3g} mm over {len(table)} frames."))
    page.draw(figure_path(page.subject, run["src"], "motion"),
              f"{run['src']}: translations, rotations and framewise displacement"
              + (" (time from frame mid-points)" if times is not None else " (per frame)"),
              lambda out: figures.plot_motion(table, out, times), parts)


def _coreg(page: _Page, run: Mapping[str, Any], parts: list[str]) -> None:
    ids = {"subject": page.subject, "session": run.get("session"), "src": run["src"]}
    xfm_json = naming.sidecar_path(naming.output_path("pet_to_t1w_xfm", **ids))
    if (page.root / xfm_json).is_file():
        scores = {k: v for k, v in json.loads((page.root / xfm_json).read_text()).items()
                  if isinstance(v, (int, float, str))}
        parts += [h.paragraph(f"Co-registration record ({xfm_json.as_posix()}):"),
                  h.mapping_table(scores)]
    else:
        parts.append(h.paragraph(f"No co-registration record ({xfm_json.as_posix()}): the "
                                 "similarity score is not available.", "missing"))
    t1w = page.find(naming.output_path("t1w_preproc", subject=page.subject), "T1w", parts)
    petref = page.find(naming.output_path("petref", space="T1w", **ids),
                       "PET reference resampled to T1w", parts)
    if t1w is None or petref is None:
        return
    page.draw(figure_path(page.subject, run["src"], "coreg"),
              f"{run['src']}: PET reference contours (30% and 60% of its 99th percentile) "
              "over the T1w",
              lambda out: figures.plot_contours(*_t1w_and(t1w, petref), out), parts)


def _t1w_and(t1w: Path, other: Path) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    anat, zooms = load_ras(t1w)
    return anat, load_ras(other)[0], zooms


def _anatomy(page: _Page, src: str, atlases: Iterable[str]) -> str:
    parts: list[str] = []
    s = page.subject
    t1w = page.find(naming.output_path("t1w_preproc", subject=s), "T1w", parts)
    mask = page.find(naming.output_path("brain_mask", subject=s), "brain mask", parts)
    probsegs = [page.find(naming.output_path("probseg", subject=s, ref=t), f"{t} map", parts)
                for t in TISSUES]
    if t1w is None:
        return "\n".join(parts)
    if mask is not None:
        page.draw(figure_path(s, src, "brainmask"), "Brain mask over the T1w",
                  lambda out: figures.plot_regions(*_t1w_and(t1w, mask), out,
                                                   {1: "brain mask"}), parts)
    if all(p is not None for p in probsegs):
        page.draw(figure_path(s, src, "tissues"),
                  "Tissue classes (most probable class where its probability ≥ 0.5)",
                  lambda out: _draw_tissues(t1w, probsegs, out), parts)  # type: ignore[arg-type]
    for atlas in atlases:
        parts.append(f"<h3>Regions: {h.esc(atlas)}</h3>")
        dseg = page.find(naming.output_path("dseg", subject=s, atlas=atlas),
                         f"{atlas} regions", parts)
        names_tsv = page.find(naming.output_path("dseg_tsv", subject=s, atlas=atlas),
                              f"{atlas} label table", parts)
        names = ({int(i): str(n) for i, n in read_tsv(names_tsv)[["index", "name"]].values}
                 if names_tsv is not None else None)
        if dseg is not None:
            page.draw(figure_path(s, src, "regions", atlas), f"{atlas} regions over the T1w",
                      lambda out, d=dseg, n=names: figures.plot_regions(*_t1w_and(t1w, d), out, n),
                      parts)
        morph = page.find(naming.output_path("morph", subject=s, atlas=atlas),
                          f"{atlas} region volumes", parts)
        if morph is not None:
            parts.append(h.table(read_tsv(morph)))
    return "\n".join(parts)


def _draw_tissues(t1w: Path, probsegs: Sequence[Path], out: Path) -> Path:
    anat, zooms = load_ras(t1w)
    stack = np.stack([load_ras(p)[0] for p in probsegs])
    labels = np.where(stack.max(axis=0) >= 0.5, stack.argmax(axis=0) + 1, 0)
    return figures.plot_regions(anat, labels, zooms, out,
                                {i + 1: t for i, t in enumerate(TISSUES)})


def _variants(run: Mapping[str, Any]) -> list[str | None]:
    """Uncorrected (``None``) then each PVC method of the run."""
    return [None, *run.get("pvc", ())]


def _tacs(page: _Page, run: Mapping[str, Any], parts: list[str]) -> None:
    ids = {"subject": page.subject, "session": run.get("session"), "src": run["src"]}
    for atlas in run.get("atlases", ()):
        for pvc in _variants(run):
            what = f"{atlas} TACs" + (f" (PVC {pvc})" if pvc else " (no PVC)")
            path = page.find(naming.output_path("tacs", atlas=atlas, pvc=pvc, **ids), what,
                             parts)
            if path is not None:
                page.draw(figure_path(page.subject, run["src"], "tacs", atlas, pvc),
                          f"{run['src']}: {what}",
                          lambda out, p=path, t=what: figures.plot_tacs(read_tsv(p), out, t),
                          parts)


def _models(page: _Page, run: Mapping[str, Any], parts: list[str]) -> dict[str, list[str]]:
    """Kinetic-model tables; returns model → parameter names found in the tables."""
    ids = {"subject": page.subject, "session": run.get("session"), "src": run["src"]}
    params: dict[str, list[str]] = {}
    for model in map(str, run.get("models", ())):
        for atlas in run.get("atlases", ()):
            for pvc in _variants(run):
                what = f"{model} parameters, {atlas}" + (f", PVC {pvc}" if pvc else "")
                path = page.find(naming.output_path("kinpar", atlas=atlas, pvc=pvc, model=model,
                                                    **ids), what, parts)
                if path is None:
                    continue
                table = read_tsv(path)
                params.setdefault(model, [c for c in table.columns
                                          if c != "region" and c not in FIT_DIAGNOSTICS])
                parts += [f"<h3>{h.esc(what)}</h3>", h.table(table)]
    return params


def _maps(page: _Page, run: Mapping[str, Any], params: Mapping[str, list[str]],
          parts: list[str]) -> None:
    ids = {"subject": page.subject, "session": run.get("session"), "src": run["src"]}
    t1w = page.root / naming.output_path("t1w_preproc", subject=page.subject)
    for model in map(str, run.get("models", ())):
        if model not in params:
            parts.append(h.paragraph(f"{model}: no parameter table, so no maps to look for.",
                                     "missing"))
            continue
        found = 0
        for pvc in _variants(run):
            for param in params[model]:
                rel = naming.output_path("mimap", space="T1w", model=model, param=param, pvc=pvc,
                                         **ids)
                if not (page.root / rel).is_file():
                    continue
                found += 1
                label = f"{model} {param}" + (f" (PVC {pvc})" if pvc else "")
                if not t1w.is_file():
                    parts.append(h.paragraph(f"{label}: the T1w is missing, map not drawn.",
                                             "missing"))
                    continue
                page.draw(figure_path(page.subject, run["src"], "map", model, param, pvc),
                          f"{run['src']}: {label} in T1w space",
                          lambda out, m=page.root / rel, lab=label: figures.plot_parametric_map(
                              *_t1w_and(t1w, m), out, lab), parts)
        if not found:
            parts.append(h.paragraph(f"{model}: no parametric maps in T1w space were found "
                                     "(voxelwise modelling may be switched off).", "missing"))


def build_participant_report(output_dir: Path, subject: str, runs: list[dict],
                             settings_toml: str | None = None,
                             warnings: Sequence[str] = ()) -> Path:
    """Write ``sub-<s>.html`` and its figures under ``sub-<s>/figures/``.

    Parameters
    ----------
    output_dir
        Root of the derivatives.
    subject
        Label without ``sub-``.
    runs
        One dict per PET run: ``src`` (source prefix, e.g. ``sub-01_ses-baseline_trc-K2``),
        ``session`` (label or ``None``), ``atlases`` (names), ``models`` (names),
        ``metadata`` (dict shown as a table: tracer, radionuclide, injected radioactivity,
        number of frames …) and optionally ``pvc`` (PVC method names whose outputs to show).
    settings_toml
        The run settings as TOML text, shown verbatim.
    warnings
        Messages to show in the warnings section, in plain words.

    Returns
    -------
    pathlib.Path
        The HTML file written.
    """
    output_dir = Path(output_dir)
    page = _Page(output_dir, subject)
    per_run: dict[str, list[str]] = {k: [] for k in ("motion", "coreg", "tacs", "models",
                                                      "maps")}
    for run in runs:
        for key in per_run:
            per_run[key].append(f"<h3>{h.esc(run['src'])}</h3>")
        _motion(page, run, per_run["motion"])
        _coreg(page, run, per_run["coreg"])
        _tacs(page, run, per_run["tacs"])
        params = _models(page, run, per_run["models"])
        _maps(page, run, params, per_run["maps"])
    atlases = list(dict.fromkeys(a for r in runs for a in r.get("atlases", ())))
    anatomy = (_anatomy(page, runs[0]["src"], atlases) if runs
               else h.paragraph("No PET runs, so no anatomy figures.", "missing"))
    summary = _summary(page, runs, settings_toml)
    notes = (h.bullet_list(warnings) + h.bullet_list(page.problems, "error")
             + h.bullet_list(page.missing, "missing"))
    sections = [
        ("summary", "Summary", summary),
        ("motion", "Head motion", "\n".join(per_run["motion"])),
        ("coreg", "Co-registration", "\n".join(per_run["coreg"])),
        ("anatomy", "Anatomy and regions", anatomy),
        ("tacs", "Time-activity curves", "\n".join(per_run["tacs"])),
        ("models", "Kinetic models", "\n".join(per_run["models"])),
        ("maps", "Parametric maps", "\n".join(per_run["maps"])),
        ("warnings", "Warnings and errors",
         notes or h.paragraph("No warnings, no errors, nothing missing.")),
    ]
    return h.write_page(output_dir / naming.report_path(subject),
                        h.page(f"ketpet_bids report: sub-{subject}", sections))
