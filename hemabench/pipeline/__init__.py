"""``hemabench run`` and its plans: the runner (records -> split -> embeddings -> protocol -> result), named
suites, and cluster sweeps."""
