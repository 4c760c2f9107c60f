"""The table-maintenance pool's limit, written into a Dagster instance before its first run.

Why a step of its own: Dagster applies `concurrency: pools: default_limit` to a pool only once
its run queue has seen a run of that pool, and not in that same pass: on a new instance two
maintenance runs queued together both started (CI caught it), and two rewrites of one day fail
the later commit. Registered up front, the first pair waits too. `make dev` registers it in its
instance (`dev.ensure_instance_yaml`); the deployment's daemon runs
`python -m movesmart_dagster.instance_pools` before it starts (docker-compose.yml), on the
instance of DAGSTER_HOME.
"""

from __future__ import annotations

import dagster as dg

from movesmart_dagster.defs.keys import MAINTENANCE_POOL


def register_pools(instance: dg.DagsterInstance) -> int | None:
    """Give the maintenance pool the instance's default pool limit now; the slots it holds (None:
    the instance sets no default limit, so the pool is unlimited as before)."""
    storage = instance.event_log_storage
    storage.initialize_concurrency_limit_to_default(MAINTENANCE_POOL)
    if MAINTENANCE_POOL not in storage.get_concurrency_keys():
        return None
    return storage.get_concurrency_info(MAINTENANCE_POOL).slot_count


def main() -> int:
    with dg.DagsterInstance.get() as instance:
        slots = register_pools(instance)
    print(
        f"pool {MAINTENANCE_POOL}: "
        + (f"{slots} run(s) at a time" if slots is not None else "no default limit in the instance")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
