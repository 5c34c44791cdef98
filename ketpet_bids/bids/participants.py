"""Per-participant and per-session values from ``participants.tsv`` and ``sessions.tsv``."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ketpet_bids.errors import InputError

WEIGHT_COLUMNS = ("body_weight", "weight", "BodyWeight")


def _read_tsv(path: Path) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path, sep="\t", na_values=["n/a"], dtype={"participant_id": str,
                                                                      "session_id": str})
    except (ValueError, pd.errors.ParserError) as err:
        raise InputError(path, f"cannot be read as a TSV table ({err})") from None


def _weight_from(table: pd.DataFrame | None, key: str, value: str) -> float | None:
    if table is None or key not in table.columns:
        return None
    rows = table[table[key] == value]
    for column in WEIGHT_COLUMNS:
        if column in rows.columns and len(rows) and not pd.isna(rows[column].iloc[0]):
            weight = float(rows[column].iloc[0])
            if not math.isfinite(weight) or weight <= 0:
                return None
            return weight
    return None


def body_weight_kg(bids_dir: Path, subject: str, session: str | None) -> float | None:
    """Body weight (kg) of a participant at a session, or ``None`` when not recorded.

    ``sessions.tsv`` (column ``body_weight``, per session) wins over ``participants.tsv``.
    """
    sessions = _read_tsv(Path(bids_dir) / f"sub-{subject}" / f"sub-{subject}_sessions.tsv")
    if session:
        weight = _weight_from(sessions, "session_id", f"ses-{session}")
        if weight is not None:
            return weight
    participants = _read_tsv(Path(bids_dir) / "participants.tsv")
    return _weight_from(participants, "participant_id", f"sub-{subject}")
