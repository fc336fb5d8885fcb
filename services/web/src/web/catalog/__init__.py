"""Each area's part of the catalog, in its own module so the areas change independently."""
