"""Where a task's independent fits run: this machine (joblib's default processes) or a dask cluster.

The label-efficiency and transfer sweeps are thousands of independent fits (one per distinct
support set: repetition x n, its classifiers sharing one transform), dispatched with
``joblib.Parallel``. Under ``--backend dask`` the same calls go through joblib's dask backend
to the workers of a cluster the user already runs (``--backend-address tcp://host:8786``),
or, without an address, to a local cluster of one single-threaded worker process per core.
Every fit is seeded by its own arguments and the results come back in submission order, so
the numbers are bit-identical to a local run (tests/test_backends.py).

``hemabench sweep`` (submitit) spreads *encoders* over jobs; ``--backend`` spreads one task's
fits over a cluster's workers; the two combine (each sweep job may use the cluster).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from hemabench.errors import HemabenchError

BACKENDS = ("local", "dask")


@contextmanager
def fit_backend(name: str = "local", address: str | None = None) -> Iterator[None]:
    """Run the enclosed joblib work on ``name``: ``local`` changes nothing; ``dask`` connects a
    client to ``address`` (or starts a local cluster of single-threaded processes, one per
    core) and makes it joblib's backend until the block ends."""
    if name == "local":
        if address:
            raise HemabenchError("--backend-address needs --backend dask")
        yield
        return
    if name != "dask":
        raise HemabenchError(f"unknown backend {name!r}; one of {', '.join(BACKENDS)}")
    try:
        from distributed import Client, LocalCluster
        from joblib import parallel_config
    except ImportError:
        raise HemabenchError("--backend dask needs dask.distributed: pip install 'hemabench[dask]'") from None
    if address:
        try:
            client = Client(address, timeout="30s")
        except OSError as exc:
            raise HemabenchError(f"cannot reach the dask scheduler at {address}: {exc}") from None
        cluster = None
    else:
        cluster = LocalCluster(n_workers=os.cpu_count() or 1, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    try:
        with parallel_config(backend="dask"):
            yield
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
