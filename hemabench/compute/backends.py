"""Where a task's independent fits run: this machine (joblib's default processes) or a dask cluster.

The label-efficiency and transfer sweeps are thousands of independent fits (one per distinct
support set: repetition x n, its classifiers sharing one transform), dispatched with
``joblib.Parallel``. Under ``--backend dask`` the same calls go through joblib's dask backend
to the workers of a cluster the user already runs (``--backend-address tcp://host:8786``;
an address that refuses or does not answer within ``CONNECT_TIMEOUT_S`` is one line, at once),
or, without an address, to a local cluster of one single-threaded worker process per core.
Every fit is seeded by its own arguments and the results come back in submission order, so
the numbers are bit-identical to a local run (tests/test_backends.py).

``hemabench sweep`` (submitit) spreads *encoders* over jobs; ``--backend`` spreads one task's
fits over a cluster's workers; the two combine (each sweep job may use the cluster).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from hemabench.errors import HemabenchError

BACKENDS = ("local", "dask")
SCHEMES = ("tcp", "tls")  # the dask schedulers' network protocols hemabench connects to
CONNECT_TIMEOUT_S = 5  # a scheduler that does not answer within this is reported, not retried for 30 s


def check_address(address: str) -> tuple[str, int]:
    """(host, port) of ``[tcp|tls://]HOST:PORT``; one line naming the problem otherwise."""
    text = str(address).strip()
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "tcp", text
    host, colon, port = rest.rpartition(":")
    host = host.strip("[]")
    if not text or scheme not in SCHEMES or not colon or not host or "/" in rest:
        raise HemabenchError(f"--backend-address {address!r}: expected tcp://HOST:PORT (or tls://HOST:PORT), "
                             "e.g. tcp://10.0.0.5:8786")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise HemabenchError(f"--backend-address {address!r}: port {port!r} is not a number from 1 to 65535")
    return host, int(port)


def job_count(n_jobs: int | None = None) -> int:
    """Worker processes for independent jobs on this machine: ``n_jobs``, else ``$HEMABENCH_JOBS``,
    else one per core (joblib's -1)."""
    return n_jobs or int(os.environ.get("HEMABENCH_JOBS", 0)) or -1


@contextmanager
def fit_backend(name: str = "local", address: str | None = None) -> Iterator[None]:
    """Run the enclosed joblib work on ``name``: ``local`` changes nothing; ``dask`` connects a
    client to ``address`` (or starts a local cluster of single-threaded processes, one per
    core) and makes it joblib's backend until the block ends."""
    if name == "local":
        if address is not None:
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
    if address is not None:
        host, port = check_address(address)
        try:  # a refused or unroutable address fails here within CONNECT_TIMEOUT_S, not after dask's retries
            socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
            client = Client(address, timeout=f"{CONNECT_TIMEOUT_S}s")
        except (OSError, TimeoutError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise HemabenchError(f"cannot reach the dask scheduler at {address} within {CONNECT_TIMEOUT_S} s: "
                                 f"{reason}") from None
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
