"""Published numbers typed from papers (``benchmarks/reported/``): the values with their citations, and
the protocol each corresponds to. Facts beside runs, never runs."""
