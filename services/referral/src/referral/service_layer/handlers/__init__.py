"""Referral's rules, one module a concern: routing (the steps every change takes), intake's case events, shelter's
bed events, the partner agencies' lifecycle changes, escalations (the SLA timer and supervisors) and the directory.
What only reads is in referral.service_layer.queries."""
