"""refnet's web front door: people's pages over the gRPC apis, as the signed-in person (see README.md)."""
