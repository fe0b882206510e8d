"""Many environments in one code location: each a partition of the table assets.

With CONSOLEAI_ENVIRONMENTS_DIR set, ``definitions`` partitions the table assets, the report
and the consistency job by ``ENVIRONMENTS``, a dynamic partitions definition whose keys are
the folder's environments (``core.source.environments``). ``environment_sensor`` adds a
partition for each new file, and never deletes one: a removed file's history stays, and its
run fails in preflight naming the file. A backfill of the partitions migrates them all, one
run each, as many at once as the instance's run queue allows.
"""

import dagster as dg

from consoleai_etl.core.source.environments import environment_files

ENVIRONMENTS = dg.DynamicPartitionsDefinition(name="environments")
ENVIRONMENT_JOB = "environment_migration_job"
SENSOR_INTERVAL_SECONDS = 10


def make_environment_sensor(directory: str) -> dg.SensorDefinition:
    """The sensor that adds a partition for each environment file new in ``directory``;
    it runs as soon as the daemon does (``dagster dev``)."""

    @dg.sensor(
        name="environment_sensor",
        minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Adds a partition of `environments` for each new *.sqlite in {directory}.",
    )
    def environment_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        known = set(context.instance.get_dynamic_partitions(ENVIRONMENTS.name))
        new = [name for name in environment_files(directory) if name not in known]
        if not new:
            return dg.SensorResult(skip_reason=f"no new environment in {directory}")
        context.log.info(f"new environments: {', '.join(new)}")
        return dg.SensorResult(dynamic_partitions_requests=[ENVIRONMENTS.build_add_request(new)])

    return environment_sensor
