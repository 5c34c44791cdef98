"""Group-level HTML report: per analysis and measure a forest plot, the change-vs-symptom
scatter where the group level drew one, and the table; then the voxelwise maps."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ketpet_bids.bids import naming
from ketpet_bids.reports import figures
from ketpet_bids.reports import html as h
from ketpet_bids.reports.participant import read_tsv

#: Columns of a group ``*_stats.tsv`` table (DESIGN.md §5).
STATS_COLUMNS = ("analysis", "measure", "region", "contrast", "n", "estimate", "ci_low",
                 "ci_high", "statistic", "p", "q_fdr", "effect_size")
GROUP_REPORT = naming.group_report_path()
NULL_VALUES = {"prediction": 0.5}
"""Estimate of no effect per analysis (AUC 0.5); 0 for the others."""


def forest_path(analysis: str, measure: str) -> Path:
    """Forest-plot figure beside the registry's stats table, under ``group/figures/``.

    >>> forest_path("baseline", "seg-sim_model-suvr_meas-SUVR").as_posix()
    'group/figures/seg-sim_model-suvr_analysis-baseline_meas-SUVR_desc-forest.svg'
    """
    return naming.group_figure_path(analysis, measure, "forest")


def build_group_report(output_dir: Path, stats_files: list[Path],
                       notes: Sequence[str] = (), statmaps: Sequence[Path] = ()) -> Path:
    """Write ``group/group.html`` with figures and a table per analysis and measure.

    Parameters
    ----------
    output_dir
        Root of the derivatives.
    stats_files
        Group statistics tables (absolute, or relative to ``output_dir``) with the columns of
        :data:`STATS_COLUMNS`.
    notes
        Messages (warnings, skipped analyses) shown in plain words.
    statmaps
        Voxelwise ``_statmap.nii.gz`` files to list (with their JSON sidecar's design).

    Returns
    -------
    pathlib.Path
        The HTML file written.
    """
    output_dir = Path(output_dir)
    page_dir = (output_dir / GROUP_REPORT).parent
    sections: list[tuple[str, str, str]] = []
    problems: list[str] = []
    for stats_file in map(Path, stats_files):
        path = stats_file if stats_file.is_absolute() else output_dir / stats_file
        link = os.path.relpath(path, page_dir)
        if not path.is_file():
            problems.append(f"Not found: statistics table {link}.")
            continue
        table = read_tsv(path)
        missing = [c for c in STATS_COLUMNS if c not in table.columns]
        if missing:
            problems.append(f"{link} lacks the columns {missing}; it is not shown.")
            continue
        for (analysis, measure), rows in table.groupby(["analysis", "measure"], sort=False):
            figure = forest_path(str(analysis), str(measure))
            parts = [f'<p>Table: <a href="{h.esc(link)}">{h.esc(link)}</a></p>']
            try:
                figures.plot_forest(rows, output_dir / figure, f"{analysis}: {measure}",
                                    NULL_VALUES.get(str(analysis), 0.0))
                parts.append(h.figure(figure.relative_to(page_dir.name),
                                      f"{analysis}, {measure}: estimate and confidence "
                                      "interval per region (filled: q_fdr < 0.05)"))
            except Exception as exc:  # noqa: BLE001 - one bad table must not break the report
                problems.append(f"Could not draw the forest plot of {analysis}/{measure}: "
                                f"{type(exc).__name__}: {exc}")
            scatter = naming.group_figure_path(str(analysis), str(measure), "scatter")
            if (output_dir / scatter).is_file():
                parts.append(h.figure(scatter.relative_to(page_dir.name),
                                      f"{measure}: regional change vs symptom change in the key "
                                      "regions, per treatment arm"))
            parts.append(h.table(rows))
            sections.append((f"{analysis}-{measure}", f"{analysis} — {measure}",
                             "\n".join(parts)))
    if statmaps:
        sections.append(("voxelwise", "Voxelwise maps", _statmap_list(output_dir, page_dir,
                                                                     statmaps)))
    if not sections:
        problems.append("No group statistics to show.")
    notes_html = (h.bullet_list(notes) + h.bullet_list(problems, "error")
                  or h.paragraph("No warnings, no errors."))
    sections.append(("warnings", "Warnings and errors", notes_html))
    return h.write_page(output_dir / GROUP_REPORT, h.page("ketpet_bids group report", sections))


def _statmap_list(output_dir: Path, page_dir: Path, statmaps: Sequence[Path]) -> str:
    """Per statmap: a link with its volumes, N and mask size (from the JSON sidecar) and the
    slice view the group level drew (``desc-slices``), when there is one."""
    import json

    parts = []
    for statmap in map(Path, statmaps):
        path = statmap if statmap.is_absolute() else output_dir / statmap
        sidecar = naming.sidecar_path(path)
        info = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
        link = os.path.relpath(path, page_dir)
        parts.append(f'<p><a href="{h.esc(link)}">{h.esc(path.name)}</a>: '
                     f"volumes {h.esc(', '.join(info.get('Volumes', [])))}; N = "
                     f"{h.esc(info.get('N', '?'))}, {h.esc(info.get('MaskVoxels', '?'))} voxels, "
                     f"{h.esc(info.get('Permutations', 0))} permutations</p>")
        if {"Analysis", "Measure", "Contrast", "Space"} <= set(info):
            slices = naming.group_figure_path(info["Analysis"], info["Measure"], "slices",
                                              info["Contrast"], info["Space"])
            if (output_dir / slices).is_file():
                parts.append(h.figure(slices.relative_to(page_dir.name),
                                      f"{info['Contrast']}: t where q_fdr < 0.05, over the "
                                      "mean of the analysed maps"))
    return "\n".join(parts)
