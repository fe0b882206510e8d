"""Introspection of a SQLite database into a plain catalog (tables, keys, indexes, views).

The catalog holds only what the schema declares; what the rows actually store is measured
later by ``profile`` inside each table's load, so that building the Dagster graph stays cheap.
"""

from __future__ import annotations

import difflib
import re
import sqlite3
import string
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Column:
    name: str
    declared_type: str
    not_null: bool
    default_sql: str | None
    pk_position: int  # 0 when the column is not part of the primary key
    # A generated column: "VIRTUAL" or "STORED", and its expression as the DDL writes it
    # (``generated_columns``). Its values are read like any column's: SQLite computes them.
    generated: str | None = None
    expression: str | None = None


@dataclass(frozen=True)
class ForeignKey:
    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]  # resolved to the parent's PK when the DDL omits them
    on_delete: str
    on_update: str


@dataclass(frozen=True)
class Index:
    name: str
    columns: tuple[str, ...]
    descending: tuple[bool, ...]
    unique: bool
    origin: str  # "c" CREATE INDEX, "u" UNIQUE constraint, "pk" primary key
    unsupported: str | None = None  # why it cannot be recreated (expression, partial, collation)
    collations: tuple[str, ...] = ()  # the custom collations of its key columns


@dataclass(frozen=True)
class CustomCollation:
    """A collation the table's schema names that SQLite does not define: the application
    that wrote the file registered it (Anki's ``unicase``). Read with a stand-in."""

    name: str
    used_by: tuple[str, ...]  # "column x", "index y"


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    foreign_keys: tuple[ForeignKey, ...]
    indexes: tuple[Index, ...]
    without_rowid: bool
    sql: str
    collations: tuple[CustomCollation, ...] = ()

    @property
    def rowid_alias(self) -> str | None:
        """The ``INTEGER PRIMARY KEY`` column that aliases SQLite's rowid, if any."""
        if self.without_rowid or len(self.primary_key) != 1:
            return None
        column = self.column(self.primary_key[0])
        # "INTEGER PRIMARY KEY DESC" is SQLite's documented exception: it gets a real
        # index (origin "pk") instead of aliasing the rowid.
        if any(index.origin == "pk" for index in self.indexes):
            return None
        return column.name if column.declared_type.strip().upper() == "INTEGER" else None

    @property
    def rowid_name(self) -> str | None:
        """A name that reads SQLite's own rowid: ``rowid``, or ``_rowid_`` or ``oid`` when a
        column is called so (a column of that name, in any ASCII case, hides the rowid from
        ``SELECT``). None for a WITHOUT ROWID table, or when columns hide all three."""
        if self.without_rowid:
            return None
        taken = {ascii_fold(c.name) for c in self.columns}
        return next((name for name in ROWID_NAMES if name not in taken), None)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


ROWID_NAMES = ("rowid", "_rowid_", "oid")  # SQLite's three names for a table's rowid


@dataclass(frozen=True)
class SchemaObject:
    """A view, trigger or virtual table: not loaded as data, listed in the report."""

    kind: str
    name: str
    sql: str


@dataclass(frozen=True)
class Catalog:
    tables: tuple[Table, ...]
    others: tuple[SchemaObject, ...] = field(default=())

    def table(self, name: str) -> Table:
        return next(t for t in self.tables if t.name == name)

    def no_table(self, name: str) -> str | None:
        """Why ``name`` is no table of the source, or None. Options name tables and columns
        exactly as the source spells them, so a misspelled one would silently match nothing:
        this says which name is unknown, and which one was perhaps meant."""
        names = [t.name for t in self.tables]
        if name in names:
            return None
        return f"the source has no table {name!r}{_hint(name, names)}"

    def no_column(self, qualified: str) -> str | None:
        """Why ``qualified`` (``table.column``) is no column of the source, or None (a table
        name may hold a dot: each table whose name and a dot start ``qualified`` is tried)."""
        tables = [t for t in self.tables if qualified.startswith(f"{t.name}.")]
        for table in tables:
            if qualified[len(table.name) + 1 :] in {c.name for c in table.columns}:
                return None
        if not tables:
            return self.no_table(qualified.rpartition(".")[0])
        table = max(tables, key=lambda t: len(t.name))
        column = qualified[len(table.name) + 1 :]
        names = [c.name for c in table.columns]
        return f"the source's table {table.name} has no column {column!r}{_hint(column, names)}"


