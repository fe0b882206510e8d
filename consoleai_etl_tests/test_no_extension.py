"""Installs without a C compiler: the package still builds, and without its compiled
extension it migrates through the Python stream with the same row hashes (``rowhash``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from consoleai_etl.core.encode import _rowcopy, rowhash, tuples
from consoleai_etl.core.encode.tuples import TupleEncoder, row_hash_sql
from consoleai_etl_tests.helpers import REPO, checks_by_table, dagster_env, run_job

KINDS = {  # column -> kind, and how PostgreSQL stores it
    "n": ("bigint", "bigint"),
    "x": ("double", "float8"),
    "price": ("numeric", "numeric(14, 3)"),
    "amount": ("numeric", "numeric"),
    "body": ("text", "text"),
    "raw": ("bytea", "bytea"),
    "ok": ("boolean", "boolean"),
    "day": ("date", "date"),
    "at": ("timestamp", "timestamp"),
    "at_tz": ("timestamptz", "timestamptz"),
    "doc": ("jsonb", "jsonb"),
}
EDGES = {  # column -> values at the edges of its kind, NULL included
    "n": [-(2**63), 2**63 - 1, 0, -1, None],
    "x": [-0.0, 0.0, float("inf"), float("-inf"), float("nan"), 5e-324, 1e308, None],
    "price": [Decimal("0"), Decimal("-1.5"), Decimal("12345678901.234"), Decimal("NaN"), None],
    "amount": [Decimal("1E-20"), Decimal("-99999999999999999999.5"), Decimal("0.0001"), None],
    "body": ["", "ünï ☃ 𝄞", "x" * 5000, None],
    "raw": [b"", b"\x00\xff\x00", bytes(range(256)), None],
    "ok": [True, False, None],
    "day": [date(1, 1, 1), date(1999, 12, 31), date(2000, 1, 1), date(9999, 12, 31), None],
    "at": [datetime(1, 1, 1), datetime(1970, 1, 1, 0, 0, 0, 1), datetime(9999, 12, 31), None],
    "at_tz": [datetime(2000, 1, 1, tzinfo=UTC), datetime(1900, 6, 1, 12, tzinfo=UTC), None],
    "doc": ['{"b": 1, "a": [1, 2.50]}', "[]", "null", '"\\u00e9"', None],
}
ROWS = 300  # every length of the hash's last block, many rows of each length


def _edge_rows() -> list[tuple]:
    """Row i: each column's edge values in turn, and a text that grows by a byte a row (so
    the records' lengths cover every tail of the hash's 12-byte blocks)."""
    return [
        (i, *(values[i % len(values)] for values in EDGES.values()), "é" * (i % 5) + "y" * i)
        for i in range(ROWS)
    ]


HASHES: dict[str, Callable] = {"compiled": _rowcopy.row_hashes, "python": rowhash.row_hashes}


@pytest.mark.parametrize("implementation", HASHES)
def test_row_hashes_are_postgresqls_for_every_kind(
    implementation: str, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both row hashes equal PostgreSQL's own (``row_hash_sql``) over the stored rows."""
    monkeypatch.setattr(tuples, "row_hashes", HASHES[implementation])
    columns = [*KINDS, "tail"]
    kinds = [kind for kind, _ in KINDS.values()] + ["text"]
    with psycopg.connect(pg_dsn) as pg:
        pg.execute(
            sql.SQL("CREATE TABLE h (id bigint, {}, tail text)").format(
                sql.SQL(", ").join(
                    sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(stored))
                    for c, (_, stored) in KINDS.items()
                )
            )
        )
        with pg.cursor().copy("COPY h FROM STDIN") as copy:
            for row in _edge_rows():
                copy.write_row(row)
        # Stored values read back as the loader sends them: jsonb in PostgreSQL's text form.
        stored = pg.execute(
            sql.SQL("SELECT {}, {} FROM h ORDER BY id").format(
                sql.SQL(", ").join(
                    sql.SQL("{}::text").format(sql.Identifier(c))
                    if c == "doc"
                    else sql.Identifier(c)
                    for c in columns
                ),
                row_hash_sql(list(zip(kinds, columns, strict=True))),
            )
        ).fetchall()
        hashes = TupleEncoder(pg, kinds).hashes([row[:-1] for row in stored])
    assert hashes == [row[-1] for row in stored]
    assert len(set(hashes)) == ROWS


def test_a_malformed_tuple_is_refused_by_both_hashes() -> None:
    tuple_ = b"\x00\x02" + (8).to_bytes(4, "big") + bytes(8)  # two columns, one field
    for row_hashes in HASHES.values():
        with pytest.raises(ValueError, match="COPY tuple"):
            row_hashes(tuple_, [len(tuple_)], (20, 20))


