"""Keyset pagination: newest first, with an opaque cursor."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import Session

from .errors import FieldError, Invalid

__all__ = ["Page", "paginate", "paginate_descending"]

Row = TypeVar("Row")


class Page(list):
    """Rows of one page, with the cursor of the next (None on the last page)."""

    next_cursor: str | None = None


def _encode(*key: Any) -> str:
    raw = json.dumps(list(key)).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str, parse: Any) -> Any:
    """The key a cursor carries, through ``parse``; 422 for one this service did not issue."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return parse(*json.loads(base64.urlsafe_b64decode(padded.encode())))
    except (ValueError, TypeError, UnicodeDecodeError):
        raise Invalid(
            "cursor is not one this service issued",
            [FieldError("#/cursor", "use next_cursor from a previous page")],
        ) from None


def _created_key(created_at: str, row_id: str) -> tuple[datetime, str]:
    return datetime.fromisoformat(created_at), str(row_id)


def _integer_key(value: int) -> int:
    if type(value) is not int:
        raise TypeError(value)
    return value


def paginate(
    session: Session, statement: Select[Any], table: Any, *, limit: int, cursor: str | None
) -> Page:
    """Run ``statement`` (selecting ``table`` rows) one page at a time."""
    if cursor:
        created_at, row_id = _decode(cursor, _created_key)
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
        page.next_cursor = _encode(last.created_at.isoformat(), last.id)
    return page


def paginate_descending(
    session: Session, statement: Select[Any], column: Any, *, limit: int, cursor: str | None
) -> Page:
    """Run ``statement`` one page at a time, by the integer ``column``, largest first."""
    if cursor:
        statement = statement.where(column < _decode(cursor, _integer_key))
    rows = session.scalars(statement.order_by(column.desc()).limit(limit + 1)).all()
    page = Page(rows[:limit])
    if len(rows) > limit:
        page.next_cursor = _encode(getattr(rows[limit - 1], column.key))
    return page
