"""The ``settings`` resource: every run option, typed, from run config YAML or environment.

resources:
  settings:
    config: {dry_run: true, allow_divergence: false, orphans: keep}

Each option's type is part of the job's Dagster config schema, so a bad choice in run config
(an unknown mode, orphans policy, date encoding, on_error or text repair, an unknown key) is
refused when the run is launched (launchpad, ``dagster job execute -c``, ``execute_in_process``)
and no run starts. A choice is a ``StrEnum`` built from the core's ``Literal`` (the one list
of its values): Dagster 1.13 turns a bare ``Literal`` field into the same config Enum, but
refuses an optional one or a list of them, and every choice here must be able to say "not
set". A casting rule's ``target_type`` (``numeric(8,3)``, ``varchar(n)``: no enum can list
them) and its matcher are checked by pydantic validators calling the core's own checks, when
Dagster builds the resource: the run fails at resource initialization, before any step.

``consoleai-etl --config`` validates its file in the same two steps (``checked_settings``),
before it starts a run. The tables and columns the options name (casting rules' columns,
merge options) are checked against the source by the preflight (``check_names``).

An option left out of run config falls back to its CONSOLEAI_* variable, then to the default.
Variables are read when the run starts and validated by the field's own type (the rules file
of CONSOLEAI_CASTING_RULES by ``CastingRuleConfig``); a bad value stops the preflight with one
line naming the variable or file. ``dg.EnvVar`` is not used: it fails when the variable is
unset, and Dagster's config Enum does not accept it.
"""

import os
from collections.abc import Collection, Iterable, Mapping
from dataclasses import replace
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any, get_args

import dagster as dg
import yaml
from dagster._core.storage.tags import PARTITION_NAME_TAG
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

from consoleai_etl.core.errors import (
    Key,
    MigrationError,
    OptionError,
    OptionProblem,
    config_key,
    key_path,
)
from consoleai_etl.core.plan.merge_plan import MergeOptions, MergePlan, OnConflict
from consoleai_etl.core.plan.rules import (
    DateEncoding,
    OnError,
    OrphanPolicy,
    TextRepair,
    matcher_problem,
    parse_rules,
    target_type_problem,
)
from consoleai_etl.core.plan.skip import skipped_tables
from consoleai_etl.core.run.pipeline import MigrationConfig, Mode
from consoleai_etl.core.run.preflight import (
    RunLock,
    StagingLock,
    check_graph,
    check_graph_target,
    check_merge,
    check_migrated,
    check_names,
    check_ownership,
    check_source,
    check_target,
    count_skipped,
)
from consoleai_etl.core.run.report import SkippedTable
from consoleai_etl.core.source.catalog import Catalog
from consoleai_etl.core.source.environments import environment_file, for_environment
from consoleai_etl.core.source.snapshot import Snapshot
from consoleai_etl.core.target.naming import TargetName
from consoleai_etl.core.target.postgres import embedded_dsn
from consoleai_etl.core.target.staging import Staging
from consoleai_etl.core.types.intervals import IntervalUnit

DEFAULT_SQLITE_PATH = "data/consoleai_legacy.sqlite"
EMBEDDED_DATA_DIR = ".data/postgres"
ENV = "consoleai_env"  # the field metadata key naming an option's environment variable
RULES_OPTION = "casting_rules"  # its variable names a YAML file, not a value


def choices(name: str, literal: Any) -> type[StrEnum]:
    """A config Enum named ``name`` (as Dagster's errors and the launchpad call it) whose
    values are those of ``literal``."""
    return StrEnum(name, [(value, value) for value in get_args(literal)])


ModeChoice = choices("Mode", Mode)
OrphansChoice = choices("OrphanPolicy", OrphanPolicy)
DateEncodingChoice = choices("DateEncoding", DateEncoding)
OnErrorChoice = choices("OnError", OnError)
TextRepairChoice = choices("TextRepair", TextRepair)
OnConflictChoice = choices("OnConflict", OnConflict)
IntervalUnitChoice = choices("IntervalUnit", IntervalUnit)


def _problem(exc: ValidationError, allowed: Iterable[str] = ()) -> OptionProblem:
    """The first error pydantic found: where (its key) and what is wrong (got value)."""
    error = exc.errors()[0]
    if error["type"] == "extra_forbidden":
        message = f"unknown field (allowed: {', '.join(allowed)})"
    elif error["type"] == "value_error":
        message = str(error["ctx"]["error"])
    else:
        message = f"{error['msg']} (got {error['input']!r})"
    return OptionProblem(tuple(error["loc"]), message)


