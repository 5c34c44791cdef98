"""Ground-truth simulator of BIDS-PET studies (see DESIGN.md §7).

``simulate_study`` writes a BIDS 1.9 PET dataset with T1w anatomy, arterial blood, a cohort
with planted effects, sMRIPrep-style anatomy derivatives and the truth (``sourcedata/truth``).
"""

from ketpet_bids.sim.study import simulate_study
from ketpet_bids.sim.writer import raw_path, truth_path

__all__ = ["raw_path", "simulate_study", "truth_path"]
