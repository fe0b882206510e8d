"""SQLite views translated to PostgreSQL with sqlglot, created after the tables are promoted,
and kept only when they are proven to return the same rows as in SQLite.

Translation: identifiers are matched case-insensitively to the catalog's spelling (SQLite
ignores case, quoted PostgreSQL identifiers do not), and ``boolean_column = 0/1``
comparisons become ``= false/true`` because the column is ``boolean`` now.

Proof, inside the promotion transaction, in the view's own savepoint right after its CREATE
VIEW: ``SELECT * FROM view`` is read in full on both sides; each value is put in a canonical
text form, each row (the list of its values) is hashed (BLAKE2b, 64 bits), and the row count
and the sum of the row hashes mod 2^64 (so row order does not matter) must be equal. The
canonical form follows the type PostgreSQL gives each view column: the SQLite value is first
converted to that type by the load's own converter (``convert``: 0/1 -> boolean, ISO text,
unix seconds or Julian days -> timestamp, JSON text -> jsonb's form, ...), then both sides
are rendered as ``canonical.PYTHON`` does, except numerics, compared by value (9.5 = 9.50).
Other PostgreSQL types (interval, uuid, arrays, ...) are compared as text.

A view that SQLite itself cannot read (it calls a function of the application, such as
Calibre's ``title_sort()``), that sqlglot or PostgreSQL refuses, or whose rows differ is not
created: its savepoint is rolled back, and the report says why.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql
from psycopg.types.string import TextLoader

from consoleai_etl.core.encode.canonical import PYTHON, Canonical, numeric_text
from consoleai_etl.core.encode.convert import Converter
from consoleai_etl.core.errors import ConversionError
from consoleai_etl.core.plan.declared import declared_pg_type
from consoleai_etl.core.plan.names import pg_column, pg_identifier
from consoleai_etl.core.source.catalog import Catalog, SchemaObject, sqlite_quote
from consoleai_etl.core.target.ddl import qualified
from consoleai_etl.core.types import builtin
from consoleai_etl.core.types.pgtype import PgType

if TYPE_CHECKING:
    from sqlglot.expressions import Expression


@dataclass
class ViewResult:
    name: str
    target_name: str
    created: bool
    source_sql: str
    target_sql: str | None = None
    reason: str | None = None  # why the view was not created
    sqlite_rows: int | None = None
    pg_rows: int | None = None
    sqlite_checksum: str | None = None
    pg_checksum: str | None = None


def _spellings(catalog: Catalog) -> dict[str, str]:
    names = {t.name.lower(): pg_identifier(t.name) for t in catalog.tables}
    for table in catalog.tables:
        for column in table.columns:
            names.setdefault(column.name.lower(), pg_column(column.name))
    return names


def _boolean_columns(catalog: Catalog) -> set[str]:
    return {
        c.name.lower()
        for t in catalog.tables
        for c in t.columns
        if (pg := declared_pg_type(c.declared_type)) is not None and pg.kind == "boolean"
    }


def _fixer(catalog: Catalog) -> Callable[[Expression], Expression]:
    """The sqlglot transform of a SQLite text for PostgreSQL: identifiers in the catalog's
    spelling, always quoted; ``boolean_column = 0/1`` as ``= false/true``."""
    from sqlglot import exp

    spellings, booleans = _spellings(catalog), _boolean_columns(catalog)

    def fix(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Identifier):
            lower = node.name.lower()
            # Table aliases are case-insensitive in SQLite: give definition and uses one case.
            is_alias = isinstance(node.parent, exp.TableAlias) or (
                isinstance(node.parent, exp.Column) and node.arg_key == "table"
            )
            spelling = spellings.get(lower, lower if is_alias else node.name)
            return exp.Identifier(this=spelling, quoted=True)
        if isinstance(node, exp.EQ | exp.NEQ):
            column, literal = node.this, node.expression
            if (
                isinstance(column, exp.Column)
                and column.name.lower() in booleans
                and isinstance(literal, exp.Literal)
                and literal.name in ("0", "1")
            ):
                node.set("expression", exp.Boolean(this=literal.name == "1"))
        return node

    return fix


def translate(view: SchemaObject, catalog: Catalog) -> str:
    """The view's CREATE VIEW statement in PostgreSQL, every identifier quoted, named
    ``pg_identifier(view.name)`` (no schema: it is created on the target's search path).
    sqlglot is imported here, when a source has a view: importing it takes 0.1-0.2 s, which
    loading the code location and every run without views would pay for nothing."""
    import sqlglot
    from sqlglot import exp

    parsed = sqlglot.parse_one(view.sql, read="sqlite").transform(_fixer(catalog))
    if isinstance(parsed, exp.Create):
        # SQLite's IF NOT EXISTS and `main.` have no PostgreSQL meaning here.
        parsed.set("exists", False)
        named = parsed.this.this if isinstance(parsed.this, exp.Schema) else parsed.this
        named.set("db", None)
        named.set("this", exp.Identifier(this=pg_identifier(view.name), quoted=True))
    return parsed.sql(dialect="postgres", identify=True)


def translate_expression(expression: str, catalog: Catalog) -> str:
    """A SQLite expression (a generated column's) in PostgreSQL, as ``translate`` does a
    view. Raises ``sqlglot.errors.SqlglotError`` when sqlglot cannot read it."""
    import sqlglot

    parsed = sqlglot.parse_one(expression, read="sqlite").transform(_fixer(catalog))
    return parsed.sql(dialect="postgres", identify=True)


class NotCreated(Exception):
    """Why a view is not kept; raised inside its savepoint so the view is rolled back."""


def _one_line(exc: BaseException) -> str:
    """The error in one line; PostgreSQL's primary message without its LINE/HINT lines."""
    primary = exc.diag.message_primary if isinstance(exc, psycopg.Error) else None
    return " ".join((primary or str(exc)).split())


# The PostgreSQL type of a view column -> the kind its values are compared as.
_KINDS = {
    "int2": "bigint",
    "int4": "bigint",
    "int8": "bigint",
    "float4": "double",
    "float8": "double",
    "numeric": "numeric",
    "bool": "boolean",
    "bytea": "bytea",
    "date": "date",
    "timestamp": "timestamp",
    "timestamptz": "timestamptz",
    "jsonb": "jsonb",
}
_RENDER: dict[str, Canonical] = {
    **PYTHON,
    "numeric": lambda v: numeric_text(v.normalize()),
    "text": str,
}


@dataclass(frozen=True)
class ColumnForm:
    """How one view column's values are compared: as PostgreSQL's type for it."""

    name: str
    pg_type: str
    convert: Converter  # a SQLite value -> that type, as the load converts it
    render: Canonical  # that type's value -> canonical text

    def pg(self, value: object) -> str | None:
        return None if value is None else self.render(value)

    def sqlite(self, value: object) -> str | None:
        if value is None:
            return None
        try:
            return self.render(self.convert(value))
        except ConversionError as exc:
            raise NotCreated(
                f"returns different values: in SQLite, column {self.name} holds {exc} "
                f"(its type in PostgreSQL is {self.pg_type})"
            ) from None


def _forms(pg: psycopg.Connection, description: Sequence[psycopg.Column]) -> list[ColumnForm]:
    forms = []
    for column in description:
        info = pg.adapters.types.get(column.type_code)
        pg_type = info.name if info else str(column.type_code)
        kind = _KINDS.get(pg_type, "text")
        convert = builtin.converter(PgType(kind, kind))
        forms.append(ColumnForm(column.name, pg_type, convert, _RENDER[kind]))
    return forms


@dataclass
class Digest:
    """Row count and order-independent checksum of a view's canonical rows."""

    rows: int = 0
    checksum: int = 0

    def add(self, values: list[str | None]) -> None:
        digest = hashlib.blake2b(json.dumps(values).encode(), digest_size=8).digest()
        self.rows += 1
        self.checksum = (self.checksum + int.from_bytes(digest, "big")) % 2**64

    @property
    def hex(self) -> str:
        return f"{self.checksum:016x}"


def _pg_digest(pg: psycopg.Connection, schema: str, name: str) -> tuple[list[ColumnForm], Digest]:
    """Read the created view through a server-side cursor; jsonb comes back as its text."""
    digest = Digest()
    try:
        with pg.cursor(name="consoleai_etl_view_proof") as cursor:
            for json_type in ("json", "jsonb"):
                cursor.adapters.register_loader(json_type, TextLoader)
            cursor.itersize = 2000
            cursor.execute(sql.SQL("SELECT * FROM {}").format(qualified(schema, name)))
            forms = _forms(pg, cursor.description or [])
            for row in cursor:
                digest.add([f.pg(v) for v, f in zip(row, forms, strict=True)])
    except psycopg.Error as exc:
        raise NotCreated(f"cannot be read in PostgreSQL: {_one_line(exc)}") from None
    return forms, digest


_NO_SUCH_FUNCTION = re.compile(r"no such function: (\S+)")


def _sqlite_error(exc: sqlite3.Error) -> NotCreated:
    missing = _NO_SUCH_FUNCTION.search(str(exc))
    if missing:
        return NotCreated(
            f"calls {missing.group(1)}(), a function of the application, not of SQLite"
        )
    return NotCreated(f"cannot be read in SQLite: {_one_line(exc)}")


def _sqlite_cursor(src: sqlite3.Connection, view: SchemaObject, limit: str = "") -> sqlite3.Cursor:
    try:
        return src.execute(f"SELECT * FROM {sqlite_quote(view.name)}{limit}")
    except sqlite3.Error as exc:
        raise _sqlite_error(exc) from None


def _sqlite_digest(src: sqlite3.Connection, view: SchemaObject, forms: list[ColumnForm]) -> Digest:
    """The view's rows in SQLite, each value converted to its PostgreSQL column's type."""
    cursor = _sqlite_cursor(src, view)
    if len(cursor.description) != len(forms):
        raise NotCreated(
            f"returns {len(forms)} columns in PostgreSQL, {len(cursor.description)} in SQLite"
        )
    digest = Digest()
    try:
        for row in cursor:
            digest.add([f.sqlite(v) for v, f in zip(row, forms, strict=True)])
    except sqlite3.Error as exc:
        raise _sqlite_error(exc) from None
    return digest


def _create_proven(
    pg: psycopg.Connection,
    src: sqlite3.Connection,
    schema: str,
    view: SchemaObject,
    catalog: Catalog,
    result: ViewResult,
) -> None:
    """Create ``view`` and keep it only if it returns the same rows as in SQLite."""
    _sqlite_cursor(src, view, " LIMIT 0")  # SQLite can read it at all (app functions)
    from sqlglot.errors import SqlglotError  # loaded by ``translate`` (see there why here)

    try:
        result.target_sql = translate(view, catalog)
    except SqlglotError as exc:
        raise NotCreated(f"cannot be translated: {_one_line(exc)}") from None
    with pg.transaction():  # a NotCreated raised inside rolls the view back
        try:
            pg.execute(result.target_sql)
        except psycopg.Error as exc:
            raise NotCreated(f"PostgreSQL refused the translation: {_one_line(exc)}") from None
        forms, target = _pg_digest(pg, schema, result.target_name)
        result.pg_rows, result.pg_checksum = target.rows, target.hex
        source = _sqlite_digest(src, view, forms)
        result.sqlite_rows, result.sqlite_checksum = source.rows, source.hex
        if source != target:
            raise NotCreated(
                f"returns different rows: SQLite {source.rows} rows (checksum {source.hex}), "
                f"PostgreSQL {target.rows} rows (checksum {target.hex})"
            )


def create_views(
    pg: psycopg.Connection,
    src: sqlite3.Connection,
    schema: str,
    views: list[SchemaObject],
    catalog: Catalog,
) -> list[ViewResult]:
    """Create each view in ``schema`` once proven (own savepoint each); a view that is not
    created is a result with its reason, never an error."""
    results = []
    pg.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema)))
    for view in views:
        result = ViewResult(view.name, pg_identifier(view.name), False, view.sql)
        try:
            _create_proven(pg, src, schema, view, catalog, result)
            result.created = True
        except NotCreated as exc:
            result.reason = str(exc)
        results.append(result)
    pg.execute("RESET search_path")
    return results
