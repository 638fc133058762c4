"""JSON responses for large numeric bodies, serialised by orjson (NumPy arrays natively)."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from fastapi.responses import JSONResponse

from ..idempotency import Answer

__all__ = ["NumpyJSONResponse", "ProblemResponse", "answer_response", "numpy_json"]


def numpy_json(content: Any) -> bytes:
    """JSON of ``content``, NumPy arrays included, without a per-float Python loop."""
    return orjson.dumps(content, default=_contiguous, option=orjson.OPT_SERIALIZE_NUMPY)


class NumpyJSONResponse(JSONResponse):
    """Serialises dicts holding NumPy arrays without a per-float Python loop."""

    def render(self, content: Any) -> bytes:
        return numpy_json(content)


def _contiguous(value: Any) -> Any:
    """orjson serialises C-contiguous arrays only; hand it a contiguous copy of the rest."""
    if isinstance(value, np.ndarray):
        return np.ascontiguousarray(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


class ProblemResponse(JSONResponse):
    media_type = "application/problem+json"


def answer_response(answer: Answer) -> JSONResponse:
    """The HTTP response of a (possibly replayed) idempotent answer."""
    return JSONResponse(answer.body, status_code=answer.status_code, headers=answer.headers)
