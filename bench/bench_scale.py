"""EM at scale: in memory, out-of-core, on Dask, and Spark MLlib, measured in one run.

Workload: 2M x 16 float64 (256 MB), K=8, full covariances, 20 EM iterations
(tol=0, so every engine runs all 20), the same initial parameters for our three
engines (Spark's GaussianMixture takes no initial model: it starts from its
own). Rows are written as .npy chunks of ~64 MiB in a temporary folder (the
store's chunk size), read back through memory maps (warm page cache).

* in memory: ``fit_mixture`` on the whole array;
* out-of-core: ``fit_chunked`` over the .npy chunks, in this process;
* Dask: ``fit_dask`` on a ``LocalCluster`` of 2 worker processes x 1 thread;
* Spark: ``pyspark.ml.clustering.GaussianMixture`` with ``local[2]`` on the
  same rows (from a Parquet file, cached and counted before the clock starts).

Seconds per iteration are a whole fit's wall time (its centring or
initialisation pass included) over 20. Bars: out-of-core within 1.5x of in
memory; Dask at least 5x faster per iteration than Spark.

Then the memory mode: a 4 GB float64 dataset (31.25M x 16) is written chunk by
chunk (never whole in memory) and fitted out-of-core (K=8, full, initialised
from the default 100 000-row sample, 3 iterations) in a child process, which
prints its peak RSS (VmHWM of /proc/self/status). Bar: under 1 GB.

Spark is optional: ``pip install pyspark pyarrow`` (and Java 17) to include
it; without them the bench says so and skips that row.

    python bench/bench_scale.py              # make bench-scale
    python bench/bench_scale.py --no-memory  # skip the 4 GB memory mode
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from service.gmm import FitConfig, fit_mixture
from service.gmm.chunked import ChunkedData, fit_chunked

N_SAMPLES, N_FEATURES, N_COMPONENTS, N_ITER = 2_000_000, 16, 8, 20
CHUNK_BYTES = 64 << 20
MEMORY_BYTES = 4_000_000_000
MEMORY_ITER = 3


def chunk_rows(n_features: int) -> int:
    return CHUNK_BYTES // (8 * n_features)


def rows_of_blobs(rng: np.random.Generator, centers: np.ndarray, n: int) -> np.ndarray:
    labels = rng.integers(len(centers), size=n)
    return centers[labels] + rng.normal(size=(n, centers.shape[1]))


def write_chunks(folder: Path, n_samples: int, seed: int) -> ChunkedData:
    """Rows of a K-blob mixture as .npy chunks, generated chunk by chunk."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(N_COMPONENTS, N_FEATURES))
    rows = chunk_rows(N_FEATURES)
    paths = []
    for i, start in enumerate(range(0, n_samples, rows)):
        paths.append(folder / f"chunk-{i:05d}.npy")
        np.save(paths[-1], rows_of_blobs(rng, centers, min(rows, n_samples - start)))
    return ChunkedData.from_npy(paths)


def timed(function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


def spark_seconds_per_iteration(X: np.ndarray, folder: Path) -> float | str:
    """Spark MLlib's GaussianMixture on local[2]; a reason string when it cannot run."""
    if shutil.which("java") is None:
        return "skipped: no java on PATH (Java 17 needed)"
    if importlib.util.find_spec("pyspark") is None or importlib.util.find_spec("pyarrow") is None:
        return "skipped: pyspark or pyarrow missing (pip install pyspark pyarrow)"
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyspark.ml.clustering import GaussianMixture
    from pyspark.ml.feature import VectorAssembler
    from pyspark.sql import SparkSession

    names = [f"x{j}" for j in range(X.shape[1])]
    path = folder / "rows.parquet"
    pq.write_table(pa.table({n: X[:, j] for j, n in enumerate(names)}), path)
    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.driver.memory", "6g")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    try:
        frame = VectorAssembler(inputCols=names, outputCol="features").transform(
            spark.read.parquet(str(path))
        )
        frame = frame.select("features").cache()
        frame.count()
        model, seconds = timed(
            GaussianMixture(k=N_COMPONENTS, maxIter=N_ITER, tol=0.0, seed=0).fit, frame
        )
        iterations = model.summary.numIter
        return seconds / iterations
    finally:
        spark.stop()


def dask_fit(data: ChunkedData, config: FitConfig, init: dict):
    import dask
    from distributed import Client, LocalCluster

    from service.gmm.on_dask import fit_dask

    # The nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which also pins
    # glibc's mmap threshold at 128 KiB: every chunk-sized temporary of the kernel
    # is then a fresh mmap, zeroed page by page, and EM runs about half as fast.
    with (
        dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}),
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=40,
        ) as cluster,
        Client(cluster) as client,
    ):
        client.run(lambda: None)  # the workers are up before the clock starts
        return timed(fit_dask, data, config, client=client, **init)


