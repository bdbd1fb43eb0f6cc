"""absl entry points: ``tfbio-train``, ``tfbio-eval``, ``tfbio-export``, ``tfbio-sweep``."""
