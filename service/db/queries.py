"""Reads shared by the resource modules."""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy.orm import Session

from ..errors import NotFound

__all__ = ["get_owned"]

Row = TypeVar("Row")


def get_owned(session: Session, table: type[Row], row_id: str, *, tenant: str, noun: str) -> Row:
    """The tenant's row; another tenant's is as unknown as a missing one (404, not 403)."""
    row = session.get(table, row_id)
    if row is None or row.tenant != tenant:  # type: ignore[attr-defined]
        raise NotFound(f"{noun} {row_id!r} does not exist")
    return row
