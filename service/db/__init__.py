"""Persistence: tables, engines and sessions."""

from .session import Database
from .tables import Base, DatasetRow, JobRow, ModelRow

__all__ = ["Base", "Database", "DatasetRow", "JobRow", "ModelRow"]
