"""Report figures: matplotlib (Agg backend) drawings written as SVG files.

Every function takes arrays or tables plus a target path, draws one figure, writes it
atomically (:func:`ketpet_bids.bids.sink.write_with`) and returns the path. Image arrays are
expected in RAS+ voxel order (``nibabel.as_closest_canonical``): axis 0 runs left → right,
axis 1 posterior → anterior, axis 2 inferior → superior. Slices are shown in neurological
convention (left on the left). SVG output is deterministic (fixed hash salt, no date).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ketpet_bids.bids.sink import write_with  # noqa: E402

plt.rcParams.update({"svg.hashsalt": "ketpet_bids", "font.size": 9, "image.interpolation":
                     "nearest"})

MOTION_COLUMNS = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z",
                  "framewise_displacement")
_VIEWS = ("sagittal", "coronal", "axial")


def save_svg(fig: Figure, target: Path) -> Path:
    """Write ``fig`` to ``target`` as SVG atomically and close it."""
    try:
        write_with(Path(target), lambda tmp: fig.savefig(tmp, format="svg", metadata={"Date": None},
                                                         bbox_inches="tight"))
    finally:
        plt.close(fig)
    return Path(target)


def frame_mid_times_min(frame_start_s: np.ndarray, frame_end_s: np.ndarray) -> np.ndarray:
    """Frame mid-times in minutes.

    Parameters
    ----------
    frame_start_s, frame_end_s
        Shape (n_frames,), seconds from injection.

    Returns
    -------
    numpy.ndarray
        Shape (n_frames,), minutes.

    Examples
    --------
    >>> frame_mid_times_min(np.array([0.0, 60.0]), np.array([60.0, 180.0])).tolist()
    [0.5, 2.0]
    """
    return (np.asarray(frame_start_s, float) + np.asarray(frame_end_s, float)) / 120.0


def plot_motion(confounds: pd.DataFrame, target: Path,
                times_min: np.ndarray | None = None) -> Path:
    """Rigid motion parameters and framewise displacement over time.

    Parameters
    ----------
    confounds
        The ``desc-confounds_timeseries.tsv`` table: ``trans_x trans_y trans_z`` (mm),
        ``rot_x rot_y rot_z`` (rad), ``framewise_displacement`` (mm); one row per frame.
        ``n/a`` (NaN) values (FD of the first frame) are left as gaps.
    target
        SVG file to write.
    times_min
        Shape (n_frames,), frame mid-times in minutes; frame numbers are used when ``None``.
    """
    missing = [c for c in MOTION_COLUMNS if c not in confounds.columns]
    if missing:
        raise ValueError(f"confounds table lacks columns {missing}")
    x = np.arange(1, len(confounds) + 1) if times_min is None else np.asarray(times_min)
    fig, axes = plt.subplots(3, 1, figsize=(7, 5.5), sharex=True)
    for axis in "xyz":
        axes[0].plot(x, confounds[f"trans_{axis}"], marker=".", label=axis)
        axes[1].plot(x, np.degrees(confounds[f"rot_{axis}"].to_numpy(float)), marker=".",
                     label=axis)
    axes[2].plot(x, confounds["framewise_displacement"], marker=".", color="k")
    axes[0].set_ylabel("translation (mm)")
    axes[1].set_ylabel("rotation (°)")
    axes[2].set_ylabel("FD (mm)")
    axes[2].set_xlabel("time (min)" if times_min is not None else "frame")
    for ax in axes[:2]:
        ax.legend(loc="upper left", ncols=3, frameon=False)
    for ax in axes:
        ax.grid(alpha=0.3)
    return save_svg(fig, target)


def slice_indices(volume: np.ndarray) -> tuple[int, int, int]:
    """Voxel indices of three orthogonal slices through the centre of mass of ``volume > 0``.

    Parameters
    ----------
    volume
        Shape (X, Y, Z); negative or non-finite values are ignored.

    Returns
    -------
    tuple of int
        (i, j, k); the array centre when the volume has no positive voxel.
    """
    weights = np.where(np.isfinite(volume) & (volume > 0), 1.0, 0.0)
    if weights.sum() == 0:
        return tuple(int(s // 2) for s in volume.shape)  # type: ignore[return-value]
    grids = np.indices(volume.shape, sparse=True)
    total = weights.sum()
    return tuple(int(round(float((g * weights).sum() / total))) for g in grids)  # type: ignore


def _cut(volume: np.ndarray, view: str, index: int) -> np.ndarray:
    """One slice, transposed so that rows run inferior→superior or posterior→anterior."""
    if view == "sagittal":
        return volume[index, :, :].T
    if view == "coronal":
        return volume[:, index, :].T
    return volume[:, :, index].T


def _aspect(zooms: Sequence[float], view: str) -> float:
    """Display aspect (row spacing / column spacing) of a slice."""
    zx, zy, zz = (float(z) for z in zooms[:3])
    return {"sagittal": zz / zy, "coronal": zz / zx, "axial": zy / zx}[view]


def _anatomy_axes(t1w: np.ndarray, zooms: Sequence[float], cuts: tuple[int, int, int],
                  ) -> tuple[Figure, np.ndarray]:
    """Figure with the T1w in grey on three orthogonal slices."""
    finite = t1w[np.isfinite(t1w)]
    vmax = float(np.percentile(finite, 99.5)) if finite.size else 1.0
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.4))
    for ax, view, index in zip(axes, _VIEWS, cuts, strict=True):
        ax.imshow(_cut(t1w, view, index), cmap="gray", origin="lower", vmin=0, vmax=vmax,
                  aspect=_aspect(zooms, view))
        ax.set_title(f"{view} {index}")
        ax.set_axis_off()
    return fig, axes


def _check_same_grid(*volumes: np.ndarray) -> None:
    shapes = {v.shape[:3] for v in volumes}
    if len(shapes) != 1:
        raise ValueError(f"images must share one voxel grid, got shapes {sorted(shapes)}")


def plot_contours(t1w: np.ndarray, petref: np.ndarray, zooms: Sequence[float],
                  target: Path, levels: Sequence[float] = (0.3, 0.6)) -> Path:
    """PET reference contours over three orthogonal T1w slices (co-registration check).

    Parameters
    ----------
    t1w
        Shape (X, Y, Z), T1w intensities (arbitrary units), RAS+ voxel order.
    petref
        Shape (X, Y, Z), PET reference resampled onto the T1w grid (Bq/mL).
    zooms
        T1w voxel sizes (mm), length ≥ 3.
    target
        SVG file to write.
    levels
        Contour levels as fractions of the PET's 99th percentile.
    """
    _check_same_grid(t1w, petref)
    pet = np.nan_to_num(np.asarray(petref, np.float32))
    top = float(np.percentile(pet, 99)) or 1.0
    cuts = slice_indices(pet)
    fig, axes = _anatomy_axes(t1w, zooms, cuts)
    colours = plt.cm.autumn(np.linspace(0, 1, len(levels)))
    for ax, view, index in zip(axes, _VIEWS, cuts, strict=True):
        section = _cut(pet, view, index)
        if section.max() > min(levels) * top:
            ax.contour(section, levels=[lv * top for lv in levels], colors=colours,
                       linewidths=0.8, origin="lower")
    return save_svg(fig, target)


def label_boundaries(labels: np.ndarray) -> np.ndarray:
    """Mask of 2-D pixels whose 4-neighbourhood contains another label.

    Parameters
    ----------
    labels
        Shape (R, C), integer labels (0 = background).

    Returns
    -------
    numpy.ndarray
        Shape (R, C), bool; ``True`` on the edge of every non-zero label.

    Examples
    --------
    >>> lab = np.zeros((5, 5), int); lab[1:4, 1:4] = 2
    >>> int(label_boundaries(lab).sum())   # the 8 outer pixels of the 3×3 square
    8
    """
    padded = np.pad(labels, 1, mode="edge")
    centre = padded[1:-1, 1:-1]
    differs = ((padded[:-2, 1:-1] != centre) | (padded[2:, 1:-1] != centre)
               | (padded[1:-1, :-2] != centre) | (padded[1:-1, 2:] != centre))
    return differs & (centre != 0)


def _label_colours(n: int) -> ListedColormap:
    """Distinct colours for labels 1..n (index 0 transparent)."""
    base = plt.get_cmap("tab20")(np.arange(max(n, 1)) % 20)
    return ListedColormap(np.vstack([[0, 0, 0, 0], base]))


def plot_regions(t1w: np.ndarray, dseg: np.ndarray, zooms: Sequence[float], target: Path,
                 names: dict[int, str] | None = None) -> Path:
    """Region labels as translucent colours with outlines over three orthogonal T1w slices.

    Parameters
    ----------
    t1w
        Shape (X, Y, Z), T1w intensities, RAS+ voxel order.
    dseg
        Shape (X, Y, Z), integer labels on the T1w grid (0 = background).
    zooms
        Voxel sizes (mm).
    target
        SVG file to write.
    names
        Label index → region name, for the legend (only labels present are listed).
    """
    _check_same_grid(t1w, dseg)
    labels = np.asarray(dseg).astype(np.int32)
    present, dense = np.unique(labels, return_inverse=True)
    dense = dense.reshape(labels.shape)
    if present[0] != 0:  # keep 0 as background in the dense numbering
        dense = dense + 1
        present = np.concatenate([[0], present])
    cmap = _label_colours(len(present) - 1)
    cuts = slice_indices(labels)
    fig, axes = _anatomy_axes(t1w, zooms, cuts)
    for ax, view, index in zip(axes, _VIEWS, cuts, strict=True):
        section = _cut(dense, view, index)
        aspect = _aspect(zooms, view)
        ax.imshow(np.ma.masked_equal(section, 0), cmap=cmap, vmin=0, vmax=len(present) - 1,
                  alpha=0.35, origin="lower", aspect=aspect)
        edges = np.where(label_boundaries(section), section, 0)
        ax.imshow(np.ma.masked_equal(edges, 0), cmap=cmap, vmin=0, vmax=len(present) - 1,
                  origin="lower", aspect=aspect)
    if names:
        handles = [plt.Rectangle((0, 0), 1, 1, color=cmap(i))
                   for i, lab in enumerate(present) if lab != 0]
        fig.legend(handles, [names.get(int(lab), str(lab)) for lab in present if lab != 0],
                   loc="lower center", ncols=min(6, len(handles)), frameon=False, fontsize=7)
    return save_svg(fig, target)


def plot_tacs(tacs: pd.DataFrame, target: Path, title: str = "") -> Path:
    """Regional time-activity curves on linear axes.

    Parameters
    ----------
    tacs
        The ``tacs.tsv`` table: ``frame_start frame_end`` (s) then one column per region
        (Bq/mL).
    target
        SVG file to write.
    title
        Figure title.

    Notes
    -----
    Time is shown in minutes (frame mid-times) and activity in kBq/mL.
    """
    if not {"frame_start", "frame_end"} <= set(tacs.columns):
        raise ValueError("TAC table lacks frame_start/frame_end columns")
    regions = [c for c in tacs.columns if c not in ("frame_start", "frame_end")]
    t_min = frame_mid_times_min(tacs["frame_start"].to_numpy(), tacs["frame_end"].to_numpy())
    fig, ax = plt.subplots(figsize=(7, 4))
    colours = plt.get_cmap("tab20")(np.arange(len(regions)) % 20)
    for region, colour in zip(regions, colours, strict=True):
        ax.plot(t_min, tacs[region].to_numpy(float) / 1000.0, marker=".", color=colour,
                label=region)
    ax.set_xlabel("time (min)")
    ax.set_ylabel("activity (kBq/mL)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False, fontsize=7,
              ncols=1 + len(regions) // 25)
    return save_svg(fig, target)


def plot_parametric_map(t1w: np.ndarray, pmap: np.ndarray, zooms: Sequence[float],
                        target: Path, label: str) -> Path:
    """A parametric map over three orthogonal T1w slices, with a colour bar.

    Parameters
    ----------
    t1w
        Shape (X, Y, Z), T1w intensities, RAS+ voxel order.
    pmap
        Shape (X, Y, Z), parameter values on the T1w grid; NaN and zero are transparent.
    zooms
        Voxel sizes (mm).
    target
        SVG file to write.
    label
        Colour-bar label (parameter and unit).
    """
    _check_same_grid(t1w, pmap)
    values = np.asarray(pmap, np.float32)
    shown = np.isfinite(values) & (values != 0)
    lo, hi = (np.percentile(values[shown], [2, 98]) if shown.any() else (0.0, 1.0))
    cuts = slice_indices(np.where(shown, 1.0, 0.0))
    fig, axes = _anatomy_axes(t1w, zooms, cuts)
    image = None
    for ax, view, index in zip(axes, _VIEWS, cuts, strict=True):
        section = np.ma.masked_where(~_cut(shown, view, index), _cut(values, view, index))
        image = ax.imshow(section, cmap="inferno", vmin=lo, vmax=hi, alpha=0.8, origin="lower",
                          aspect=_aspect(zooms, view))
    fig.colorbar(image, ax=list(axes), shrink=0.8, label=label)
    return save_svg(fig, target)


def plot_forest(stats: pd.DataFrame, target: Path, title: str = "",
                null_value: float = 0.0) -> Path:
    """Forest plot: estimate and confidence interval per region, one panel per contrast.

    Parameters
    ----------
    stats
        A group ``*_stats.tsv`` table (columns ``region contrast estimate ci_low ci_high
        q_fdr`` at least); rows with ``q_fdr < 0.05`` are drawn filled.
    target
        SVG file to write.
    title
        Figure title (analysis and measure).
    null_value
        Estimate of no effect, drawn as a vertical line (0; 0.5 for an AUC).
    """
    contrasts = list(dict.fromkeys(stats["contrast"]))
    n_regions = stats.groupby("contrast").size().max()
    fig, axes = plt.subplots(1, len(contrasts), figsize=(3.6 * len(contrasts),
                                                         1.0 + 0.28 * n_regions),
                             squeeze=False, layout="constrained")
    for ax, contrast in zip(axes[0], contrasts, strict=True):
        rows = stats[stats["contrast"] == contrast]
        y = np.arange(len(rows))[::-1]
        est = rows["estimate"].to_numpy(float)
        err = np.vstack([est - rows["ci_low"].to_numpy(float),
                         rows["ci_high"].to_numpy(float) - est])
        significant = rows["q_fdr"].to_numpy(float) < 0.05
        ax.errorbar(est, y, xerr=err, fmt="none", ecolor="0.4", capsize=2)
        ax.scatter(est[significant], y[significant], color="C3", zorder=3, label="q < 0.05")
        ax.scatter(est[~significant], y[~significant], facecolor="white", edgecolor="C0",
                   zorder=3, label="q ≥ 0.05")
        ax.axvline(null_value, color="k", linewidth=0.8)
        ax.set_yticks(y, rows["region"].astype(str))
        ax.set_title(str(contrast))
        ax.set_xlabel("estimate [ci_low, ci_high]")
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].legend(loc="lower right", fontsize=7)
    fig.suptitle(title)
    return save_svg(fig, target)


def plot_change_vs_symptoms(points: pd.DataFrame, target: Path, title: str = "") -> Path:
    """Regional change against symptom change, one panel per region, colour per arm.

    Parameters
    ----------
    points
        Columns ``region change symptom_change arm``: one row per patient and region
        (change in the measure's unit, symptom change in scale points).
    target
        SVG file to write.
    title
        Figure title.

    Notes
    -----
    Each panel shows the pooled Pearson r and an ordinary least-squares line per arm.
    """
    missing = {"region", "change", "symptom_change", "arm"} - set(points.columns)
    if missing:
        raise ValueError(f"scatter table lacks columns {sorted(missing)}")
    regions = list(dict.fromkeys(points["region"]))
    arms = sorted(points["arm"].astype(str).unique())
    fig, axes = plt.subplots(1, max(1, len(regions)), figsize=(3.2 * max(1, len(regions)), 3.2),
                             squeeze=False, layout="constrained")
    for ax, region in zip(axes[0], regions, strict=False):
        rows = points[(points["region"] == region)].dropna(subset=["change", "symptom_change"])
        for colour, arm in enumerate(arms):
            mine = rows[rows["arm"].astype(str) == arm]
            x, y = mine["change"].to_numpy(float), mine["symptom_change"].to_numpy(float)
            ax.scatter(x, y, s=14, color=f"C{colour}", label=arm)
            if len(x) > 2 and np.ptp(x) > 0:
                slope, intercept = np.polyfit(x, y, 1)
                ends = np.array([x.min(), x.max()])
                ax.plot(ends, intercept + slope * ends, color=f"C{colour}", linewidth=1)
        if len(rows) > 2:
            r = np.corrcoef(rows["change"].to_numpy(float), rows["symptom_change"].to_numpy(float))
            ax.set_title(f"{region} (pooled r = {r[0, 1]:.2f})")
        ax.axhline(0.0, color="0.6", linewidth=0.6)
        ax.axvline(0.0, color="0.6", linewidth=0.6)
        ax.set_xlabel("regional change (post − baseline)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("symptom change (post − baseline)")
    axes[0][0].legend(loc="best", fontsize=7)
    fig.suptitle(title)
    return save_svg(fig, target)


def weighted_residuals(fit: pd.DataFrame) -> np.ndarray:
    """Residuals of a model-fit table scaled by the frames' relative weights.

    Parameters
    ----------
    fit
        A ``desc-fit_tacs.tsv`` table (``region observed predicted weight`` at least).

    Returns
    -------
    numpy.ndarray
        Shape (n_rows,): ``(observed − predicted) · √(weight / mean weight of the region)``,
        in the unit of the fitted variable (so a weighted fit's residuals are comparable
        across frames).
    """
    weight = fit["weight"].to_numpy(float)
    mean = fit.groupby("region", sort=False)["weight"].transform("mean").to_numpy(float)
    return ((fit["observed"].to_numpy(float) - fit["predicted"].to_numpy(float))
            * np.sqrt(weight / mean))


def plot_model_fits(fit: pd.DataFrame, regions: Sequence[str], target: Path,
                    axis_labels: tuple[str, str], x_scale: float = 1.0,
                    y_scale: float = 1.0, title: str = "") -> Path:
    """Observed and predicted fitted variable per region, weighted residuals below.

    Parameters
    ----------
    fit
        A ``desc-fit_tacs.tsv`` table: ``region frame_start frame_end x observed predicted
        weight`` (long format, one row per region and used frame).
    regions
        Regions to draw (small multiples, four per row), in this order.
    target
        SVG file to write.
    axis_labels
        Labels of the x axis and of the fitted variable (with the units after scaling).
    x_scale, y_scale
        Factors applied to ``x`` and to observed/predicted/residuals for display (e.g.
        1/60 for seconds → minutes, 1/1000 for Bq/mL → kBq/mL).
    title
        Figure title.
    """
    missing = {"region", "x", "observed", "predicted", "weight"} - set(fit.columns)
    if missing:
        raise ValueError(f"fit table lacks columns {sorted(missing)}")
    unknown = sorted(set(regions) - set(fit["region"]))
    if unknown or not regions:
        raise ValueError(f"no fit rows for regions {unknown or 'none'}")
    n_cols = min(4, len(regions))
    n_rows = -(-len(regions) // n_cols)
    fig = plt.figure(figsize=(2.6 * n_cols + 0.6, 2.9 * n_rows + 0.4), layout="constrained")
    cells = fig.add_gridspec(2 * n_rows, n_cols, height_ratios=[3, 1.2] * n_rows)
    residual = weighted_residuals(fit) * y_scale
    for index, region in enumerate(regions):
        row, col = divmod(index, n_cols)
        rows = (fit["region"] == region).to_numpy()
        x = fit.loc[rows, "x"].to_numpy(float) * x_scale
        top = fig.add_subplot(cells[2 * row, col])
        bottom = fig.add_subplot(cells[2 * row + 1, col], sharex=top)
        top.plot(x, fit.loc[rows, "observed"].to_numpy(float) * y_scale, "o", ms=3,
                 color="k", label="observed")
        top.plot(x, fit.loc[rows, "predicted"].to_numpy(float) * y_scale, "-", color="C3",
                 label="predicted")
        top.set_title(region, fontsize=8)
        top.tick_params(labelbottom=False)
        bottom.axhline(0.0, color="0.5", linewidth=0.7)
        bottom.plot(x, residual[rows], ".", color="C0")
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
        if col == 0:
            top.set_ylabel(axis_labels[1], fontsize=7)
            bottom.set_ylabel("weighted\nresidual", fontsize=7)
        if row == n_rows - 1:
            bottom.set_xlabel(axis_labels[0], fontsize=7)
    fig.axes[0].legend(loc="best", fontsize=6, frameon=False)
    fig.suptitle(title)
    return save_svg(fig, target)


def plot_pvc_comparison(values: pd.DataFrame, target: Path, value_label: str,
                        title: str = "") -> Path:
    """Regional values without and with each PVC method, and the change each method makes.

    Parameters
    ----------
    values
        Index: region names; first column the uncorrected values, then one column per PVC
        method (same unit).
    target
        SVG file to write.
    value_label
        Axis label of the values (with unit).
    title
        Figure title.

    Notes
    -----
    Left panel: a dot per region and method (uncorrected in black). Right panel: the change
    of each method relative to the uncorrected value, in percent.
    """
    if values.shape[1] < 2:
        raise ValueError("need the uncorrected values and at least one PVC method")
    y = np.arange(len(values))[::-1]
    methods = list(values.columns[1:])
    base = values.iloc[:, 0].to_numpy(float)
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 1.2 + 0.28 * len(values)), sharey=True,
                                      layout="constrained")
    left.scatter(base, y, color="k", zorder=3, label=str(values.columns[0]))
    height = 0.8 / len(methods)
    for i, method in enumerate(methods):
        corrected = values[method].to_numpy(float)
        left.scatter(corrected, y, color=f"C{i}", marker="D", s=14, zorder=3, label=method)
        with np.errstate(divide="ignore", invalid="ignore"):
            change = 100.0 * (corrected / base - 1.0)
        right.barh(y + 0.4 - height * (i + 0.5), change, height=height, color=f"C{i}",
                   label=method)
    left.set_yticks(y, values.index.astype(str))
    left.set_xlabel(value_label)
    left.legend(loc="best", fontsize=7)
    right.axvline(0.0, color="k", linewidth=0.8)
    right.set_xlabel("change vs uncorrected (%)")
    for ax in (left, right):
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(title)
    return save_svg(fig, target)


def orthogonal_slices(volume: np.ndarray, cuts: tuple[int, int, int]
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sagittal, coronal and axial slices of a RAS+ volume through voxel ``cuts``."""
    return tuple(_cut(volume, view, index)  # type: ignore[return-value]
                 for view, index in zip(_VIEWS, cuts, strict=True))


def smooth_slices(slices: Sequence[np.ndarray], sigma_px: float = 1.0) -> list[np.ndarray]:
    """Gaussian-smoothed copies of 2-D slices (non-finite values set to 0 first)."""
    from scipy.ndimage import gaussian_filter

    return [gaussian_filter(np.nan_to_num(np.asarray(s, np.float32)), sigma_px) for s in slices]


def slice_correlation(frame: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> float:
    """Pearson correlation of a frame's three slices with the reference's (scale-free).

    Parameters
    ----------
    frame, reference
        Three 2-D slices each (as from :func:`orthogonal_slices`), same shapes pairwise.

    Returns
    -------
    float
        Correlation over all pixels of the three slices; NaN for a constant frame.

    Examples
    --------
    >>> a = [np.arange(6.0).reshape(2, 3)] * 3
    >>> round(slice_correlation([2 * s + 5 for s in a], a), 6)
    1.0
    """
    f = np.concatenate([np.ravel(s) for s in frame])
    r = np.concatenate([np.ravel(s) for s in reference])
    f, r = f - f.mean(), r - r.mean()
    denominator = np.sqrt((f @ f) * (r @ r))
    return float(f @ r / denominator) if denominator > 0 else float("nan")


def plot_motion_frames(reference: Sequence[np.ndarray], before: Sequence[Sequence[np.ndarray]],
                       after: Sequence[Sequence[np.ndarray]], shown: Sequence[int],
                       zooms: Sequence[float], target: Path,
                       correlation: tuple[np.ndarray, np.ndarray] | None = None,
                       level: float = 0.5) -> Path:
    """Frames' contours over the PET reference before and after motion correction.

    Parameters
    ----------
    reference
        Three slices (sagittal, coronal, axial) of the PET reference (RAS+, see
        :func:`orthogonal_slices`).
    before, after
        Per frame, the same three slices of the uncorrected and corrected frame (smoothed).
    shown
        Indices of the frames to outline (one colour each).
    zooms
        Voxel sizes (mm) of the PET grid.
    target
        SVG file to write.
    correlation
        Per-frame correlation with the reference before and after (each shape (n_frames,)),
        drawn in a bottom panel when given.
    level
        Contour level as a fraction of each frame's 99th percentile (over its slices).
    """
    fig = plt.figure(figsize=(9, 7.6 if correlation is not None else 5.8), layout="constrained")
    grid = fig.add_gridspec(3 if correlation is not None else 2, 3)
    top = float(np.percentile(np.concatenate([np.ravel(s) for s in reference]), 99.5)) or 1.0
    colours = plt.get_cmap("tab10")(np.arange(len(shown)) % 10)
    for row, (name, frames) in enumerate((("before", before), ("after", after))):
        for col, view in enumerate(_VIEWS):
            ax = fig.add_subplot(grid[row, col])
            ax.imshow(reference[col], cmap="gray", origin="lower", vmin=0, vmax=top,
                      aspect=_aspect(zooms, view))
            for colour, index in zip(colours, shown, strict=True):
                frame = frames[index]
                peak = float(np.percentile(np.concatenate([np.ravel(s) for s in frame]), 99))
                if peak > 0 and frame[col].max() > level * peak:
                    ax.contour(frame[col], levels=[level * peak], colors=[colour],
                               linewidths=0.9, origin="lower")
            ax.set_title(f"{name} correction: {view}", fontsize=8)
            ax.set_axis_off()
    handles = [plt.Line2D([], [], color=c) for c in colours]
    fig.legend(handles, [f"frame {i + 1}" for i in shown], loc="outside upper center",
               ncols=max(1, len(shown)), frameon=False, fontsize=7)
    if correlation is not None:
        ax = fig.add_subplot(grid[2, :])
        frames_axis = np.arange(1, len(correlation[0]) + 1)
        ax.plot(frames_axis, correlation[0], "o-", color="0.5", ms=3, label="before")
        ax.plot(frames_axis, correlation[1], "o-", color="C2", ms=3, label="after")
        ax.set_xlabel("frame")
        ax.set_ylabel("correlation with\nthe PET reference")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=7)
    return save_svg(fig, target)