class CastingRuleConfig(dg.Config):
    """One casting rule (see docs/type-plan.md, "Casting rules"); a rule file's entries are
    validated by this same model."""

    model_config = ConfigDict(extra="forbid", use_enum_values=True)

    column: str | None = Field(default=None, description="table.column this rule applies to")
    declared_type: str | None = Field(default=None, description="or: a declared SQLite type")
    target_type: str | None = Field(
        default=None,
        description="PostgreSQL type: bigint, integer, smallint, double precision, real, "
        "numeric(p,s), text, varchar(n), char(n), citext, bytea, boolean, date, time, timetz, "
        "timestamp, timestamptz, interval, uuid, inet, cidr, macaddr, json, jsonb, or an array "
        "of one (text[])",
    )
    date_encoding: DateEncodingChoice | None = Field(
        default=None, description="How the column's numbers encode dates"
    )
    on_error: OnErrorChoice | None = Field(
        default=None, description="A value the chosen type cannot hold"
    )
    text_repair: list[TextRepairChoice] = Field(default=[], description="Text repairs to apply")
    interval_unit: IntervalUnitChoice | None = Field(
        default=None, description="What a number in an interval column counts"
    )

    @field_validator("target_type")
    @classmethod
    def _supported_type(cls, target_type: str | None) -> str | None:
        if target_type is not None and (problem := target_type_problem(target_type)):
            raise ValueError(problem)
        return target_type

    @model_validator(mode="after")
    def _one_matcher(self) -> "CastingRuleConfig":
        if problem := matcher_problem(self.column, self.declared_type):
            raise ValueError(problem)
        return self


def read_yaml(path: str | Path, what: str) -> Any:
    """The content of the YAML file ``path``; a one-line ``MigrationError`` naming it (and
    ``what`` was to be read from it) when it cannot be read or parsed."""
    try:
        return yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        reason = " ".join(str(exc).split())
        raise MigrationError(f"cannot read {what} from {path}: {reason}") from None


def rules_file(path: str) -> list[CastingRuleConfig]:
    """Rules from a YAML file (a list of rules, or a mapping with a `casting_rules` list),
    each validated by ``CastingRuleConfig`` like a rule given in run config."""
    data = read_yaml(path, "casting rules")
    rules = data.get("casting_rules") if isinstance(data, dict) else data
    if not isinstance(rules, list):
        raise MigrationError(f"{path}: expected a list of casting rules")
    return [_file_rule(path, number, rule) for number, rule in enumerate(rules, 1)]


def rule_in_file(path: str | Path, number: int) -> str:
    """How a message names rule ``number`` (from 1) of the rules file ``path``."""
    return f"{path}: casting rule #{number}"


def from_rules_file(path: str | Path, problem: OptionProblem) -> str:
    """A problem with ``casting_rules[i]`` named as rule i + 1 of the rules file ``path``,
    where the rules came from."""
    _, number, *within = problem.key
    return f"{rule_in_file(path, int(number) + 1)}: {OptionProblem(tuple(within), problem.problem)}"


def _file_rule(path: str, number: int, rule: object) -> CastingRuleConfig:
    try:
        return CastingRuleConfig.model_validate(rule)
    except ValidationError as exc:
        problem = _problem(exc, CastingRuleConfig.model_fields)
        raise MigrationError(f"{rule_in_file(path, number)}: {problem}") from None


def _from_env(name: str, field: FieldInfo) -> Any:
    """Option ``name`` from its variable, validated by the field's own type; None when the
    variable is unset or empty."""
    variable = field.json_schema_extra[ENV]
    raw = os.environ.get(variable, "")
    if not raw:
        return None
    if name == RULES_OPTION:
        return rules_file(raw)
    try:
        value = TypeAdapter(field.annotation).validate_python(raw)
    except ValidationError as exc:
        raise MigrationError(f"{variable}: {_problem(exc)}: correct or unset it") from None
    return value.value if isinstance(value, Enum) else value


def _option(variable: str, description: str) -> Any:
    """A run option: left out of run config, it falls back to ``variable``, then to the
    default (the field default stays None, meaning "not set")."""
    return Field(
        default=None,
        description=f"{description} Unset: ${variable}, then the default.",
        json_schema_extra={ENV: variable},
    )


