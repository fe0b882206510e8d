"""Checks run before any step: is the source a sound SQLite file, is the target usable, would
the run replace only what earlier runs promoted, and is no other migration writing to the
same schema. Each failure is one line that names the file, server or schema and says what to
do, and nothing has been written yet."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from contextlib import closing
from pathlib import Path

import psycopg
from psycopg import sql

from consoleai_etl.core.errors import (
    OptionError,
    OptionProblem,
    SourceError,
    TargetError,
    option,
)
from consoleai_etl.core.plan.merge_plan import MergeOptions, MergePlan, plan_merge, unknown_options
from consoleai_etl.core.plan.names import pg_clashes, pg_column, pg_identifier
from consoleai_etl.core.plan.profile import Profile, profile_table, row_count
from consoleai_etl.core.plan.rules import CastingRule, unknown_columns
from consoleai_etl.core.run.report import SkippedTable
from consoleai_etl.core.source.catalog import Catalog, introspect
from consoleai_etl.core.source.connection import open_source
from consoleai_etl.core.source.per_version import PerVersion
from consoleai_etl.core.target.bookkeeping import SCHEMA
from consoleai_etl.core.target.existing import existing_tables
from consoleai_etl.core.target.naming import TargetName
from consoleai_etl.core.target.postgres import connect, redact
from consoleai_etl.core.target.promote import (
    Promotion,
    existing_relations,
    ownership_error,
    unowned,
)
from consoleai_etl.core.target.staging import Staging

SQLITE_HEADER = b"SQLite format 3\x00"
PG_MAX_COLUMNS = 1600  # PostgreSQL's limit per table (SQLite allows 2,000 by default)
DATA_PROBLEMS = ("NULL value in ", "CHECK constraint failed in ")


def _quick_check(file: Path) -> list[str]:
    with closing(open_source(file)) as conn:
        return [row[0] for row in conn.execute("PRAGMA quick_check")]


def _storage_classes(file: Path) -> tuple[Catalog, dict[str, Profile]]:
    """The catalog, and each table's storage classes per column (one scan per table)."""
    with closing(open_source(file)) as src:
        catalog = introspect(src)
        return catalog, {t.name: profile_table(src, t)[1] for t in catalog.tables}


_integrity = PerVersion(_quick_check)
_storage = PerVersion(_storage_classes)


def start_source_reads(path: str | Path, *, merge: bool) -> None:
    """Start the preflight's whole-file reads of ``path`` on threads (``PerVersion``):
    ``quick_check``, and in merge mode the storage classes ``check_merge`` compares with
    the target's types."""
    _integrity.start(path)
    if merge:
        _storage.start(path)


def integrity_problems(path: str | Path) -> list[str]:
    """What ``PRAGMA quick_check`` says about the file, once per version of it. Raises
    ``sqlite3.DatabaseError`` as the check does."""
    return _integrity.get(path)


def check_source(path: str | Path) -> Catalog:
    """The source exists, is SQLite, passes ``quick_check``, is readable, has tables, and
    each of them fits in PostgreSQL; its catalog, for the checks that follow."""
    file = Path(path)
    if file.is_file():
        with file.open("rb") as handle:
            if handle.read(len(SQLITE_HEADER)) != SQLITE_HEADER:
                raise SourceError(
                    f"source {file} is not a SQLite database (no SQLite header): point "
                    f"{option('sqlite_path')} at the legacy .sqlite file"
                )
    with closing(open_source(file)) as conn:  # raises SourceError when missing/unreadable
        try:
            problems = integrity_problems(file)
            tables = conn.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%'"
            ).fetchone()[0]
            catalog = introspect(conn)
        except sqlite3.DatabaseError as exc:
            raise SourceError(
                f"source {file} is corrupt ({exc}): restore it from a backup or repair it "
                "with `sqlite3 FILE .recover`"
            ) from None
    # Constraint violations in the data (legacy schemas gain NOT NULL/CHECK after the rows
    # were written) are not corruption: those rows are quarantined by the load.
    problems = [p for p in problems if not p.startswith(DATA_PROBLEMS)]
    if problems not in ([], ["ok"]):
        raise SourceError(
            f"source {file} is corrupt (PRAGMA quick_check: {'; '.join(problems[:3])}): "
            "restore it from a backup or repair it with `sqlite3 FILE .recover`"
        )
    if tables == 0:
        raise SourceError(f"source {file} has no tables: nothing to migrate")
    check_limits(file, catalog)
    if clash := name_clash(catalog):
        raise SourceError(f"source {file}: {clash}: rename one of them in the source")
    return catalog


