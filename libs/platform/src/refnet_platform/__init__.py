"""refnet's shared plumbing. No domain rules live here."""
