"""The command's Dagster instance when no ``DAGSTER_HOME`` is set: in memory, gone at exit.

It is Dagster's ephemeral instance (``DagsterInstance.ephemeral``) but for one part: the event
log keeps the one SQLite connection it already holds instead of opening a new connection to
its in-memory database for every read and write (and setting two PRAGMAs on it), nor asks
the database's schema, for each event, whether a table or column is there. A run writes a
dozen events per table, each of which opened three or four such connections: at 1,500
tables, tens of thousands of connections, seconds of a run that should take under a minute
(docs/performance.md, "Many small tables"). The storage's own lock still serializes every
use of the connection, as it did the opening of new ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from dagster._core.instance import InstanceType
from dagster._core.launcher.sync_in_memory_run_launcher import SyncInMemoryRunLauncher
from dagster._core.run_coordinator import DefaultRunCoordinator
from dagster._core.storage.event_log import InMemoryEventLogStorage
from dagster._core.storage.noop_compute_log_manager import NoOpComputeLogManager
from dagster._core.storage.root import TemporaryLocalArtifactStorage
from dagster._core.storage.runs import InMemoryRunStorage


class HeldConnectionEventLogStorage(InMemoryEventLogStorage):
    """``InMemoryEventLogStorage`` using the connection it holds for life for every call, and
    answering from memory what it would ask its schema for each event: which tables and
    columns it has (the schema is created with the storage and never changes)."""

    def __init__(self) -> None:
        super().__init__()
        self._held_conn.exec_driver_sql("PRAGMA foreign_keys=ON")
        self._held_conn.commit()
        self._schema: dict[tuple[str, ...], bool] = {}

    @contextmanager
    def _connect(self) -> Iterator:
        with self._db_lock, self._held_conn.begin():
            yield self._held_conn

    def has_table(self, table_name: str) -> bool:
        known = self._schema.get(("table", table_name))
        if known is None:
            known = self._schema["table", table_name] = super().has_table(table_name)
        return known

    def _has_asset_key_col_on_connection(self, conn: object, column_name: str) -> bool:
        known = self._schema.get(("asset_keys", column_name))
        if known is None:
            known = super()._has_asset_key_col_on_connection(conn, column_name)
            self._schema["asset_keys", column_name] = known
        return known


def in_memory_instance() -> dg.DagsterInstance:
    """An ephemeral instance (no telemetry id, no first-run banner on stderr) whose event log
    is ``HeldConnectionEventLogStorage``."""
    return dg.DagsterInstance(
        instance_type=InstanceType.EPHEMERAL,
        local_artifact_storage=TemporaryLocalArtifactStorage(),
        run_storage=InMemoryRunStorage(),
        event_storage=HeldConnectionEventLogStorage(),
        compute_log_manager=NoOpComputeLogManager(),
        run_coordinator=DefaultRunCoordinator(),
        run_launcher=SyncInMemoryRunLauncher(),
        settings={"telemetry": {"enabled": False}},
    )