def check_graph(
    file: str | Path,
    catalog: Catalog,
    graph_tables: Iterable[str],
    graph_source: str,
    environment: str | None = None,
) -> None:
    """The run's source has exactly the tables the asset graph was built from (the file
    ``graph_source`` when the code location loaded). The graph cannot change during a run, so
    a table it lacks would silently not migrate, and one it has but the file lacks would
    fail: the run is refused instead, and reloading the code location rebuilds the graph.
    A run of ``environment`` (its file one of a folder's, the graph built from the folder's
    reference file) is told that its environment differs from the reference."""
    have, want = {t.name for t in catalog.tables}, set(graph_tables)
    if have == want:
        return
    differences = "; ".join(
        f"{what} {_listed(names)}"
        for what, names in (("not in the graph:", have - want), ("missing:", want - have))
        if names
    )
    if environment is not None:
        raise SourceError(
            f"environment {environment} ({file}) has other tables than the reference "
            f"environment {graph_source} ({differences}): give it the reference's tables, "
            "or migrate it from a folder of its own"
        )
    raise SourceError(
        f"source {file} has other tables than the asset graph loaded from {graph_source} "
        f"({differences}): set CONSOLEAI_SQLITE_PATH to {file} and reload the "
        "code location, or run against the file the graph was loaded from"
    )


def check_graph_target(graph: TargetName, run: TargetName) -> None:
    """The run writes into the target the asset graph was built for: its asset keys name
    that target's database and schema (``defs.checks.key_prefix``), so a run into another
    one (its run config naming another DSN or schema) would write that target's tables
    into these assets' history. Refused; the command builds a graph for each target."""
    if run != graph:
        raise TargetError(
            f"this run's target is {run}, but this code location's assets are the tables of "
            f"{graph} ({option('pg_dsn')} and {option('target_schema')} when it loaded): a run "
            "into another target would write its history on them; give the code location "
            "that target and reload it, or migrate it with consoleai-etl migrate"
        )


