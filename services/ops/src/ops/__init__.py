"""refnet operations: what flows, where it piles up, what failed, and the reports managers publish."""
