"""The driver's watch over a running job: dead rollout actors restarted where they left off, the
faults a run met, and the run's account of its groups (summary.json)."""
