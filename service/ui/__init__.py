"""The web console at ``/ui``: static files (plain ES modules, no build step).

The page talks to the service only through the public REST API. Third-party
files live under ``static/vendor`` with their licenses (see ``static/vendor/NOTICE``).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["STATIC_DIR"]

STATIC_DIR = Path(__file__).resolve().parent / "static"
