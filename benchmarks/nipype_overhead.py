"""Scheduling overhead of nipype per trivial node, with the execution settings the app uses.

Run: ``python benchmarks/nipype_overhead.py [N_NODES]``. Prints seconds per node for
MultiProc with nipype's default polling (2 s) and with ours (0.01 s), in the same run.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

os.environ.setdefault("NIPYPE_NO_ET", "1")

from nipype.interfaces import utility as niu  # noqa: E402
from nipype.pipeline import engine as pe  # noqa: E402


def _increment(x: int) -> int:
    return x + 1


def chain_workflow(n_nodes: int, base_dir: str) -> pe.Workflow:
    """A chain of ``n_nodes`` trivial function nodes (each waits for the previous one)."""
    wf = pe.Workflow(name="overhead", base_dir=base_dir)
    previous = None
    for i in range(n_nodes):
        node = pe.Node(niu.Function(input_names=["x"], output_names=["out"],
                                    function=_increment), name=f"n{i}")
        if previous is None:
            node.inputs.x = 0
        else:
            wf.connect(previous, "out", node, "x")
        previous = node
    return wf


def seconds_per_node(n_nodes: int, poll: float | None) -> float:
    """Wall time per node of a chain run with MultiProc on 2 processes."""
    with tempfile.TemporaryDirectory() as tmp:
        wf = chain_workflow(n_nodes, tmp)
        if poll is not None:
            wf.config["execution"] = {"poll_sleep_duration": poll}
        start = time.perf_counter()
        wf.run(plugin="MultiProc", plugin_args={"n_procs": 2})
        return (time.perf_counter() - start) / n_nodes


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    ours = seconds_per_node(n, 0.01)
    default = seconds_per_node(min(n, 5), None)
    print(f"nodes={n} ours(poll=0.01s)={ours:.3f} s/node default(poll=2s)={default:.3f} s/node")
