"""refnet's local infrastructure harness: a real Kafka broker and PostgreSQL, no Docker."""
