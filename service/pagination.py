"""Keyset pagination: newest first, with an opaque cursor."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import Session

from .errors import FieldError, Invalid

__all__ = ["Page", "paginate"]

Row = TypeVar("Row")


class Page(list):
    """Rows of one page, with the cursor of the next (None on the last page)."""

    next_cursor: str | None = None


def _encode(created_at: datetime, row_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, row_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return datetime.fromisoformat(created_at), str(row_id)
    except (ValueError, TypeError, UnicodeDecodeError):
        raise Invalid(
            "cursor is not one this service issued",
            [FieldError("#/cursor", "use next_cursor from a previous page")],
        ) from None


def paginate(
    session: Session, statement: Select[Any], table: Any, *, limit: int, cursor: str | None
) -> Page:
    """Run ``statement`` (selecting ``table`` rows) one page at a time."""
    if cursor:
        created_at, row_id = _decode(cursor)
        statement = statement.where(
            or_(
                table.created_at < created_at,
                and_(table.created_at == created_at, table.id < row_id),
            )
        )
    rows = session.scalars(
        statement.order_by(table.created_at.desc(), table.id.desc()).limit(limit + 1)
    ).all()
    page = Page(rows[:limit])
    if len(rows) > limit:
        last = rows[limit - 1]
        page.next_cursor = _encode(last.created_at, last.id)
    return page
