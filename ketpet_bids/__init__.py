"""ketpet_bids: a BIDS-App for dynamic PET.

The version below is the single source of truth (read by ``pyproject.toml``).
"""

__version__ = "0.1.0"
