"""``ketpet-bids-sim OUT_DIR``: write a simulated BIDS-PET study with known truth."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ketpet_bids.errors import InputError


def build_parser() -> argparse.ArgumentParser:
    """The ``ketpet-bids-sim`` argument parser."""
    from ketpet_bids.sim.cohort import PRESETS

    parser = argparse.ArgumentParser(
        prog="ketpet-bids-sim",
        description="Simulate a dynamic PET study as a BIDS 1.9 dataset (T1w, PET, arterial "
        "blood, participants/sessions/phenotype) with its ground truth in "
        "sourcedata/truth and T1w-space anatomy in derivatives/sim-anat.")
    parser.add_argument("out_dir", type=Path, help="new or empty output directory")
    parser.add_argument("--preset", choices=sorted(PRESETS),
                        help="study design with planted effects (k2-ketamine: 34 patients, "
                        "49 controls, ketamine/placebo, cortical increase, habenula decrease)")
    parser.add_argument("--n-patients", type=int, default=None,
                        help="number of patients (default: preset's, else 2)")
    parser.add_argument("--n-controls", type=int, default=None,
                        help="number of controls (default: preset's, else 2)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--size", choices=("tiny", "standard"), default="tiny",
                        help="tiny: 2 mm T1w, 4 mm PET, 14 frames; standard: 1 mm T1w, "
                        "2 mm PET 128x128x90, 31 frames (default: tiny)")
    parser.add_argument("--noise", type=float, default=1.0,
                        help="noise scale, 1 = realistic, 0 = off (default: 1)")
    parser.add_argument("--psf-fwhm", type=float, default=6.0, metavar="MM",
                        help="Gaussian PSF FWHM in mm, 0 = off (default: 6)")
    parser.add_argument("--max-motion-mm", type=float, default=4.0, metavar="MM",
                        help="largest head translation in mm, 0 = no motion (default: 4)")
    parser.add_argument("--voxel-sampling", choices=("average", "point"), default="average",
                        help="PET voxel value: mean of the blurred activity over the voxel "
                        "(average, like reconstructed PET) or its value at the voxel centre "
                        "(point, the rendering before 2026-11-30) (default: average)")
    parser.add_argument("--tracer", default="K2", help="trc label of the PET files (default: K2)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace OUT_DIR if it holds an earlier simulator output")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the simulator; 0 on success, 2 on bad usage (one-line message on stderr)."""
    args = build_parser().parse_args(argv)
    from ketpet_bids.sim import simulate_study

    try:
        out = simulate_study(args.out_dir, n_patients=args.n_patients,
                             n_controls=args.n_controls, size=args.size, seed=args.seed,
                             preset=args.preset, noise=args.noise, psf_fwhm_mm=args.psf_fwhm,
                             max_motion_mm=args.max_motion_mm, tracer=args.tracer,
                             overwrite=args.overwrite, voxel_sampling=args.voxel_sampling)
    except (ValueError, FileExistsError) as err:
        print(f"ketpet-bids-sim: {InputError(args.out_dir, str(err)).one_line()}", file=sys.stderr)
        return 2
    print(f"Simulated BIDS dataset: {out}\n  truth: {out / 'sourcedata' / 'truth'}\n"
          f"  anatomy derivatives: {out / 'derivatives' / 'sim-anat'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