class SourceGraph(dg.ConfigurableResource):
    """The tables the code location's asset graph was built from, and the file they were
    read from when it loaded; with ``environments_dir``, the folder of environments whose
    files the graph's partitions migrate (``sqlite_path`` is then its reference file);
    otherwise the target its asset keys name (``target_database``, ``target_schema``). A
    nested resource, so it is not part of the run config schema: a run cannot claim another
    graph."""

    sqlite_path: str
    tables: list[str]
    environments_dir: str | None = None
    target_database: str | None = None
    target_schema: str | None = None

    @classmethod
    def of(
        cls,
        sqlite_path: str | Path,
        catalog: Catalog,
        environments_dir: str | None = None,
        target: TargetName | None = None,
    ) -> "SourceGraph":
        return cls(
            sqlite_path=str(sqlite_path),
            tables=[t.name for t in catalog.tables],
            environments_dir=environments_dir,
            target_database=target and target.database,
            target_schema=target and target.schema,
        )

    @property
    def target(self) -> TargetName | None:
        """The target the graph's asset keys name; None for a graph of environments."""
        if self.target_database is None or self.target_schema is None:
            return None
        return TargetName(self.target_database, self.target_schema)


class MigrationSettings(dg.ConfigurableResource):
    """Run options. An option left unset in run config falls back to its CONSOLEAI_* variable,
    then to the built-in default, so `-c run.yaml` can set just what it changes."""

    model_config = ConfigDict(use_enum_values=True)

    sqlite_path: str | None = _option(
        "CONSOLEAI_SQLITE_PATH", f"Legacy SQLite file (default {DEFAULT_SQLITE_PATH})."
    )
    pg_dsn: str | None = _option(
        "CONSOLEAI_PG_DSN", "Target DSN (default: an embedded server in .data/)."
    )
    target_schema: str | None = _option(
        "CONSOLEAI_TARGET_SCHEMA", "Schema the tables are promoted into (default public)."
    )
    report_dir: str | None = _option(
        "CONSOLEAI_REPORT_DIR", "Where report files go (default reports/)."
    )
    dry_run: bool | None = _option(
        "CONSOLEAI_DRY_RUN", "Load and check in staging only, never touch the target."
    )
    allow_divergence: bool | None = _option(
        "CONSOLEAI_ALLOW_DIVERGENCE",
        "Promote and exit 0 even when checks fail or rows are quarantined.",
    )
    mode: ModeChoice | None = _option(
        "CONSOLEAI_MODE",
        "How the target is written: replace (its tables) or merge (into existing tables).",
    )
    orphans: OrphansChoice | None = _option(
        "CONSOLEAI_ORPHANS", "FK orphans: quarantine (default), keep or fail."
    )
    replace_existing: bool | None = _option(
        "CONSOLEAI_REPLACE_EXISTING",
        "Replace tables/views of the same name that no earlier run promoted into the target "
        "schema (an application's own); else the run stops in preflight.",
    )
    casting_rules: list[CastingRuleConfig] | None = _option(
        "CONSOLEAI_CASTING_RULES",
        "Per-column / per-declared-type overrides (the variable names a YAML file).",
    )
    on_conflict: OnConflictChoice | None = _option(
        "CONSOLEAI_ON_CONFLICT",
        "Merge mode, a row both the source and the application changed since the last "
        "merge: target (default: keep the application's row), source or fail.",
    )
    lock_timeout_seconds: float | None = _option(
        "CONSOLEAI_LOCK_TIMEOUT_SECONDS",
        "Longest wait for one lock on the application's tables, and so the longest its "
        "queries queue behind the promotion's request (default 3).",
    )
    lock_wait_seconds: float | None = _option(
        "CONSOLEAI_LOCK_WAIT_SECONDS",
        "How long the promotion or merge keeps retrying locks another session holds before "
        "the run fails, target unchanged (default 120).",
    )
    retry_seconds: float | None = _option(
        "CONSOLEAI_RETRY_SECONDS",
        "How long after a lost connection (a server restart) the run keeps reconnecting "
        "before the table fails (default 30).",
    )
    merge_tables: dict[str, str] | None = Field(
        default=None, description="Merge mode: source table -> existing target table."
    )
    merge_columns: dict[str, str] | None = Field(
        default=None, description="Merge mode: 'table.column' (source) -> target column."
    )
    ignore_columns: list[str] | None = Field(
        default=None, description="Merge mode: source columns ('table.column') left out."
    )
    merge_keys: dict[str, list[str]] | None = Field(
        default=None,
        description="Merge mode: source table -> the target's unique key (its columns) to "
        "merge on; default: the target's primary key.",
    )
    skip_tables: list[str] | None = Field(
        default=None,
        description="Source tables left out (both modes): neither loaded nor checked nor "
        "merged, and in merge mode they need no target table; the report lists each with "
        "its row count.",
    )
    migrate_history_tables: list[str] | None = Field(
        default=None,
        description="Migration-history tables (django_migrations, schema_migrations, "
        "alembic_version...) to migrate anyway; by default they are skipped (in merge mode, "
        "naming one in merge_tables merges it too).",
    )
    asset_graph: SourceGraph | None = Field(
        default=None,
        description="Set by the code location: the tables its asset graph was built from "
        "(a run against a file with other tables is refused). None: no graph to agree with.",
    )

    _lock: RunLock | None = PrivateAttr(default=None)
    _staging_lock: StagingLock | None = PrivateAttr(default=None)
    _checked: bool = PrivateAttr(default=False)
    _snapshot: Snapshot | None = PrivateAttr(default=None)
    _merge_plan: MergePlan | None = PrivateAttr(default=None)
    _skip_reasons: dict[str, str] = PrivateAttr(default_factory=dict)
    _skipped: tuple[SkippedTable, ...] | None = PrivateAttr(default=None)
    _catalog: Catalog | None = PrivateAttr(default=None)
    _environment: str | None = PrivateAttr(default=None)

    @field_validator("merge_columns", "ignore_columns")
    @classmethod
    def _table_dot_column(cls, value: dict | list | None) -> dict | list | None:
        for entry in value or ():
            if "." not in entry:
                raise ValueError(f"{entry!r}: write a source column as table.column")
        return value

    def preflight(
        self, *, lock: bool, verifying: bool = False, tables: Collection[str] | None = None
    ) -> MigrationConfig:
        """Check options (environment values and rule files), source, its agreement with
        the asset graph, the tables and columns the options name, the tables it skips
        (``core.plan.skip``: a name the source lacks stops the run), and target once per
        run, before anything is written; with ``lock`` (a migration), also check that the
        run would replace only what earlier runs promoted, and take the per-schema lock that
        keeps a second migration out; ``verifying`` (replace mode), that the target schema
        was migrated at all. Then take the run's ``Snapshot`` of the source: the
        returned config points the readers at it, and lists the skipped tables with their
        row counts. In merge mode, plan the merge of ``tables`` (the run's selection; None:
        every table) less the skipped ones: only those need a target table.

        Called by the table assets' step (and the consistency job's ops). It raises
        ``MigrationError`` with a one-line message inside a step, because Dagster's CLI turns
        resource-setup errors into tracebacks. The lock and the snapshot live on this
        resource until teardown, so everything a step reads comes from one moment.
        """
        config = self.to_config()
        merging = config.mode == "merge"
        if not self._checked:
            catalog = check_source(config.sqlite_path)
            if self.asset_graph is not None:
                graph = self.asset_graph
                reference = Path(graph.sqlite_path).stem if self._environment else graph.sqlite_path
                check_graph(config.sqlite_path, catalog, graph.tables, reference, self._environment)
                if graph.target is not None:
                    check_graph_target(
                        graph.target, TargetName.of(config.pg_dsn, config.target_schema)
                    )
            self._catalog = catalog
            merge = config.merge if merging else None
            check_names(catalog, config.casting_rules, merge, describe=self._in_run_config)
            self._skip_reasons = skipped_tables(
                [t.name for t in catalog.tables],
                config.skip_tables,
                config.migrate_history_tables,
                mapped=config.merge.tables if merging else (),
            )
            check_target(config.pg_dsn, config.target_schema, creates_tables=not merging)
            # Merge mode writes into the application's tables: that is its point. A dry run
            # is refused as the real run would be.
            if lock and not config.replace_existing and not merging:
                check_ownership(catalog, config.pg_dsn, config.target_schema, self._skip_reasons)
            if verifying and not merging:  # merge mode's plan names each missing table
                check_migrated(catalog, config.pg_dsn, config.target_schema, self._skip_reasons)
            self._checked = True
        if lock and self._lock is None:
            self._lock = RunLock(config.pg_dsn, config.target_schema)
        if self._snapshot is None:
            self._snapshot = Snapshot.take(config.sqlite_path)
        snapshot = str(self._snapshot.path)
        if self._skipped is None:
            self._skipped = count_skipped(snapshot, self._skip_reasons)
        if merging and self._merge_plan is None:  # read only: verifying needs it too
            self._merge_plan = check_merge(
                snapshot,
                config.pg_dsn,
                config.target_schema,
                config.merge,
                tables=tables,
                skipped=self._skip_reasons,
            )
        return replace(
            config, sqlite_path=snapshot, merge_plan=self._merge_plan, skipped=self._skipped
        )

    def _in_run_config(self, problem: OptionProblem) -> str:
        """``problem`` in run config's words: its key path; a rule that came from the file
        named by CONSOLEAI_CASTING_RULES (run config set none) by that file and number."""
        if problem.key[:1] == (RULES_OPTION,) and self.casting_rules is None:
            field = type(self).model_fields[RULES_OPTION]
            return from_rules_file(os.environ[field.json_schema_extra[ENV]], problem)
        return str(problem)

    @property
    def catalog(self) -> Catalog | None:
        """The run's source catalog, read by its preflight (None before it): the tables a
        run migrates are planned from its own file, the graph's agreeing in names only."""
        return self._catalog

    @property
    def snapshot(self) -> Snapshot | None:
        """The run's snapshot; None in a process whose steps took none (the report step
        of a multi-process run)."""
        return self._snapshot

    def hold_staging(self, config: MigrationConfig, run_id: str) -> None:
        """Mark the run's staging alive (``StagingLock``) from its first table step
        until teardown, so that another run starting meanwhile leaves it alone."""
        if self._staging_lock is None:
            self._staging_lock = StagingLock(config.pg_dsn, Staging(run_id))

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """In a code location of environments, the run's partition is its environment."""
        graph, run = self.asset_graph, context.dagster_run
        if graph is not None and graph.environments_dir and run is not None:
            self._environment = run.tags.get(PARTITION_NAME_TAG)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._snapshot is not None:
            self._snapshot.close()
            self._snapshot = None
        for lock in (self._lock, self._staging_lock):
            if lock is not None:
                lock.release()
        self._lock = self._staging_lock = None

    def to_config(self) -> MigrationConfig:
        """The resolved, framework-free config; starts the embedded PostgreSQL if no DSN.
        Raises ``MigrationError`` (one line) for a bad environment value or rules file."""
        options = {
            name: self._resolved(name, field)
            for name, field in type(self).model_fields.items()
            if ENV in (field.json_schema_extra or {})
        }
        rules = options.pop(RULES_OPTION) or []
        merge = MergeOptions(
            tables=self.merge_tables or {},
            columns=self.merge_columns or {},
            ignore=tuple(self.ignore_columns or ()),
            keys={table: tuple(key) for table, key in (self.merge_keys or {}).items()},
            on_conflict=options.pop("on_conflict") or "target",
        )
        sqlite_path = options.pop("sqlite_path") or DEFAULT_SQLITE_PATH
        environment = self._environment
        if environment is not None:  # set only by a partition of a graph of environments
            sqlite_path = str(environment_file(self.asset_graph.environments_dir, environment))
        for name in PER_ENVIRONMENT:
            options[name] = for_environment(options[name], environment, name)
        return MigrationConfig(
            sqlite_path=sqlite_path,
            pg_dsn=options.pop("pg_dsn") or embedded_dsn(EMBEDDED_DATA_DIR),
            casting_rules=parse_rules([rule.model_dump() for rule in rules]),
            merge=merge,
            skip_tables=tuple(self.skip_tables or ()),
            migrate_history_tables=tuple(self.migrate_history_tables or ()),
            **{name: value for name, value in options.items() if value is not None},
        )

    def _resolved(self, name: str, field: FieldInfo) -> Any:
        """The run config's value, else the variable's; None leaves the core's default."""
        value = getattr(self, name)
        return _from_env(name, field) if value is None else value


