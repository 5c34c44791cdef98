"""Per-participant HTML report, assembled from the derivatives on disk.

The report reads every input by its contract name (:mod:`ketpet_bids.bids.naming`), draws what
it finds and says in plain words what it did not find, so it works on partial outputs (a
stage switched off, a crash) and never crashes because one figure cannot be drawn.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from ketpet_bids.bids import naming
from ketpet_bids.core.kinetics.base import Frames, WindowModel, window_weights
from ketpet_bids.core.kinetics.registry import get_model
from ketpet_bids.core.motion import FD_RADIUS_MM
from ketpet_bids.reports import figures
from ketpet_bids.reports import html as h
from ketpet_bids.reports.boilerplate import CITATION_MD, software_versions

#: Columns of a ``kinpar.tsv`` that are fit diagnostics, not parameters (DESIGN.md §6).
FIT_DIAGNOSTICS = ("r2", "aic", "n_frames_used")
TISSUES = ("GM", "WM", "CSF")
#: Fit figures show every region up to this many, else the largest few (plus the habenula).
FIT_ALL_REGIONS = 16
FIT_LARGEST_REGIONS = 8
#: Frames outlined in the before/after motion figure (those displaced most).
MOTION_FRAMES_SHOWN = 3
T = TypeVar("T")


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

    def attempt(self, what: str, compute: Callable[[], T], parts: list[str]) -> T | None:
        """``compute()``, or None after reporting its error in plain words ("Could not …")."""
        try:
            return compute()
        except Exception as exc:  # noqa: BLE001 - one bad input must not break the report
            text = f"Could not {what}: {type(exc).__name__}: {exc}"
            self.problems.append(text)
            parts.append(h.paragraph(text, "error"))
            return None

    def draw(self, relative: Path, caption: str, draw: Callable[[Path], object],
             parts: list[str]) -> None:
        """Draw one figure into ``relative``; on failure, report the error in plain words."""
        if self.attempt(f"draw {caption}", lambda: draw(self.root / relative) or True,
                        parts) is not None:
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
    _motion_frames(page, run, table, parts)


def _motion_frames(page: _Page, run: Mapping[str, Any], confounds: pd.DataFrame,
                   parts: list[str]) -> None:
    """Before/after figure: the uncorrected and corrected frames over the PET reference."""
    ids = {"subject": page.subject, "session": run.get("session"), "src": run["src"]}
    record = page.root / naming.sidecar_path(naming.output_path("confounds", **ids))
    skipped = json.loads(record.read_text()).get("HMCSkipped") if record.is_file() else None
    if skipped:
        parts.append(h.paragraph(f"Head-motion correction did not run ({skipped}), so there "
                                 "are no before/after frames to compare."))
        return
    preproc = page.find(naming.output_path("preproc_pet", **ids), "motion-corrected PET", parts)
    petref = page.find(naming.output_path("petref", **ids), "PET reference", parts)
    if preproc is None or petref is None:
        return
    raw = run.get("pet") or _first_source(page.root / naming.sidecar_path(
        naming.output_path("preproc_pet", **ids)))
    if not raw or not Path(raw).is_file():
        parts.append(h.paragraph(f"The uncorrected PET ({raw or 'no Sources in the sidecar'}) "
                                 "is not available here, so the before/after frames are not "
                                 "drawn.", "missing"))
        return
    slices = page.attempt("read the frames before and after motion correction",
                          lambda: before_after_slices(Path(raw), preproc, petref), parts)
    if slices is None:
        return
    reference, before, after, zooms = slices
    shown = most_displaced_frames(confounds, len(before))
    corr = tuple(np.array([figures.slice_correlation(f, reference) for f in frames])
                 for frames in (before, after))
    page.draw(figure_path(page.subject, run["src"], "motionframes"),
              f"{run['src']}: contours (50% of each frame's 99th percentile) of the frames "
              f"displaced most ({', '.join(str(i + 1) for i in shown)}) over the PET reference, "
              "before (top) and after (middle) motion correction; bottom: each frame's "
              "correlation with the reference on these slices, mean "
              f"{np.nanmean(corr[0]):.3f} before and {np.nanmean(corr[1]):.3f} after",
              lambda out: figures.plot_motion_frames(reference, before, after, shown, zooms,
                                                     out, corr), parts)  # type: ignore[arg-type]


def _first_source(sidecar: Path) -> str | None:
    """First entry of ``Sources`` in a JSON sidecar (None when absent)."""
    sources = json.loads(sidecar.read_text()).get("Sources") if sidecar.is_file() else None
    return str(sources[0]) if sources else None


def ras_frames(path: Path) -> Iterator[np.ndarray]:
    """The frames of a 3-D/4-D NIfTI in RAS+ voxel order, read one at a time (float32).

    Frames are read in file order, so a gzipped file is decompressed once overall.
    """
    import nibabel as nib

    image = nib.load(str(path), keep_file_open=True)
    orientation = nib.orientations.io_orientation(image.affine)
    n_frames = image.shape[3] if len(image.shape) == 4 else 1
    for index in range(n_frames):
        frame = image.dataobj[..., index] if len(image.shape) == 4 else image.dataobj
        yield nib.orientations.apply_orientation(np.asarray(frame, np.float32), orientation)


def before_after_slices(raw: Path, preproc: Path, petref: Path
                        ) -> tuple[list[np.ndarray], list[list[np.ndarray]],
                                   list[list[np.ndarray]], tuple[float, float, float]]:
    """Smoothed orthogonal slices of the reference and of every frame before and after HMC.

    Only three slices per frame are kept (through the reference's centre), so memory stays
    at one 3-D frame.

    Returns
    -------
    reference : list of numpy.ndarray
        Sagittal, coronal and axial slice of the PET reference.
    before, after : list of list of numpy.ndarray
        Per frame, its three slices in the uncorrected and in the corrected PET.
    zooms : tuple of float
        Voxel sizes (mm).
    """
    ref, zooms = load_ras(petref)
    cuts = figures.slice_indices(ref)
    stacks = []
    for path in (raw, preproc):
        frames = []
        for volume in ras_frames(path):
            if volume.shape != ref.shape:
                raise ValueError(f"{path.name} has frames of shape {volume.shape}, the PET "
                                 f"reference {ref.shape}")
            frames.append(figures.smooth_slices(figures.orthogonal_slices(volume, cuts)))
        stacks.append(frames)
    if len(stacks[0]) != len(stacks[1]):
        raise ValueError(f"{len(stacks[0])} frames before correction, {len(stacks[1])} after")
    reference = figures.smooth_slices(figures.orthogonal_slices(ref, cuts))
    return reference, stacks[0], stacks[1], zooms


def most_displaced_frames(confounds: pd.DataFrame, n_frames: int,
                          count: int = MOTION_FRAMES_SHOWN) -> list[int]:
    """Indices (in time order) of the frames displaced most from the reference position.

    The displacement of a frame is ``|translation| + r·|rotation|`` (mm, ``r`` the
    framewise-displacement radius); frames of equal displacement are taken latest first, so
    without motion the last frames are shown.
    """
    columns = [c for c in figures.MOTION_COLUMNS[:6] if c in confounds.columns]
    if len(columns) < 6 or len(confounds) != n_frames:
        return list(range(max(0, n_frames - count), n_frames))
    params = confounds[columns].to_numpy(float)
    displacement = (np.linalg.norm(params[:, :3], axis=1)
                    + FD_RADIUS_MM * np.linalg.norm(params[:, 3:], axis=1))
    order = np.lexsort((-np.arange(n_frames), -np.nan_to_num(displacement)))
    return sorted(int(i) for i in order[:count])


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


def window_means(tacs: pd.DataFrame, window: tuple[float, float]) -> pd.Series:
    """Time-weighted mean of every region's TAC over ``window`` (s), Bq/mL, by region name.

    Frames count by their time inside the window
    (:func:`~ketpet_bids.core.kinetics.base.window_weights`, as SUV/SUVR do).
    """
    start = tacs["frame_start"].to_numpy(float)
    weights = window_weights(Frames.from_lists(start, tacs["frame_end"].to_numpy(float) - start),
                             window)
    regions = [c for c in tacs.columns if c not in ("frame_start", "frame_end")]
    return pd.Series(tacs[regions].to_numpy(float).T @ weights, index=regions)


def comparison_window(page: _Page, run: Mapping[str, Any], atlas: str,
                      tacs: pd.DataFrame) -> tuple[tuple[float, float], str]:
    """The SUV/SUVR window of the run (from its parameter sidecar), else the last third of
    the scan; with a phrase saying which."""
    ids = {"subject": page.subject, "session": run.get("session"), "src": run["src"]}
    for model in ("suvr", "suv"):
        sidecar = page.root / naming.sidecar_path(naming.output_path("kinpar", atlas=atlas,
                                                                     model=model, **ids))
        if sidecar.is_file():
            meta = json.loads(sidecar.read_text())
            if "WindowStart" in meta and "WindowEnd" in meta:
                return ((float(meta["WindowStart"]), float(meta["WindowEnd"])),
                        f"the {model.upper()} window")
    first, last = float(tacs["frame_start"].iloc[0]), float(tacs["frame_end"].iloc[-1])
    return (first + 2.0 * (last - first) / 3.0, last), "the last third of the scan"


def _pvc_comparison(page: _Page, run: Mapping[str, Any], parts: list[str]) -> None:
    ids = {"subject": page.subject, "session": run.get("session"), "src": run["src"]}
    if not run.get("pvc"):
        parts.append(h.paragraph("No partial-volume correction ran, so there is nothing to "
                                 "compare."))
        return
    for atlas in run.get("atlases", ()):
        found = {pvc: page.root / naming.output_path("tacs", atlas=atlas, pvc=pvc, **ids)
                 for pvc in _variants(run)}
        found = {pvc: path for pvc, path in found.items() if path.is_file()}
        if None not in found or len(found) < 2:
            parts.append(h.paragraph(f"{atlas}: the uncorrected TACs or every corrected one "
                                     "is missing (see above), so PVC is not compared.",
                                     "missing"))
            continue
        values = page.attempt(f"compare PVC methods for {atlas}",
                              lambda f=found, a=atlas: _pvc_values(page, run, a, f), parts)
        if values is None:
            continue
        table, phrase = values
        change = pd.DataFrame({f"{m} change (%)": 100.0 * (table[m] / table["uncorrected"] - 1)
                               for m in table.columns[1:]})
        parts += [f"<h3>{h.esc(atlas)}: mean activity over {h.esc(phrase)} (Bq/mL)</h3>",
                  h.table(pd.concat([table, change], axis=1).rename_axis("region")
                          .reset_index())]
        page.draw(figure_path(page.subject, run["src"], "pvc", atlas),
                  f"{run['src']}: {atlas} regional mean activity over {phrase}, uncorrected "
                  "and after each PVC method (left), and each method's change (right)",
                  lambda out, t=table, p=phrase: figures.plot_pvc_comparison(
                      t / 1000.0, out, f"mean activity over {p} (kBq/mL)"), parts)


def _pvc_values(page: _Page, run: Mapping[str, Any], atlas: str,
                found: Mapping[str | None, Path]) -> tuple[pd.DataFrame, str]:
    """Regional window means (Bq/mL): ``uncorrected`` then one column per PVC method, over
    the regions present in every table; and the phrase naming the window."""
    tables = {pvc: read_tsv(path) for pvc, path in found.items()}
    window, phrase = comparison_window(page, run, atlas, tables[None])
    means = {pvc or "uncorrected": window_means(t, window) for pvc, t in tables.items()}
    regions = [r for r in means["uncorrected"].index if all(r in m.index for m in means.values())]
    table = pd.DataFrame({k: m[regions] for k, m in means.items()})
    start, end = window
    return table, f"{phrase} ({start:g}-{end:g} s)"


def fit_regions(regions: Sequence[str], volumes: Mapping[str, float] | None = None
                ) -> list[str]:
    """Regions drawn in a fit figure, in table order.

    Every region when there are at most :data:`FIT_ALL_REGIONS`; otherwise the
    :data:`FIT_LARGEST_REGIONS` largest by volume (the first ones without volumes) plus any
    region whose name contains "habenula".

    >>> fit_regions([f"r{i}" for i in range(20)] + ["habenulaL"],
    ...             {f"r{i}": float(i) for i in range(20)})[:3]
    ['r12', 'r13', 'r14']
    """
    regions = list(dict.fromkeys(regions))
    if len(regions) <= FIT_ALL_REGIONS:
        return regions
    ranked = (sorted(regions, key=lambda r: -volumes.get(r, -np.inf)) if volumes
              else regions)
    chosen = set(ranked[:FIT_LARGEST_REGIONS]) | {r for r in regions if "habenula" in r.lower()}
    return [r for r in regions if r in chosen]


def _fit_axes(sidecar: Mapping[str, Any]) -> tuple[tuple[str, str], float, float]:
    """Axis labels and display scales of a fit table from its column sidecar."""
    x = sidecar.get("x", {})
    y = sidecar.get("observed", {})
    x_name = str(x.get("Description", "x")).split(":")[0]
    if x_name == "frame mid-time":
        x_label, x_scale = "time (min)", 1.0 / 60.0
    else:
        x_label, x_scale = f"{x_name} ({x.get('Units', '')})", 1.0
    if y.get("Units") == "Bq/mL":
        y_label, y_scale = "activity (kBq/mL)", 1.0 / 1000.0
    else:
        name = str(y.get("Description", "observed")).removeprefix("fitted variable: ")
        y_label, y_scale = f"{name.split(':')[0]} ({y.get('Units', '')})", 1.0
    return (x_label, y_label), x_scale, y_scale


def fit_summary(fit: pd.DataFrame, kinpar: pd.DataFrame | None) -> str:
    """Caption text of a fit figure: t*, r² range and the largest weighted residual.

    The residual is given relative to the largest observed value of the fitted variable, so
    ~0 % means the model reproduces the data.
    """
    starts = np.unique(fit["frame_start"].to_numpy(float))
    tstar = f"t* = {starts[0]:g} s" if starts[0] > 0 else "all frames (t* = 0)"
    r2 = kinpar["r2"].to_numpy(float) if kinpar is not None and "r2" in kinpar else np.array([])
    r2 = r2[np.isfinite(r2)]
    r2_text = f"r² {r2.min():.4f} to {r2.max():.4f}" if r2.size else "r² not available"
    peak = np.nanmax(np.abs(fit["observed"].to_numpy(float)))
    worst = np.nanmax(np.abs(figures.weighted_residuals(fit)))
    return (f"{tstar}; {r2_text} over {fit['region'].nunique()} regions; largest |weighted "
            f"residual| {100.0 * worst / peak:.2f}% of the largest observed value")


def _fits(page: _Page, run: Mapping[str, Any], parts: list[str]) -> None:
    ids = {"subject": page.subject, "session": run.get("session"), "src": run["src"]}
    for model in map(str, run.get("models", ())):
        if isinstance(get_model(model), WindowModel):
            parts.append(h.paragraph(f"{model}: an average over a time window; nothing is "
                                     "fitted, so there is no fit to show."))
            continue
        for atlas in run.get("atlases", ()):
            volumes = _volumes(page, atlas)
            for pvc in _variants(run):
                kinpar = naming.output_path("kinpar", atlas=atlas, pvc=pvc, model=model, **ids)
                if (page.root / kinpar).is_file():  # else stated under "Kinetic models"
                    _fit_figure(page, run, model, atlas, pvc, volumes, parts)


def _fit_figure(page: _Page, run: Mapping[str, Any], model: str, atlas: str, pvc: str | None,
                volumes: Mapping[str, float] | None, parts: list[str]) -> None:
    """One model's fit figure for one TAC table (see :func:`figures.plot_model_fits`)."""
    ids = {"subject": page.subject, "session": run.get("session"), "src": run["src"],
           "atlas": atlas, "pvc": pvc, "model": model}
    what = f"{model} fit, {atlas}" + (f", PVC {pvc}" if pvc else "")
    path = page.find(naming.output_path("model_fit", **ids), what, parts)
    loaded = (page.attempt(f"read {what}", lambda: _load_fit(
        path, page.root / naming.output_path("kinpar", **ids)), parts) if path else None)
    if loaded is None:
        return
    fit, summary, (labels, x_scale, y_scale) = loaded
    regions = fit_regions(fit["region"], volumes)
    shown = "all regions"
    if regions != list(dict.fromkeys(fit["region"])):
        shown = f"the {FIT_LARGEST_REGIONS} largest regions" + (
            " and the habenula" if any("habenula" in r.lower() for r in regions) else "")
    page.draw(figure_path(page.subject, run["src"], "fit", model, atlas, pvc),
              f"{run['src']}: {model.upper()} fit ({what}; {shown}): observed (dots) and "
              "predicted (line) fitted variable, weighted residuals (residual × √(w / mean w)) "
              f"below; {summary}",
              lambda out: figures.plot_model_fits(fit, regions, out, labels, x_scale, y_scale,
                                                  what), parts)


def _load_fit(path: Path, kinpar: Path) -> tuple[pd.DataFrame, str, tuple]:
    fit = read_tsv(path)
    fit["region"] = fit["region"].astype(str)
    sidecar = naming.sidecar_path(path)
    meta = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    return fit, fit_summary(fit, read_tsv(kinpar)), _fit_axes(meta)


def _volumes(page: _Page, atlas: str) -> dict[str, float] | None:
    """Region volumes (mm³) by name from the atlas's morph table, if it exists."""
    morph = page.root / naming.output_path("morph", subject=page.subject, atlas=atlas)
    if not morph.is_file():
        return None
    table = read_tsv(morph)
    return dict(zip(table["name"].astype(str), table["volume_mm3"].astype(float), strict=True))


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
        number of frames …) and optionally ``pvc`` (PVC method names whose outputs to show)
        and ``pet`` (path of the uncorrected PET, for the before/after motion figure; by
        default the first ``Sources`` entry of the ``desc-preproc_pet`` sidecar).
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
    per_run: dict[str, list[str]] = {k: [] for k in ("motion", "coreg", "tacs", "pvc",
                                                      "models", "fits", "maps")}
    for run in runs:
        for key in per_run:
            per_run[key].append(f"<h3>{h.esc(run['src'])}</h3>")
        _motion(page, run, per_run["motion"])
        _coreg(page, run, per_run["coreg"])
        _tacs(page, run, per_run["tacs"])
        _pvc_comparison(page, run, per_run["pvc"])
        params = _models(page, run, per_run["models"])
        _fits(page, run, per_run["fits"])
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
        ("pvc", "PVC comparison", "\n".join(per_run["pvc"])),
        ("models", "Kinetic models", "\n".join(per_run["models"])),
        ("fits", "Model fits", "\n".join(per_run["fits"])),
        ("maps", "Parametric maps", "\n".join(per_run["maps"])),
        ("warnings", "Warnings and errors",
         notes or h.paragraph("No warnings, no errors, nothing missing.")),
    ]
    return h.write_page(output_dir / naming.report_path(subject),
                        h.page(f"ketpet_bids report: sub-{subject}", sections))
