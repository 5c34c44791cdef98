"""``ketpet-bids-demo OUT_DIR``: simulate a small study, run both levels, show the reports."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ketpet_bids.cli.run import main as ketpet_main


def build_parser() -> argparse.ArgumentParser:
    """The ``ketpet-bids-demo`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="ketpet-bids-demo",
        description="Simulate a tiny [11C]K-2 study (4 patients with baseline and post scans, "
        "3 controls), run the participant and group levels on it, and print where the "
        "derivatives and reports are. Takes a few minutes on 2 cores.")
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
    common = [str(bids_dir), str(derivatives)]
    # The scanner resolution is known for simulated data: correct for partial volumes (GTM).
    pvc = ["--pvc", "gtm", "--pvc-psf", str(args.psf_fwhm)] if args.psf_fwhm > 0 else []
    code = ketpet_main([*common, "participant", "-w", str(work), "--nprocs", str(args.nprocs),
                        "--preset", "k2", "--anat-derivatives",
                        str(bids_dir / "derivatives" / "sim-anat"), *pvc])
    if code:
        return code
    code = ketpet_main([*common, "group", "-w", str(work)])
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
