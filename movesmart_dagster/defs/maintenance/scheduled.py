"""A table-wide maintenance asset with its job and its schedule, on by default.

Why one helper: the open-day compaction and the snapshot expiry are each an unpartitioned asset
run in process on a UTC cron; only their names, cron and words differ.
"""

import dagster as dg


def scheduled_asset(
    asset: dg.AssetsDefinition,
    *,
    job_name: str,
    job_description: str,
    schedule_name: str,
    cron: str,
    schedule_description: str,
) -> dg.Definitions:
    job = dg.define_asset_job(
        job_name,
        selection=dg.AssetSelection.assets(asset),
        executor_def=dg.in_process_executor,
        description=job_description,
    )
    schedule = dg.ScheduleDefinition(
        name=schedule_name,
        job=job,
        cron_schedule=cron,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=schedule_description,
    )
    return dg.Definitions(assets=[asset], jobs=[job], schedules=[schedule])
