"""Sphinx extension: ``.. ketpet-outputs::`` renders the output registry as a table.

The rows come from :data:`ketpet_bids.bids.naming.OUTPUTS` (plus the report and group paths),
so the documented names cannot drift from the names the program writes.
"""

from __future__ import annotations

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

from ketpet_bids.bids import naming

# Placeholder value per entity: upper-case tokens that never occur in fixed name parts.
_TOKENS = {"space": "SPACE", "atlas": "ATLAS", "ref": "REF", "pvc": "PVC", "model": "MODEL",
           "param": "PARAM", "desc": "DESC"}
_BIDS_KEY = dict(naming.ENTITY_ORDER)


def pattern(spec: naming.OutputSpec) -> str:
    """Path pattern of one output, ``[...]`` around optional parts, ``<...>`` placeholders."""
    entities = {e: _TOKENS[e] for e in (*spec.required, *spec.optional)}
    session = "SESSION" if spec.level == "pet" else None
    path = naming.output_path(spec.key, subject="SUBJECT", session=session, src="SRC",
                              ext=".svg", **entities).as_posix()
    for entity in spec.optional:
        path = path.replace(f"_{_BIDS_KEY[entity]}-{_TOKENS[entity]}",
                            f"[_{_BIDS_KEY[entity]}-<{entity}>]")
    path = path.replace("/ses-SESSION/", "/[ses-<session>/]")
    for entity, token in _TOKENS.items():
        path = path.replace(token, f"<{entity}>")
    return path.replace("SUBJECT", "<subject>").replace("SRC", "<src>")


def rows() -> list[tuple[str, str]]:
    """(path pattern, description) for every registered output, the reports and group files."""
    table = [(pattern(spec), spec.description) for spec in naming.OUTPUTS.values()]
    table.append((naming.report_path("SUBJECT").as_posix().replace("SUBJECT", "<subject>"),
                  "Participant report (HTML; figures under sub-<subject>/figures/)."))
    measure = naming.group_measure("PARAM", trc="TRC", seg="ATLAS", pvc="PVC", model="MODEL")
    maps = naming.group_measure("PARAM", trc="TRC", pvc="PVC", model="MODEL")
    table.append((_group(naming.group_stats_path("ANALYSIS", measure)),
                  "Group statistics table, one row per region and contrast (+ JSON: design, "
                  "meaning of effect_size)."))
    table.append((_group(naming.group_statmap_path("ANALYSIS", maps, "CONTRAST")),
                  "Group voxelwise map in template space: volumes t, estimate, p, q_fdr[, "
                  "p_fwe] (+ JSON)."))
    return table


def _group(path) -> str:
    """A group path pattern with placeholders in angle brackets, optional parts bracketed."""
    return (path.as_posix().replace("trc-TRC_", "[trc-<tracer>_]")
            .replace("_pvc-PVC", "[_pvc-<pvc>]").replace("ATLAS", "<atlas>")
            .replace("MODEL", "<model>").replace("PARAM", "<param>")
            .replace("ANALYSIS", "<analysis>").replace("CONTRAST", "<contrast>"))


class OutputsTable(SphinxDirective):
    """Insert the table of outputs."""

    def run(self) -> list:
        lines = [".. list-table::", "   :header-rows: 1", "   :widths: 55 45", "",
                 "   * - Path (under the output directory)", "     - Content"]
        for path, description in rows():
            lines += [f"   * - ``{path}``", f"     - {description}"]
        holder = nodes.section()
        self.state.nested_parse(StringList(lines, source="ketpet-outputs"), self.content_offset,
                                holder)
        return list(holder.children)


def setup(app: Sphinx) -> dict:
    app.add_directive("ketpet-outputs", OutputsTable)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
