"""Keyset pagination: newest first, with a cursor that names a position in the list.

A cursor is ``<key>`` or ``<key>.<id>`` (:data:`CURSOR_PATTERN`): the page
after it holds the rows that sort after that position, newest first. For lists
ordered by creation, ``key`` is the creation time in microseconds since the
Unix epoch and ``id`` breaks ties; for lists ordered by an integer (model
versions), ``key`` is that integer and the ``id`` part is not used.

Every string that matches the pattern is a position, whether or not this
service issued it, so the pattern is the whole rule: a cursor past the end of
the list gives an empty page, never an error. ``next_cursor`` of a page is the
position of its last row.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import Session

from .errors import FieldError, Invalid

__all__ = ["CURSOR_MAX_LENGTH", "CURSOR_PATTERN", "Page", "paginate", "paginate_descending"]

CURSOR_PATTERN = r"^[0-9]{1,18}(\.[A-Za-z0-9_-]{1,40})?$"
CURSOR_MAX_LENGTH = 59
_CURSOR = re.compile(CURSOR_PATTERN)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_LATEST = datetime.max.replace(tzinfo=UTC)


class Page(list):
    """Rows of one page, with the cursor of the next (None on the last page)."""

    next_cursor: str | None = None


def _decode(cursor: str) -> tuple[int, str]:
    """The (key, id) a cursor names; 422 for a string that is not a cursor."""
    if _CURSOR.fullmatch(cursor) is None:
        raise Invalid(
            "cursor is not a position in this list",
            [FieldError("#/cursor", "use next_cursor from a previous page")],
        )
    key, _, row_id = cursor.partition(".")
    return int(key), row_id


def _instant(microseconds: int) -> datetime:
    try:
        return _EPOCH + microseconds * _MICROSECOND
    except OverflowError:  # past year 9999: every row is older
        return _LATEST


def _microseconds(instant: datetime) -> int:
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return (instant - _EPOCH) // _MICROSECOND


def paginate(
    session: Session, statement: Select[Any], table: Any, *, limit: int, cursor: str | None
) -> Page:
    """Run ``statement`` (selecting ``table`` rows) one page at a time, newest first."""
    if cursor:
        key, row_id = _decode(cursor)
        created_at = _instant(key)
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
        page.next_cursor = f"{_microseconds(last.created_at)}.{last.id}"
    return page


def paginate_descending(
    session: Session, statement: Select[Any], column: Any, *, limit: int, cursor: str | None
) -> Page:
    """Run ``statement`` one page at a time, by the integer ``column``, largest first."""
    if cursor:
        key, _ = _decode(cursor)
        statement = statement.where(column < key)
    rows = session.scalars(statement.order_by(column.desc()).limit(limit + 1)).all()
    page = Page(rows[:limit])
    if len(rows) > limit:
        page.next_cursor = str(getattr(rows[limit - 1], column.key))
    return page