def _hint(name: str, names: list[str], shown: int = 8) -> str:
    """The one of ``names`` closest to ``name``, or the first ``shown`` of them."""
    if close := difflib.get_close_matches(name, names, n=1):
        return f" (did you mean {close[0]!r}?)"
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return f" (it has: {', '.join(names[:shown])}{more})"


def ascii_fold(name: str) -> str:
    """``name`` as SQLite compares names: ASCII letters in lower case, the rest as is."""
    return name.translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def sqlite_quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


BUILTIN_COLLATIONS = frozenset({"BINARY", "NOCASE", "RTRIM"})
_COLLATE = re.compile(
    r"""\bCOLLATE\s+("(?:[^"]|"")+"|'(?:[^']|'')+'|`(?:[^`]|``)+`|\[[^\]]+\]|[\w$]+)""",
    re.IGNORECASE,
)


def _unquote(token: str) -> str:
    if token[0] in "\"'`":
        return token[1:-1].replace(token[0] * 2, token[0])
    return token[1:-1] if token[0] == "[" else token


def is_custom(collation: str | None) -> bool:
    return collation is not None and collation.upper() not in BUILTIN_COLLATIONS


def schema_collations(conn: sqlite3.Connection) -> set[str]:
    """Every non-built-in collation named in the schema's SQL (tables, indexes, views,
    triggers). A ``COLLATE`` inside a string literal is counted too: a stand-in defined
    for a name nothing uses is harmless."""
    texts = conn.execute("SELECT sql FROM sqlite_master WHERE sql LIKE '%collate%'")
    names = {_unquote(m) for (text,) in texts for m in _COLLATE.findall(text)}
    return {name for name in names if is_custom(name)}


def _column_collations(table_sql: str) -> dict[str, str]:
    """{column: collation} declared in a CREATE TABLE. SQLite's pragmas do not tell a
    column's collation, so the DDL is parsed (only when it names a collation), without the
    table options after its column list (``WITHOUT ROWID``, ``STRICT``: sqlglot knows
    neither); an unparsable DDL gives {}."""
    if not _COLLATE.search(table_sql):
        return {}
    # Imported here: sqlglot takes 0.1-0.2 s to import, and most schemas name no collation.
    import sqlglot
    from sqlglot import exp

    try:
        create = sqlglot.parse_one(table_sql[: table_sql.rindex(")") + 1], read="sqlite")
    except (ValueError, sqlglot.errors.SqlglotError):
        return {}
    return {
        column.name: constraint.kind.this.name
        for column in create.find_all(exp.ColumnDef)
        for constraint in column.constraints
        if isinstance(constraint.kind, exp.CollateColumnConstraint)
    }


def _custom_collations(table_sql: str, indexes: tuple[Index, ...]) -> tuple[CustomCollation, ...]:
    """The custom collations of a table's columns and indexes, each with what uses it
    (SQLite matches collation names case-insensitively; the first spelling is kept)."""
    uses = [(name, f"column {column}") for column, name in _column_collations(table_sql).items()]
    uses += [(name, f"index {index.name}") for index in indexes for name in index.collations]
    spelling: dict[str, str] = {}
    users: dict[str, dict[str, None]] = {}  # an ordered set per collation
    for name, user in uses:
        if is_custom(name):
            spelling.setdefault(name.upper(), name)
            users.setdefault(name.upper(), {})[user] = None
    return tuple(CustomCollation(spelling[key], tuple(users[key])) for key in sorted(users))


def _pragma(conn: sqlite3.Connection, pragma: str, name: str) -> list[tuple]:
    return conn.execute(f"PRAGMA {pragma}({sqlite_quote(name)})").fetchall()


