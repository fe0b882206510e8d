"""The metadata of a table asset, in the keys Dagster's UI and catalog understand.

``dagster/table_name`` (the schema-qualified PostgreSQL name), ``dagster/row_count`` and
``dagster/column_schema``: every column with its PostgreSQL type, why that type, and its
constraints (nullable, unique, primary key, foreign key -> parent(column)); constraints over
several columns are the schema's table-level constraints. The constraints are those the load
recreates from the source schema (one PostgreSQL refused is in the table's warnings).

At definition time, before any run, the asset carries the column schema its declarations
suggest; a materialization carries the one the stored values decided (a column may be
widened), the row count and the table name (the target schema is a run option).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg

# Not exported by dagster 1.13.28's top level; the keys it writes are the documented ones.
from dagster._core.definitions.metadata import TableMetadataSet

from consoleai_etl.core.plan.declared import declared_pg_type
from consoleai_etl.core.plan.names import pg_column, pg_identifier
from consoleai_etl.core.run.report import TableReport
from consoleai_etl.core.source.catalog import ForeignKey, Table
from consoleai_etl.defs.checks import dagster_metadata

UNDECIDED_TYPE = "decided by the stored values"


@dataclass(frozen=True)
class ColumnFacts:
    """One column as the column schema shows it (``target`` is its PostgreSQL name)."""

    source: str
    target: str
    pg_type: str
    not_null: bool
    description: str


def _names(columns: Sequence[str]) -> str:
    return ", ".join(map(pg_column, columns))


def _references(fk: ForeignKey) -> str:
    return f"{pg_identifier(fk.ref_table)}({_names(fk.ref_columns)})"


def _unique_indexes(table: Table) -> list[tuple[str, ...]]:
    """Column lists of the UNIQUE constraints and unique indexes the load recreates (an
    expression or partial index is not)."""
    return [
        index.columns
        for index in table.indexes
        if index.unique and index.origin != "pk" and not index.unsupported
    ]


def _created_foreign_keys(table: Table) -> list[ForeignKey]:
    """Foreign keys the load creates: one whose parent columns are unknown (no such parent
    table) is not created."""
    return [fk for fk in table.foreign_keys if fk.ref_columns]


def _column_constraints(table: Table, column: ColumnFacts) -> dg.TableColumnConstraints:
    single = (column.source,)
    other = ["primary key"] if table.primary_key == single else []
    other += [
        f"foreign key -> {_references(fk)}"
        for fk in _created_foreign_keys(table)
        if fk.columns == single
    ]
    unique = table.primary_key == single or single in _unique_indexes(table)
    return dg.TableColumnConstraints(nullable=not column.not_null, unique=unique, other=other)


def _table_constraints(table: Table) -> dg.TableConstraints:
    """The constraints over several columns, which no single column can carry."""
    composite_key = len(table.primary_key) > 1
    other = [f"primary key ({_names(table.primary_key)})"] if composite_key else []
    other += [f"unique ({_names(key)})" for key in _unique_indexes(table) if len(key) > 1]
    other += [
        f"foreign key ({_names(fk.columns)}) -> {_references(fk)}"
        for fk in _created_foreign_keys(table)
        if len(fk.columns) > 1
    ]
    return dg.TableConstraints(other=other)


def column_schema(table: Table, columns: Sequence[ColumnFacts]) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=column.target,
                type=column.pg_type,
                description=column.description,
                constraints=_column_constraints(table, column),
            )
            for column in columns
        ],
        constraints=_table_constraints(table),
    )


def planned_columns(report: TableReport) -> list[ColumnFacts]:
    """The columns as the load planned them: the type the stored values decided."""
    return [
        ColumnFacts(
            source=str(c["name"]),
            target=str(c["target_name"]),
            pg_type=str(c["pg_type"]),
            not_null=bool(c["not_null"]),
            description=f"{c['reason']}; stored: {c['observed'] or 'nothing'}",
        )
        for c in report.columns
    ]


def declared_columns(table: Table) -> list[ColumnFacts]:
    """The columns as declared, before any value is read: the type each declaration
    suggests (a run may widen it), or none when the declaration names no known type."""
    facts = []
    for column in table.columns:
        pg_type = declared_pg_type(column.declared_type) if column.declared_type else None
        declared = (
            f"declared {column.declared_type}" if column.declared_type else "no declared type"
        )
        facts.append(
            ColumnFacts(
                source=column.name,
                target=pg_column(column.name),
                pg_type=pg_type.sql if pg_type else UNDECIDED_TYPE,
                not_null=column.not_null or column.pk_position > 0,
                description=f"{declared}; the stored values may widen it when a run loads them",
            )
        )
    return facts


def definition_metadata(table: Table) -> dict[str, object]:
    """The asset's metadata before any run: its source table and declared column schema."""
    return {
        "source_table": table.name,
        **dict(TableMetadataSet(column_schema=column_schema(table, declared_columns(table)))),
    }


def table_metadata(report: TableReport, table: Table, target_schema: str) -> dict[str, object]:
    """A materialization's metadata: the run's numbers, the widened columns and Dagster's
    table metadata."""
    metadata = dagster_metadata(
        {
            "source_table": report.table,
            "target_table": report.target_table,
            "source_rows": report.source_rows,
            "loaded_rows": report.loaded_rows,
            "quarantined_rows": report.quarantined_rows,
            "seconds": report.seconds,
            "rows_per_second": report.rows_per_second,
            "warnings": report.warnings,
            "widened_columns": [
                {
                    "column": c["name"],
                    "declared_type": c["declared_type"],
                    "chosen_type": c["pg_type"],
                    "why": c["widened"],
                }
                for c in report.columns
                if c.get("widened")
            ],
            "load_error": report.error,
            # merge mode: inserted, updated, unchanged, extra_in_target (and sequences moved)
            **({"merge": report.merge} if report.merge is not None else {}),
        }
    )
    table_set = TableMetadataSet(
        table_name=f"{target_schema}.{report.target_table}",
        row_count=report.loaded_rows,
        column_schema=column_schema(table, planned_columns(report)) if report.columns else None,
    )
    return metadata | dict(table_set)
