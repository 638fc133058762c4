"""A direct line for the matrix routes: the service's main loop, without the router.

FastAPI's routing and dependency machinery cost more per request than
scoring a row (route matching over every route, dependency solving, exception
scopes). The matrix routes (predict, score, anomalies, condition, impute)
need none of it: they read their path, query, key and body themselves. This
plain ASGI middleware sends ``POST /v1/models/{model_id}/<route>`` straight
to the route's own endpoint and turns the service's errors into the same
problem+json the app's handlers give; everything else goes on to the app.
The routes stay declared on the app (the OpenAPI document describes them, and
logs and metrics name them by their template).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import ServiceError
from ..gmm import GMMError
from .problems import DATABASE_ERRORS, on_database_error, problem_for

__all__ = ["HotPath"]

Endpoint = Callable[[Request], Awaitable[Response]]
_PATH = re.compile(r"^/v1/models/([^/]+)/([a-z]+)$")


class HotPath:
    """Dispatches the endpoints named in ``names`` directly (see the module docstring).

    ``routes``: the router's routes they are declared as.
    """

    def __init__(self, app: ASGIApp, routes: list, names: tuple[str, ...]) -> None:
        self.app = app
        self.routes: dict[str, tuple[Endpoint, APIRoute]] = {}
        for route in routes:
            if isinstance(route, APIRoute) and "POST" in route.methods:
                action = route.path.rsplit("/", 1)[-1]
                if route.path == f"/v1/models/{{model_id}}/{action}" and action in names:
                    self.routes[action] = (route.endpoint, route)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            match = _PATH.match(scope["path"])
            found = self.routes.get(match.group(2)) if match else None
            if found is not None:
                endpoint, route = found
                scope["route"] = route
                scope["path_params"] = {"model_id": match.group(1)}  # type: ignore[union-attr]
                request = Request(scope, receive)
                try:
                    response = await endpoint(request)
                except (ServiceError, GMMError) as exc:
                    response = problem_for(exc)
                except DATABASE_ERRORS as exc:  # 503 when transient, as the app answers
                    response = await on_database_error(request, exc)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