# PRAGMA table_xinfo's ``hidden``: 0 an ordinary column, 2 a VIRTUAL and 3 a STORED
# generated column (1 is a virtual table's hidden column: such tables are not migrated).
_GENERATED = {0: None, 2: "VIRTUAL", 3: "STORED"}


def _columns(conn: sqlite3.Connection, table: str, table_sql: str) -> tuple[Column, ...]:
    rows = _pragma(conn, "table_xinfo", table)
    expressions = generated_columns(table_sql) if any(row[6] in (2, 3) for row in rows) else {}
    return tuple(
        Column(
            name=name,
            declared_type=declared or "",
            not_null=bool(notnull),
            default_sql=default,
            pk_position=pk,
            generated=_GENERATED[hidden],
            expression=expressions.get(ascii_fold(name)) if hidden else None,
        )
        for _cid, name, declared, notnull, default, pk, hidden in rows
        if hidden in _GENERATED
    )


# A CREATE TABLE's tokens: quoted names and strings, comments, words, single characters.
_DDL_TOKEN = re.compile(
    r'"(?:[^"]|"")*"|\'(?:[^\']|\'\')*\'|\[[^\]]*\]|`(?:[^`]|``)*`|--[^\n]*|/\*.*?\*/'
    r"|[\w$]+|\S",
    re.DOTALL,
)


def generated_columns(table_sql: str) -> dict[str, str]:
    """{ASCII-folded column name: expression text} of a CREATE TABLE's generated columns
    (``[GENERATED ALWAYS] AS (expr)``). SQLite's pragmas do not give the expression, and
    sqlglot misreads a constraint after it (``AS (a) NOT NULL`` becomes ``NOT a IS NULL``),
    so the DDL is split here: in a column definition, at its own depth, only a generated
    column has ``AS (``; the expression is the text between those parentheses."""
    found: dict[str, str] = {}
    tokens = [(m.group(), m.start(), m.end()) for m in _DDL_TOKEN.finditer(table_sql)]
    depth, first, start = 0, True, None  # start: where the expression's text begins
    name = ""
    for i, (token, begin, end) in enumerate(tokens):
        if token == "(":
            depth += 1
            if depth == 2 and i and tokens[i - 1][0].upper() == "AS":
                start = end
        elif token == ")":
            depth -= 1
            if depth == 1 and start is not None:
                found[ascii_fold(name)] = table_sql[start:begin].strip()
                start = None
        elif depth == 1 and token == ",":
            first = True
        elif depth == 1 and first and not token.startswith(("--", "/*")):
            name, first = _unquote(token), False
    return found


def _foreign_keys(
    conn: sqlite3.Connection, table: str, primary_keys: dict[str, tuple[str, ...]]
) -> tuple[ForeignKey, ...]:
    grouped: dict[int, list[tuple]] = {}
    for row in _pragma(conn, "foreign_key_list", table):
        grouped.setdefault(row[0], []).append(row)
    fks = []
    for rows in grouped.values():
        rows.sort(key=lambda r: r[1])
        ref_table = rows[0][2]
        ref_columns = tuple(r[4] for r in rows)
        if any(c is None for c in ref_columns):
            ref_columns = primary_keys.get(ref_table, ())
        fks.append(
            ForeignKey(
                columns=tuple(r[3] for r in rows),
                ref_table=ref_table,
                ref_columns=ref_columns,
                on_update=rows[0][5],
                on_delete=rows[0][6],
            )
        )
    return tuple(fks)


# One token of SQL text: a quoted name or string, a comment, or one character.
_SQL_TOKEN = re.compile(
    r'"(?:[^"]|"")*"|\'(?:[^\']|\'\')*\'|\[[^\]]*\]|`(?:[^`]|``)*`|--[^\n]*|/\*.*?\*/|.',
    re.DOTALL,
)


def _quoted_strings(index_sql: str, columns: set[str]) -> list[str]:
    """The double-quoted words of an index's key list that name none of ``columns``
    (ASCII-folded): SQLite reads such a word as a string, so ``CREATE INDEX i ON t
    ("type")`` on a table without a column ``type`` indexes a constant."""
    tokens = [t for t in _SQL_TOKEN.findall(index_sql) if not t.isspace()]
    keys = tokens[tokens.index("(") + 1 :] if "(" in tokens else []
    words = [t[1:-1].replace('""', '"') for t in keys if t.startswith('"')]
    return [w for w in words if ascii_fold(w) not in columns]


