"""Statements a consumer runs for every event, sent as the database's own SQL. SQLAlchemy's execute() spends
about half of such a statement's cost (13 of 27 us) on work that never changes between calls: the statement's
cache key and lookup, each parameter processed one by one. A PreparedStatement compiles once per dialect and is
sent with exec_driver_sql, its values converted by its columns' types as SQLAlchemy converts them (times: the
same text on SQLite, the same value on PostgreSQL). Events (tracing, statement counts) still see it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Column, Connection, Table, TextClause, text
from sqlalchemy.engine import CursorResult, Dialect

Params = Callable[[dict[str, Any]], Any]


class PreparedStatement:
    """A text statement with :named parameters, the values of its `typed` columns (those of the same names)
    converted by their types; the others are sent as they are (text and numbers, which no type converts)."""

    def __init__(self, statement: TextClause, typed: Sequence[Column[Any]] = ()) -> None:
        self.statement = statement
        self.typed = typed
        self._prepared: dict[tuple[type[Dialect], str], tuple[str, Params]] = {}

    def execute(self, conn: Connection, values: dict[str, Any] | list[dict[str, Any]]) -> CursorResult[Any]:
        """Executes it with `values`, or once for each of a list of them (executemany)."""
        dialect = conn.dialect
        sql, params = self._prepared.get((type(dialect), dialect.paramstyle)) or self._prepare(dialect)
        return conn.exec_driver_sql(sql, [params(v) for v in values] if isinstance(values, list) else params(values))

    def _prepare(self, dialect: Dialect) -> tuple[str, Params]:
        compiled = self.statement.compile(dialect=dialect)
        processors = {c.name: p for c in self.typed if (p := c.type.dialect_impl(dialect).bind_processor(dialect))}
        params: Params
        if compiled.positional:
            # The driver's parameters in the order the SQL names them (qmark, format, numeric).
            order = [(name, processors.get(name)) for name in compiled.positiontup or ()]

            def params(row: dict[str, Any]) -> Any:
                return tuple(row[n] if p is None else p(row[n]) for n, p in order)
        elif processors:
            def params(row: dict[str, Any]) -> Any:
                return {**row, **{n: p(row[n]) for n, p in processors.items()}}
        else:
            def params(row: dict[str, Any]) -> Any:
                return row
        prepared = self._prepared[(type(dialect), dialect.paramstyle)] = (compiled.string, params)
        return prepared


def prepared_insert(table: Table, columns: Sequence[str] | None = None, conflict: str = "") -> PreparedStatement:
    """INSERT INTO table (columns: all by default) VALUES (...) [conflict, e.g. "ON CONFLICT (id) DO NOTHING"],
    each value converted by its column's type (those that convert: times, booleans)."""
    names = list(columns or [c.name for c in table.columns])
    return PreparedStatement(
        text(f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join(f':{n}' for n in names)})"
             f"{' ' + conflict if conflict else ''}"),
        [table.c[n] for n in names])
