"""``ketpet-bids-demo OUT_DIR``: simulate a small study, run both levels, show the reports."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ketpet_bids.cli.run import main as ketpet_main


def build_parser() -> argparse.ArgumentParser:
    """The ``ketpet-bids-demo`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="ketpet-bids-demo",
        description="Simulate a tiny [11C]K-2 study (4 patients with baseline and post scans, "
        "3 controls), run the participant and group levels on it, and print where the "
        "derivatives and reports are. Takes 10–15 minutes on 2 cores.")
    parser.add_argument("out_dir", type=Path, help="empty or new directory for the demo")
    parser.add_argument("--n-patients", type=int, default=4,
                        help="patients (baseline and post scans; half ketamine, half placebo)")
    parser.add_argument("--n-controls", type=int, default=3, help="controls (baseline only)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--noise", type=float, default=1.0,
                        help="noise scale of the simulated PET (0: noise-free)")
    parser.add_argument("--psf-fwhm", type=float, default=6.0, metavar="MM",
                        help="scanner resolution of the simulated PET (0: none)")
    parser.add_argument("--nprocs", type=int, default=os.cpu_count() or 1)
    return parser


@contextmanager
def demo_templates(root: Path) -> Iterator[None]:
    """Point ``TEMPLATEFLOW_HOME`` at a TemplateFlow tree made from the simulator's phantom
    (restored on exit).

    The demo runs offline, so the MNI152NLin2009cAsym files (template, tissue priors, aseg,
    Schaefer and MASSP atlases) are stand-ins rendered from a deformed phantom on the tiny
    study's 2 mm grid (``ketpet_bids.sim.templateflow``); real studies use the real files.
    """
    from ketpet_bids.sim.templateflow import write_templateflow

    if not (root / "tpl-MNI152NLin2009cAsym").is_dir():
        write_templateflow(root, voxel_mm=2.0)
    before = os.environ.get("TEMPLATEFLOW_HOME")
    os.environ["TEMPLATEFLOW_HOME"] = str(root)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TEMPLATEFLOW_HOME")
        else:
            os.environ["TEMPLATEFLOW_HOME"] = before


def participant_options(bids_dir: Path, work: Path, nprocs: int, psf_fwhm: float
                        ) -> list[str]:
    """Participant-level options of the demo: K-2 preset, the simulator's anatomy (seg-sim)
    plus the default template atlas, maps in T1w and template space, and GTM when the
    simulated scanner has a PSF (it is known for simulated data)."""
    pvc = ["--pvc", "gtm", "--pvc-psf", str(psf_fwhm)] if psf_fwhm > 0 else []
    return ["-w", str(work), "--nprocs", str(nprocs), "--preset", "k2",
            "--anat-derivatives", str(bids_dir / "derivatives" / "sim-anat"),
            "--atlas", "default", "--voxelwise", "both", *pvc]


def main(argv: list[str] | None = None) -> int:
    """Run the demo; return the exit code of the first level that fails, else 0."""
    from ketpet_bids.sim import simulate_study

    args = build_parser().parse_args(argv)
    out = args.out_dir.absolute()
    bids_dir, derivatives, work = out / "bids", out / "derivatives", out / "work"
    if not (bids_dir / "dataset_description.json").exists():
        print(f"Simulating the study into {bids_dir} …", flush=True)
        simulate_study(bids_dir, n_patients=args.n_patients, n_controls=args.n_controls,
                       size="tiny", seed=args.seed, preset="k2-ketamine", noise=args.noise,
                       psf_fwhm_mm=args.psf_fwhm)
    with demo_templates(out / "templateflow"):
        code = ketpet_main([str(bids_dir), str(derivatives), "participant",
                            *participant_options(bids_dir, work, args.nprocs, args.psf_fwhm)])
        if not code:
            code = ketpet_main([str(bids_dir), str(derivatives), "group", "-w", str(work)])
    if code:
        return code
    print("\nDemo finished.")
    print(f"  simulated BIDS dataset and its truth: {bids_dir} (truth in sourcedata/truth)")
    print(f"  derivatives: {derivatives}")
    for report in sorted(derivatives.glob("sub-*.html")):
        print(f"  participant report: {report}")
    print(f"  group report: {derivatives / 'group' / 'group.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
