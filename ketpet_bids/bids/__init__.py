"""bids package."""
