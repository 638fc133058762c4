"""The HTTP API: routers, schemas, problem+json errors."""

from .app import create_app

__all__ = ["create_app"]
