"""The floor the service is measured against: a bare FastAPI app that does no work.

``POST /score`` reads the same bodies the service's score route takes (JSON
with orjson, or ``application/x-npy``) and answers one float per row in the
same shape, so that ``bench_serve.py`` compares the service's request path
with what the framework itself costs. Run by the bench under the same uvicorn
options as ``gmm-service serve``:

    python bench/bare_app.py --port 8001
"""

from __future__ import annotations

import argparse
import io

import numpy as np
import orjson
import uvicorn
from fastapi import FastAPI, Request, Response

app = FastAPI()


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


@app.post("/score")
async def score(request: Request) -> Response:
    body = await request.body()
    if request.headers.get("content-type") == "application/x-npy":
        n_rows = len(np.load(io.BytesIO(body), allow_pickle=False))
        return Response(_npy(np.zeros(n_rows)), media_type="application/x-npy")
    rows = orjson.loads(body)["data"]
    answer = {"log_likelihood": [0.0] * len(rows), "mean_log_likelihood": 0.0}
    return Response(orjson.dumps(answer), media_type="application/json")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    # The options `gmm-service serve` runs uvicorn with.
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="info",
        log_config=None,
        timeout_graceful_shutdown=30,
    )
