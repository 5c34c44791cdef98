"""workflows pet package."""