def _pip(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pip", *args, "--no-deps", "--no-index", "--no-build-isolation"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip


def _build(tmp: Path, compiler: str | None) -> tuple[subprocess.CompletedProcess, Path | None]:
    """A wheel of a fresh copy of the project (no build left over), with ``compiler`` as CC
    (None: the machine's own)."""
    source = tmp / "source"
    shutil.copytree(
        REPO / "consoleai_etl", source / "consoleai_etl",
        ignore=shutil.ignore_patterns("*.so", "__pycache__"),
    )  # fmt: skip
    shutil.copy(REPO / "pyproject.toml", source)
    env = {**os.environ, **({"CC": compiler} if compiler else {})}
    done = _pip("wheel", "-v", "-w", str(tmp / "dist"), str(source), env=env)
    wheels = list((tmp / "dist").glob("*.whl"))
    return done, wheels[0] if wheels else None


@pytest.fixture(scope="module")
def no_compiler_wheel(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path | None]:
    """The project built on a machine whose C compiler is missing: (pip's output, wheel)."""
    done, wheel = _build(tmp_path_factory.mktemp("no-compiler"), "/nonexistent/cc")
    return done.stdout + done.stderr, wheel


def _extensions(wheel: Path) -> list[str]:
    return [n for n in zipfile.ZipFile(wheel).namelist() if "_rowcopy" in n and ".so" in n]


def test_the_package_builds_without_a_c_compiler(
    no_compiler_wheel: tuple[str, Path | None], tmp_path: Path
) -> None:
    output, wheel = no_compiler_wheel
    assert wheel is not None, output[-3000:]
    assert 'building extension "consoleai_etl.core.encode._rowcopy" failed' in output
    names = zipfile.ZipFile(wheel).namelist()
    assert "consoleai_etl/core/encode/rowhash.py" in names
    assert _extensions(wheel) == []
    # The same build with the machine's compiler does contain the extension.
    done, compiled = _build(tmp_path, None)
    assert compiled is not None, done.stderr[-3000:]
    assert len(_extensions(compiled)) == 1


def test_a_migration_without_the_extension_passes_every_check_with_the_same_checksums(
    no_compiler_wheel: tuple[str, Path | None], sample_db: Path, pg_dsn: str, tmp_path: Path
) -> None:
    """The wheel built without a compiler, installed, runs the real CLI: its stream and row
    hashes are the Python ones, and give the checksums the compiled ones give."""
    _, wheel = no_compiler_wheel
    assert wheel is not None
    site = tmp_path / "site"
    installed = _pip("install", "--target", str(site), str(wheel))
    assert installed.returncode == 0, installed.stderr[-3000:]
    _, compiled = run_job(sample_db, pg_dsn, tmp_path / "compiled", dry_run=True)

    env = {**dagster_env(tmp_path, sample_db, pg_dsn), "PYTHONPATH": str(site)}
    env.pop("CONSOLEAI_PYTHON_STREAM", None)
    done = subprocess.run(
        [str(Path(sys.executable).with_name("dagster")), "job", "execute", "-m", "consoleai_etl",
         "-j", "legacy_migration_job"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-3000:]
    notices = [line for line in done.stderr.splitlines() if "stream and are hashed in" in line]
    assert len(notices) == 1, done.stderr[-3000:]
    assert "No module named 'consoleai_etl.core.encode._rowcopy'" in notices[0]
    assert "gcc python3-dev libsqlite3-dev" in notices[0]
    report = json.loads((tmp_path / "reports" / "latest.json").read_text())
    assert report["status"] == "success" and report["promoted"]
    for checks in [*checks_by_table(report).values(), *checks_by_table(compiled).values()]:
        assert all(check["passed"] for check in checks.values()), checks
    python_sums = {t["table"]: t["checksum"] for t in report["tables"]}
    assert python_sums == {t["table"]: t["checksum"] for t in compiled["tables"]}


def test_the_environment_switch_takes_the_python_way_for_stream_and_hash(
    sample_db: Path,
) -> None:
    """``CONSOLEAI_PYTHON_STREAM=1`` (read once, at import): no compiled reader for the
    loader, the pure-Python row hash for the checksum, and the notice names the switch."""
    probe = (
        "import json, sqlite3, sys\n"
        "from consoleai_etl.core.encode import compiled, rowcopy, rowhash, tuples\n"
        "src = sqlite3.connect(sys.argv[1])\n"
        "print(json.dumps([rowcopy.compiled_source(src) is not None,"
        " tuples.row_hashes is rowhash.row_hashes,"
        " compiled.notice()]))\n"
    )
    seen = {}
    for switch in ("1", "0"):
        env = {**os.environ, "CONSOLEAI_PYTHON_STREAM": switch}
        done = subprocess.run(
            [sys.executable, "-c", probe, str(sample_db)],
            capture_output=True, text=True, timeout=60, env=env,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        seen[switch] = json.loads(done.stdout)
    reader, python_hash, notice = seen["1"]
    assert reader is False and python_hash
    assert notice.startswith("CONSOLEAI_PYTHON_STREAM is set: rows stream and are hashed in")
    assert seen["0"] == [True, False, None]
