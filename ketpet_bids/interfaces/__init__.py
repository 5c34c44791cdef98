"""interfaces package."""
