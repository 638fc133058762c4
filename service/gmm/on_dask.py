"""EM on a Dask cluster: the out-of-core fit's passes run where the chunks are read.

:func:`fit_dask` is :func:`.chunked.fit_chunked` with a :class:`DaskChunkMap`:
every pass submits one task per chunk (``apply_to_chunk``: the chunk's reader
and our fused kernels run on the Dask worker), then adds the per-chunk results
up in a binary tree of tasks on the workers, so only the final sufficient
statistics (a few kilobytes) come back to the driver, which does the M-step and
checks convergence; the progress callback runs there between iterations, so
cancelling, a lease and a timeout work as for a local fit.

Initialisation on the cluster: the summary pass's tasks pick the rows of the
uniform random sample (``init_sample_size`` rows, see :mod:`.chunked`) from
their chunks; the sample comes back to the driver, where the usual
initialisation runs on it.

Nothing is scattered: every task carries its reader (a small picklable callable)
and the current parameters, so when a Dask worker dies the scheduler recomputes
its lost tasks on another worker and the fit goes on with the same answer.

Needs ``distributed`` (``pip install 'gmm-service[dask]'``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from .chunked import ChunkedData, apply_to_chunk, fit_chunked
from .em import FitConfig, FitResult

if TYPE_CHECKING:
    from distributed import Client, Future

__all__ = ["DaskChunkMap", "fit_dask"]

T = TypeVar("T")


class DaskChunkMap:
    """Runs a pass's per-chunk tasks on a Dask cluster and tree-reduces their results.

    Parameters
    ----------
    client : distributed.Client
    """

    def __init__(self, client: Client) -> None:
        self.client = client

    def __call__(
        self,
        function: Callable[..., T],
        tasks: Sequence[tuple[Any, ...]],
        combine: Callable[[T, T], T],
    ) -> T:
        submit = self.client.submit
        level: list[Future] = [
            submit(apply_to_chunk, function, *task, pure=False) for task in tasks
        ]
        made = list(level)
        try:
            while len(level) > 1:  # adjacent pairs, in order: combine need not commute
                level = [
                    submit(combine, level[i], level[i + 1], pure=False)
                    if i + 1 < len(level)
                    else level[i]
                    for i in range(0, len(level), 2)
                ]
                made.extend(level)
            return level[0].result()
        except BaseException:
            self.client.cancel(made)
            raise


def fit_dask(
    data: ChunkedData, config: FitConfig | None = None, *, client: Client, **kwargs
) -> FitResult:
    """Fit a Gaussian mixture by EM on a Dask cluster.

    Parameters
    ----------
    data : ChunkedData
        Its readers must be callable on the Dask workers (a file path or URL
        the workers reach, not a file only the driver sees).
    config : FitConfig
    client : distributed.Client
    **kwargs
        As for :func:`.chunked.fit_chunked` (initial parameters, sample
        weights, ``init_sample_size``, ``callback``).

    Returns
    -------
    FitResult
    """
    return fit_chunked(data, config, chunk_map=DaskChunkMap(client), **kwargs)