def target_of(options: Mapping[str, Any]) -> TargetName:
    """The target, by name (``core.target.naming``), of a run whose settings' run config is
    ``options``, the variables filling in what it leaves out: known without connecting or
    starting the embedded server, before the run (the command keys its graph by it)."""
    fields = MigrationSettings.model_fields
    dsn, schema = (
        _from_env(name, fields[name]) if options.get(name) is None else str(options[name])
        for name in ("pg_dsn", "target_schema")
    )
    return TargetName.of(dsn, schema)


# The options whose value may name the run's environment (``{environment}``).
PER_ENVIRONMENT = ("pg_dsn", "target_schema", "report_dir")

# The run config options of the resource: its Dagster config schema's fields (the graph it
# is built from is not one: a run cannot set it).
RUN_OPTIONS = tuple(
    name
    for name in MigrationSettings.model_fields
    if name in MigrationSettings.to_config_schema().as_field().config_type.fields
)
SETTINGS_PATH = ("resources", "settings", "config")  # where run config holds the options


def in_run_config(name: str, value: str | None) -> str:
    """How a Dagster user sets option ``name``: its run config key, or its CONSOLEAI_*
    variable, which is how a code location is usually given its source and target."""
    field = MigrationSettings.model_fields[name]
    variable = (field.json_schema_extra or {}).get(ENV)  # type: ignore[union-attr]
    said = config_key(name, value)
    return f"{said} (or {variable}{'' if value is None else '=' + value})" if variable else said