def memory_child(folder: str) -> None:
    """Fit the chunks in ``folder`` out-of-core; print the fit and this process's VmHWM."""
    data = ChunkedData.from_npy(sorted(Path(folder).glob("chunk-*.npy")))
    config = FitConfig(N_COMPONENTS, "full", tol=0.0, max_iter=MEMORY_ITER, random_state=0)
    result, seconds = timed(fit_chunked, data, config)
    status = Path("/proc/self/status").read_text()
    peak = next(line for line in status.splitlines() if line.startswith("VmHWM"))
    print(f"{data.n_samples} {seconds:.1f} {result.lower_bound:.6f} {int(peak.split()[1]) // 1024}")


def memory_mode(folder: Path) -> tuple[int, float, int]:
    n_samples = MEMORY_BYTES // (8 * N_FEATURES)
    write_chunks(folder, n_samples, seed=1)
    out = subprocess.run(
        [sys.executable, __file__, "--memory-child", str(folder)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return int(out[0]), float(out[1]), int(out[3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-memory", action="store_true", help="skip the 4 GB memory mode")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child)
        return

    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        folder = Path(tmp)
        data = write_chunks(folder, N_SAMPLES, seed=0)
        X = np.concatenate([reader() for reader in data.readers])
        start = fit_mixture(X[::100], FitConfig(N_COMPONENTS, "full", max_iter=5, random_state=0))
        u = start.parameters.precisions_cholesky
        init = dict(
            weights_init=start.parameters.weights,
            means_init=start.parameters.means,
            precisions_init=u @ np.transpose(u, (0, 2, 1)),
        )
        config = FitConfig(N_COMPONENTS, "full", tol=0.0, max_iter=N_ITER)
        print(
            f"{N_SAMPLES} x {N_FEATURES}, K={N_COMPONENTS}, full, {N_ITER} iterations, "
            f"{len(data.readers)} chunks of <= {chunk_rows(N_FEATURES)} rows"
        )
        in_memory, t_memory = timed(fit_mixture, X, config, **init)
        out_of_core, t_chunked = timed(fit_chunked, data, config, **init)
        on_dask, t_dask = dask_fit(data, config, init)
        spark = spark_seconds_per_iteration(X, folder)
        del X

        for name, result in (("out-of-core", out_of_core), ("dask", on_dask)):
            difference = np.max(
                np.abs(np.subtract(result.lower_bound_history, in_memory.lower_bound_history))
            )
            assert result.n_iter == N_ITER and difference < 1e-10, (name, difference)
        print(f"lower bounds of all three of ours agree to 1e-10 ({in_memory.lower_bound:.10f})")
        print()
        print(f"{'engine':<24} {'s/iter':>8} {'ratio':>28}")
        print(f"{'in memory':<24} {t_memory / N_ITER:8.3f}")
        ratio = t_chunked / t_memory
        verdict = "ok" if ratio <= 1.5 else "MISSED"
        print(
            f"{'out-of-core (npy chunks)':<24} {t_chunked / N_ITER:8.3f} "
            f"{f'{ratio:.2f}x in memory (bar <= 1.5x) {verdict}':>28}"
        )
        print(f"{'dask LocalCluster 2x1':<24} {t_dask / N_ITER:8.3f}")
        if isinstance(spark, str):
            print(f"{'spark local[2]':<24} {spark}")
        else:
            ratio = spark / (t_dask / N_ITER)
            verdict = "ok" if ratio >= 5 else "MISSED"
            print(
                f"{'spark local[2]':<24} {spark:8.3f} "
                f"{f'dask {ratio:.1f}x faster (bar >= 5x) {verdict}':>28}"
            )

    if not args.no_memory:
        with tempfile.TemporaryDirectory(prefix="bench-scale-memory-") as tmp:
            n_samples, seconds, peak_mib = memory_mode(Path(tmp))
        verdict = "ok" if peak_mib < 1024 else "MISSED"
        print()
        print(
            f"memory: {n_samples} x {N_FEATURES} float64 ({MEMORY_BYTES / 1e9:.0f} GB on disk), "
            f"out-of-core, sample init + {MEMORY_ITER} iterations in {seconds:.0f} s: "
            f"peak RSS (VmHWM) {peak_mib} MiB (bar < 1024 MiB) {verdict}"
        )


if __name__ == "__main__":
    main()
