"""Query strings hold only the parameters an operation documents; any other is a 422.

An ignored parameter is a silent bug (``?verison=2`` would serve the active
version), and it would make the document's parameter list less than the whole
truth. The rule is read from the OpenAPI document itself, so a new route gets
it without doing anything, whether FastAPI reads its query or the route does
(and documents it by hand). A request without a query string costs one
dictionary lookup; one with a query, a parse and a few regex matches.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import FieldError
from .document import documented_path
from .problems import problem_response

__all__ = ["UndocumentedQuery"]


class UndocumentedQuery:
    """Answers 422 problem+json, naming them, for query parameters the operation lacks."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = scope.get("query_string") if scope["type"] == "http" else None
        if query:
            documented = documented_path(scope["app"], scope["path"])
            accepted = documented.query.get(scope["method"]) if documented else None
            if accepted is not None:
                given = {name for name, _ in parse_qsl(query.decode("latin-1"), True)}
                if unknown := sorted(given - accepted):
                    more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
                    response = problem_response(
                        422,
                        f"#/{unknown[0]}: not a query parameter of this operation{more}",
                        title="Unprocessable Content",
                        type_="/problems/validation",
                        errors=[
                            FieldError(f"#/{name}", "is not a query parameter of this operation")
                            for name in unknown[:20]
                        ],
                    )
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)
