"""Reading fields of the stored result JSON inside SQL, the same way on SQLite and PostgreSQL.

The store keeps each ProbeResult as JSON text (`endpoints.result`); a report groups by fields of it
(uptime, member names, access) without pulling every row into Python. SQLite's json_extract gives
1/0 for true/false, PostgreSQL's jsonb_extract_path_text gives 'true'/'false': callers only see
`flag`, `number` and `text`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, cast, func, literal
from sqlalchemy.dialects.postgresql import JSONB


class JsonSql:
    def __init__(self, dialect: str) -> None:
        self.pg = dialect == "postgresql"

    def doc(self, column: Any) -> Any:
        """The JSON document a text column holds, parsed once where the database can."""
        return cast(column, JSONB) if self.pg else column

    def text(self, doc: Any, *path: str) -> Any:
        if self.pg:
            return func.jsonb_extract_path_text(doc, *(literal(p) for p in path))
        return func.json_extract(doc, _sqlite_path(path))

    def number(self, doc: Any, *path: str) -> Any:
        if self.pg:
            return cast(self.text(doc, *path), BigInteger)
        return func.json_extract(doc, _sqlite_path(path))

    def flag(self, doc: Any, *path: str) -> Any:
        """True exactly when the field is JSON `true` (null, false and absent are not)."""
        if self.pg:
            return func.coalesce(self.text(doc, *path) == "true", False)
        return func.coalesce(func.json_type(doc, _sqlite_path(path)) == "true", False)


def _sqlite_path(path: tuple[str, ...]) -> str:
    return "$" + "".join(f"[{p}]" if p.isdigit() else f'."{p}"' for p in path)
