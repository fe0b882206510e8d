"""Key checks cite a validated constraint when PostgreSQL enforces the key, else they scan."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import psycopg

from consoleai_etl.core.source.catalog import introspect
from consoleai_etl.core.verify.checks import check_foreign_keys, check_primary_key

SOURCE = """
CREATE TABLE parent (id INTEGER PRIMARY KEY);
CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id));
"""


def _catalog(tmp_path: Path):
    db = tmp_path / "keys.sqlite"
    with closing(sqlite3.connect(db)) as conn:
        conn.executescript(SOURCE)
    src = sqlite3.connect(db)
    return src, introspect(src)


def _target(pg: psycopg.Connection, *, pk: bool, fk: str) -> None:
    pg.execute("DROP SCHEMA IF EXISTS t CASCADE")
    pg.execute("CREATE SCHEMA t")
    pg.execute("CREATE TABLE t.parent (id bigint PRIMARY KEY)")
    pg.execute("CREATE TABLE t.other (id bigint PRIMARY KEY)")
    pg.execute(f"CREATE TABLE t.child (id bigint {'PRIMARY KEY' if pk else ''}, parent_id bigint)")
    pg.execute("INSERT INTO t.parent VALUES (1); INSERT INTO t.other VALUES (1), (7)")
    pg.execute("INSERT INTO t.child VALUES (1, 1), (2, 7)" + ("" if pk else ", (2, 1)"))
    if fk:
        references = "t.other" if fk == "other" else "t.parent"
        valid = " NOT VALID" if fk == "not valid" else ""
        if fk == "valid":
            pg.execute("DELETE FROM t.child WHERE parent_id = 7")
        pg.execute(
            f"ALTER TABLE t.child ADD CONSTRAINT c_fk FOREIGN KEY (parent_id) "
            f"REFERENCES {references} (id){valid}"
        )


def test_an_enforced_primary_key_is_cited_a_missing_one_is_scanned(
    tmp_path: Path, pg_dsn: str
) -> None:
    _src, catalog = _catalog(tmp_path)
    with psycopg.connect(pg_dsn, autocommit=True) as pg:
        _target(pg, pk=True, fk="")
        enforced = check_primary_key(pg, "t", catalog.table("child"))
        _target(pg, pk=False, fk="")
        scanned = check_primary_key(pg, "t", catalog.table("child"))
    assert enforced.passed and enforced.metadata["enforced_by"] == "child_pkey"
    assert not scanned.passed and scanned.metadata["duplicate_keys"] == 1
    assert "enforced_by" not in scanned.metadata


def _fk_check(src, pg: psycopg.Connection, child, fk: str, quarantined: int = 0):
    """The foreign_keys check over a target made with ``fk``: (report, the FK's detail)."""
    _target(pg, pk=True, fk=fk)
    report = check_foreign_keys(src, pg, child, "t", ("t",), quarantined=quarantined)
    [detail] = report.metadata["foreign_keys"]
    return report, detail


def test_only_a_validated_foreign_key_to_the_same_parent_is_cited(
    tmp_path: Path, pg_dsn: str
) -> None:
    src, catalog = _catalog(tmp_path)
    child = catalog.table("child")
    outcomes = {}
    with psycopg.connect(pg_dsn, autocommit=True) as pg:
        for fk in ("valid", "not valid", "other", ""):
            report, detail = _fk_check(src, pg, child, fk)
            outcomes[fk] = (report.passed, detail["enforced_by"], detail["target_orphans"])
    assert outcomes == {
        "valid": (True, "c_fk", 0),
        "not valid": (False, None, 1),  # the orphan (2, 7) is found by the scan
        "other": (False, None, 1),  # a key to another table proves nothing about parent
        "": (False, None, 1),
    }


def test_the_source_is_searched_for_orphans_only_when_there_is_something_to_explain(
    tmp_path: Path, pg_dsn: str
) -> None:
    """A validated FK over a table with nothing quarantined leaves nothing to explain."""
    src, catalog = _catalog(tmp_path)
    child = catalog.table("child")
    searched = {}
    with psycopg.connect(pg_dsn, autocommit=True) as pg:
        for fk, quarantined in (("valid", 0), ("valid", 1), ("not valid", 0)):
            _, detail = _fk_check(src, pg, child, fk, quarantined)
            searched[fk, quarantined] = detail["source_orphans"]
    # None: not searched; 0: searched (the source tables are empty)
    assert searched == {("valid", 0): None, ("valid", 1): 0, ("not valid", 0): 0}