def _listed(names: set[str], limit: int = 5) -> str:
    """``names`` sorted and quoted (a name may hold a newline), the first ``limit`` of them."""
    shown = ", ".join(repr(name) for name in sorted(names)[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def check_limits(file: Path, catalog: Catalog) -> None:
    """Every table fits PostgreSQL's column limit: a wider one would fail only when its
    CREATE TABLE reaches the server, after other tables were staged."""
    for table in catalog.tables:
        if len(table.columns) > PG_MAX_COLUMNS:
            raise SourceError(
                f"source {file}: table {table.name} has {len(table.columns):,} columns, more "
                f"than PostgreSQL's limit of {PG_MAX_COLUMNS:,}: split it into narrower tables "
                "or drop it, in a copy of the file, then migrate the copy"
            )


def name_clash(catalog: Catalog) -> str | None:
    """Source names PostgreSQL would hold under one name (a long name shortened to another
    table's or column's spelling, or "" next to ``EMPTY_NAME``), which would lose one."""
    if tables := pg_clashes(t.name for t in catalog.tables):
        return f"tables {_spelled(tables[0], 'PostgreSQL table')}"
    for table in catalog.tables:
        if columns := pg_clashes((c.name for c in table.columns), pg_column):
            return f"table {table.name}: columns {_spelled(columns[0], 'column')}"
    return None


def _spelled(group: tuple[str, ...], kind: str) -> str:
    return f"{' and '.join(map(repr, group))} would be one {kind}, {pg_identifier(group[0])!r}"


def check_names(
    catalog: Catalog,
    rules: Sequence[CastingRule],
    merge: MergeOptions | None,
    describe: Callable[[OptionProblem], str] = str,
) -> None:
    """Every table and column the options name is the source's: the casting rules' columns,
    and in merge mode (``merge``) the tables and columns of the merge options. A name the
    source lacks would match nothing and be silently ignored, so the run stops here, with
    every such name in one ``OptionError``, each said by ``describe`` (in the words of the
    interface the options came from)."""
    problems = unknown_columns(catalog, rules)
    if merge is not None:
        problems += unknown_options(catalog, merge)
    if problems:
        raise OptionError(problems, describe)


# What a run creates: its tables in the target schema (replace mode), its staged tables and
# bookkeeping in consoleai_etl. For each schema: does it exist, and may this user create in
# it and use it; and may it create schemas (only asked of the ones missing).
_PRIVILEGES = """
SELECT current_user, current_database(), has_database_privilege(current_database(), 'CREATE'),
       s.name, n.oid IS NOT NULL,
       n.oid IS NOT NULL AND has_schema_privilege(n.oid, 'CREATE')
                         AND has_schema_privilege(n.oid, 'USAGE')
FROM unnest(%s::text[]) AS s(name) LEFT JOIN pg_namespace n ON n.nspname = s.name
"""


def check_target(dsn: str, schema: str, *, creates_tables: bool = True) -> None:
    """The server answers and this user holds every privilege the run needs, checked
    before anything is written so that a dry run fails where the real run would: CREATE
    and USAGE on consoleai_etl (the run stages its tables there: ``target.staging``) and,
    in replace mode (``creates_tables``), on ``schema`` (PostgreSQL 15 no longer grants
    CREATE on ``public`` to every user); CREATE on the database only for those of them
    that do not exist yet. So schemas an administrator created for the user are enough.
    One line lists every missing privilege with the GRANT that gives it."""
    names = [schema, SCHEMA] if creates_tables else [SCHEMA]
    with connect(dsn) as pg:
        rows = pg.execute(_PRIVILEGES, (names,)).fetchall()
    user, database, create_db = rows[0][:3]
    who = sql.Identifier(user)
    missing = [
        sql.SQL("GRANT CREATE, USAGE ON SCHEMA {} TO {}").format(sql.Identifier(name), who)
        for _u, _d, _c, name, exists, allowed in rows
        if exists and not allowed
    ]
    absent = [sql.Identifier(name) for _u, _d, _c, name, exists, _a in rows if not exists]
    if absent and not create_db:
        missing.append(
            sql.SQL("GRANT CREATE ON DATABASE {} TO {} (or {})").format(
                sql.Identifier(database),
                who,
                sql.SQL(", ").join(
                    sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(name, who)
                    for name in absent
                ),
            )
        )
    if missing:
        raise TargetError(
            f"user {user} lacks privileges this run needs on {redact(dsn)}, nothing written: "
            f"as an administrator, {'; '.join(m.as_string(None) for m in missing)}"
        )


def check_migrated(catalog: Catalog, dsn: str, schema: str, skipped: Collection[str] = ()) -> None:
    """Verifying (replace mode): ``schema`` holds at least one of the source's tables (less
    the ``skipped`` ones). A schema that holds none was never migrated: one line says so,
    instead of every check of every table failing on a missing relation. Read only."""
    names = {pg_identifier(t.name) for t in catalog.tables if t.name not in skipped}
    with connect(dsn) as pg:
        found = existing_relations(pg, schema, names)
    if names and not found:
        raise TargetError(
            f"schema {schema} on {redact(dsn)} holds none of the source's {len(names)} tables "
            f"({_listed(names)}): nothing was migrated there; migrate first, or verify the "
            "schema the migration went into"
        )


def check_ownership(catalog: Catalog, dsn: str, schema: str, skipped: Collection[str] = ()) -> None:
    """No table or view of the source's names (``catalog``, as ``check_source`` read it;
    less the ``skipped`` tables, which the run does not create) exists in ``schema`` unless
    an earlier run promoted it there: replacing it would drop an application's rows. Read
    only."""
    names = Promotion(catalog, tuple(t for t in catalog.tables if t.name not in skipped)).names
    with connect(dsn) as pg:
        foreign = unowned(pg, existing_relations(pg, schema, names), schema)
    if foreign:
        raise ownership_error(schema, foreign)


def check_merge(
    sqlite_path: str | Path,
    dsn: str,
    schema: str,
    options: MergeOptions,
    *,
    tables: Collection[str] | None = None,
    skipped: Collection[str] = (),
) -> MergePlan:
    """Merge mode: every source table the run merges (those in ``tables``, None: all, less
    the ``skipped`` ones) and its columns have a target, the target's required columns are
    filled, its types can hold what the source stores (one scan of storage classes per
    table) and this tool can load them; no table both skipped and matched on a key (a
    seeded table's ids are translated only when it is merged). Read only; the one
    ``TargetError`` lists every problem."""
    if both := sorted(set(options.keys) & set(skipped)):
        raise TargetError(
            f"merge into schema {schema} refused, nothing written: merge_keys names "
            f"{', '.join(both)}, which the run skips, so the ids its rows hold in other "
            "tables could not be translated to the application's: merge it (leave it out "
            "of skip_tables) or leave it out of merge_keys"
        )
    catalog, profiles = _storage.get(sqlite_path)
    planned = {
        t.name
        for t in catalog.tables
        if (tables is None or t.name in tables) and t.name not in skipped
    }
    with connect(dsn) as pg:
        existing = existing_tables(pg, schema)
    return plan_merge(catalog, profiles, existing, schema, options, planned)


def count_skipped(path: str | Path, reasons: Mapping[str, str]) -> tuple[SkippedTable, ...]:
    """The tables a run skips (``core.plan.skip``: {table: why}), each with its row count in
    ``path`` (the run's snapshot), as the report lists them."""
    if not reasons:
        return ()
    with closing(open_source(path)) as src:
        return tuple(SkippedTable(t, row_count(src, t), why) for t, why in reasons.items())


class _SessionLock:
    """A connection whose session holds an advisory lock."""

    conn: psycopg.Connection

    def release(self) -> None:
        self.conn.close()  # closing the session releases the lock


class RunLock(_SessionLock):
    """A session advisory lock per target schema: one migration at a time writes there."""

    def __init__(self, dsn: str, schema: str) -> None:
        self.conn = connect(dsn, autocommit=True)
        key = f"consoleai_etl:{schema}"
        got = self.conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (key,)).fetchone()
        if not got or not got[0]:
            holder = self.conn.execute(
                "SELECT a.pid, a.backend_start FROM pg_locks l JOIN pg_stat_activity a "
                "USING (pid) WHERE l.locktype = 'advisory' AND l.objid = "
                "hashtext(%s)::oid AND l.granted",
                (key,),
            ).fetchone()
            self.conn.close()
            who = (
                f" (server pid {holder[0]}, since {holder[1]:%Y-%m-%d %H:%M:%S})" if holder else ""
            )
            raise TargetError(
                f"another migration into schema {schema} is running{who}: wait for it to "
                "finish, or stop it, then run again"
            )


class StagingLock(_SessionLock):
    """A session advisory lock on the run's staging, held for the run's whole life (taken
    before its first table is staged): other runs' ``Staging.drop_stale`` drops only the
    staged tables whose run's lock is free, that is whose run is dead."""

    def __init__(self, dsn: str, staging: Staging) -> None:
        self.conn = connect(dsn, autocommit=True)
        if not staging.lock(self.conn):
            self.conn.close()
            raise TargetError(
                f"the staging {staging} is held by another session (same run id?): "
                "start the run again"
            )