# What a config type expects, in words, by its scalar kind or else its kind.
EXPECTED = {
    "BOOL": "true or false",
    "STRING": "a string",
    "INT": "an integer",
    "FLOAT": "a number",
    "ARRAY": "a list",
    "MAP": "a mapping",
    "STRICT_SHAPE": "a mapping",
}


def checked_settings(job: dg.JobDefinition, options: Mapping[str, Any]) -> MigrationSettings:
    """The ``settings`` resource that run config ``options`` (its ``config`` mapping) give
    in a run of ``job``, validated as that run would validate them: by the job's run config
    schema first (an unknown key, a wrong type or choice: Dagster refuses them when the run
    is launched), then by the model's own validators (when the run builds the resource).
    Raises ``OptionError`` with every problem Dagster found, or pydantic's first."""
    try:
        valid = dg.validate_run_config(job, {"resources": {"settings": {"config": dict(options)}}})
    except dg.DagsterInvalidConfigError as exc:
        raise OptionError([p for error in exc.errors for p in _config_problems(error)]) from None
    config = valid["resources"]["settings"]["config"]
    try:
        return MigrationSettings(**{k: v for k, v in config.items() if v is not None})
    except ValidationError as exc:
        raise OptionError([_problem(exc)]) from None


def _config_problems(error: Any) -> list[OptionProblem]:
    """One error of Dagster's run config validation (an ``EvaluationError``), as problems
    keyed within the settings' options, in a few words instead of Dagster's dump of the
    expected schema."""
    key = tuple(_stack_part(entry) for entry in error.stack.entries)[len(SETTINGS_PATH) :]
    data = error.error_data
    if error.reason.value in ("FIELD_NOT_DEFINED", "FIELDS_NOT_DEFINED"):
        *names, last = getattr(data, "field_names", None) or [data.field_name]
        allowed = f"unknown option (allowed: {', '.join(_allowed(key))})"
        return [OptionProblem((*key, name), "unknown option") for name in names] + [
            OptionProblem((*key, last), allowed)
        ]
    snap = getattr(data, "config_type_snap", None)
    if snap is not None and snap.enum_values:
        choices = ", ".join(value.value for value in snap.enum_values)
        return [OptionProblem(key, f"not one of {choices} (got {data.value_rep})")]
    if snap is not None:
        kind = (snap.scalar_kind or snap.kind).value
        expected = EXPECTED.get(kind, snap.given_name or kind.lower())
        return [OptionProblem(key, f"expected {expected} (got {data.value_rep})")]
    # e.g. {env: NAME} naming an unset variable: the reason's first line, no class name
    first = (getattr(data, "message", None) or error.message).splitlines()[0]
    return [OptionProblem(key, first.split(": ", 1)[-1])]


def _stack_part(entry: Any) -> str | int:
    """A step of a Dagster config error's path: a field, list index or mapping key."""
    for attribute in ("field_name", "list_index", "map_key"):
        if hasattr(entry, attribute):
            return getattr(entry, attribute)
    raise AssertionError(f"unknown config path entry {entry!r}")


def _allowed(key: Key) -> list[str]:
    """The options a mapping at ``key`` may hold: the run options, or the fields of the
    model nested there (a casting rule)."""
    names: list[str] = list(RUN_OPTIONS)
    model: type[BaseModel] = MigrationSettings
    for part in key:
        if isinstance(part, str) and part in model.model_fields:
            nested = _model_in(model.model_fields[part].annotation)
            assert nested is not None, f"{key_path(key)} holds no model"
            model, names = nested, list(nested.model_fields)
    return names


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model ``annotation`` holds (``list[CastingRuleConfig] | None``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next(filter(None, map(_model_in, get_args(annotation))), None)
