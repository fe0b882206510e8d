"""Source tables a run leaves out, and why: the ones the user lists in ``skip_tables``, and
the application's migration-history tables.

An application's SQLite file carries tables with no counterpart in the target: a removed
feature's, an old migration tool's. Leaving one out must be declared, never a silent loss,
so each skipped table is reported with its source row count and its reason (the run's
``skipped_tables``), and a name the source does not have is an error: a typo would
otherwise migrate a table the user meant to leave out.

A framework records the schema migrations it applied in a table of its own. The target's
copy was written by the application's own migrations when it built the PostgreSQL schema;
the legacy file's rows describe the SQLite schema's history, and putting them there would
tell the framework that migrations ran which did not (or hide ones that did). So such a
table is skipped by default, in both modes, and migrated only when the user names it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from consoleai_etl.core.errors import SourceError

# The tables frameworks keep their applied schema migrations in, by case-folded name: the
# one list. Only names no application would give a table of its own are here: Laravel's and
# TypeORM's ``migrations`` and old Flyway's ``schema_version`` are too generic to skip on
# their name alone (list them in ``skip_tables``).
MIGRATION_HISTORY: Mapping[str, str] = {
    name.casefold(): framework
    for name, framework in (
        ("django_migrations", "Django"),
        ("schema_migrations", "Rails, Ecto, golang-migrate or dbmate"),
        ("ar_internal_metadata", "Rails"),
        ("alembic_version", "Alembic"),
        ("flyway_schema_history", "Flyway"),
        ("databasechangelog", "Liquibase"),
        ("databasechangeloglock", "Liquibase"),
        ("knex_migrations", "Knex"),
        ("knex_migrations_lock", "Knex"),
        ("_prisma_migrations", "Prisma"),
        ("SequelizeMeta", "Sequelize"),
        ("__EFMigrationsHistory", "Entity Framework"),
        ("doctrine_migration_versions", "Doctrine"),
        ("phinxlog", "Phinx"),
        ("goose_db_version", "goose"),
        ("__diesel_schema_migrations", "Diesel"),
        ("_sqlx_migrations", "SQLx"),
        ("seaql_migrations", "SeaORM"),
        ("mikro_orm_migrations", "MikroORM"),
        ("gorp_migrations", "sql-migrate"),
        ("refinery_schema_history", "refinery"),
    )
}

SKIP_OPTION = "skip_tables"
HISTORY_OPTION = "migrate_history_tables"
ASKED = f"listed in {SKIP_OPTION}"


def history_reason(table: str) -> str | None:
    """Why ``table`` is skipped by default (a framework's migration history), or None."""
    framework = MIGRATION_HISTORY.get(table.casefold())
    if framework is None:
        return None
    return (
        f"the application's migration history ({framework}): its own migrations wrote the "
        f"target's copy; list it in {HISTORY_OPTION} to migrate it"
    )


def unknown_tables(source: Iterable[str], names: Iterable[str], option: str) -> str | None:
    """One line naming the tables ``option`` lists that the source does not have (spelled
    exactly, as ``merge_tables`` names them), or None."""
    have = set(source)
    unknown = [name for name in dict.fromkeys(names) if name not in have]
    if not unknown:
        return None
    listed = ", ".join(map(repr, unknown))
    return (
        f"{option} names table{'s' if len(unknown) > 1 else ''} {listed}, which the source "
        "does not have: correct or remove it"
    )


def skipped_tables(
    source: Collection[str],
    skip: Collection[str],
    migrate_history: Collection[str] = (),
    mapped: Collection[str] = (),
) -> dict[str, str]:
    """The ``source`` tables a run leaves out, each with its reason: those in ``skip``, and
    the migration-history tables named neither in ``migrate_history`` nor in ``mapped``
    (merge mode's ``merge_tables``: mapping a table asks for it to be merged). Raises
    ``SourceError`` for an option naming a table the source does not have."""
    problems = [
        problem
        for option, names in ((SKIP_OPTION, skip), (HISTORY_OPTION, migrate_history))
        if (problem := unknown_tables(source, names, option))
    ]
    if problems:
        raise SourceError("; ".join(problems))
    named = {*migrate_history, *mapped}
    skipped = {}
    for table in source:
        if table in skip:
            skipped[table] = ASKED
        elif table not in named and (reason := history_reason(table)):
            skipped[table] = reason
    return skipped