def _expression_reason(conn: sqlite3.Connection, table: str, index: str) -> str:
    """Why an expression index is not recreated, naming the words SQLite took for strings."""
    found = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (index,)).fetchone()
    columns = {ascii_fold(row[1]) for row in _pragma(conn, "table_xinfo", table)}
    strings = _quoted_strings((found or ("",))[0] or "", columns)
    if not strings:
        return "expression index"
    quoted = ", ".join(sqlite_quote(s) for s in strings)
    return f"expression index: SQLite read {quoted} as a string, as no column has that name"


def _indexes(conn: sqlite3.Connection, table: str) -> tuple[Index, ...]:
    indexes = []
    for _seq, name, unique, origin, partial in _pragma(conn, "index_list", table):
        keys = [row for row in _pragma(conn, "index_xinfo", name) if row[5] == 1]
        unsupported = None
        if partial:
            unsupported = "partial index (WHERE clause)"
        elif any(row[1] == -2 for row in keys):
            unsupported = _expression_reason(conn, table, name)
        elif any(row[4] not in ("BINARY", None) for row in keys):
            unsupported = "non-binary collation " + ", ".join(sorted({str(r[4]) for r in keys}))
        indexes.append(
            Index(
                name=name,
                columns=tuple(row[2] or "" for row in keys),
                descending=tuple(bool(row[3]) for row in keys),
                unique=bool(unique),
                origin=origin,
                unsupported=unsupported,
                collations=tuple(dict.fromkeys(row[4] for row in keys if is_custom(row[4]))),
            )
        )
    return tuple(indexes)


def _table(
    conn: sqlite3.Connection,
    name: str,
    columns: tuple[Column, ...],
    primary_keys: dict[str, tuple[str, ...]],
    without_rowid: bool,
    table_sql: str,
) -> Table:
    indexes = _indexes(conn, name)
    return Table(
        name=name,
        columns=columns,
        primary_key=primary_keys[name],
        foreign_keys=_foreign_keys(conn, name, primary_keys),
        indexes=indexes,
        without_rowid=without_rowid,
        sql=table_sql,
        collations=_custom_collations(table_sql, indexes),
    )


def introspect(conn: sqlite3.Connection) -> Catalog:
    """Read the schema of every user table of ``conn`` (no row data is read)."""
    sql_by_name = dict(
        conn.execute("SELECT name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")
    )
    # table_list knows what each object is: table, view, virtual, or shadow (the storage of
    # an FTS/R*Tree virtual table), and whether a table is WITHOUT ROWID.
    listed = sorted(
        (name, kind, bool(without_rowid))
        for schema, name, kind, _ncol, without_rowid, _strict in conn.execute("PRAGMA table_list")
        if schema == "main" and not name.startswith("sqlite_")
    )
    kinds = {"virtual": "virtual table", "shadow": "shadow table"}
    others = [
        SchemaObject(kinds.get(kind, kind), name, sql_by_name.get(name) or "")
        for name, kind, _ in listed
        if kind != "table"
    ]
    others += [
        SchemaObject("trigger", name, sql or "")
        for name, sql in sorted(
            conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")
        )
    ]
    without_rowid = {name: wr for name, kind, wr in listed if kind == "table"}
    table_names = list(without_rowid)
    columns = {name: _columns(conn, name, sql_by_name.get(name) or "") for name in table_names}
    primary_keys = {
        name: tuple(c.name for c in sorted(cols, key=lambda c: c.pk_position) if c.pk_position)
        for name, cols in columns.items()
    }
    tables = tuple(
        _table(
            conn,
            name,
            columns[name],
            primary_keys,
            without_rowid[name],
            sql_by_name.get(name) or "",
        )
        for name in table_names
    )
    return Catalog(tables=tables, others=tuple(others))
