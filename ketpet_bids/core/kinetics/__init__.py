"""core kinetics package."""
