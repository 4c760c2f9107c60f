"""Fault injection for the exactly-once tests: `MOVESMART_FAULT_POINT=<point>:batch=<id>`.

Why in the job at all: only a real SIGKILL of the driver's JVM and the Python process at a
known point of a batch shows that a re-run commits every record exactly once. Kept apart
from the batch code so that the points are named in one place and production code only
calls `Fault.hit`.
"""

from __future__ import annotations

import contextlib
import os
import signal
from typing import TYPE_CHECKING

from movesmart_dagster.settings import SettingsError
from movesmart_dagster.streaming.joblog import log

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

FAULT_ENV = "MOVESMART_FAULT_POINT"
FAULT_POINTS = ("start", "mid_write", "after_first_table", "after_commit")


class Fault:
    """The env-var fault-injection hook: SIGKILL the driver JVM and this process."""

    def __init__(self, spec: str | None) -> None:
        self.point: str | None = None
        self.batch: int | None = None
        self.any_batch = False
        if not spec:
            return
        point, _, cond = spec.partition(":")
        if point not in FAULT_POINTS:
            raise SettingsError(f"invalid setting {FAULT_ENV}={spec!r}: point must be one of {FAULT_POINTS}")
        self.point = point
        value = cond.removeprefix("batch=") if cond else "*"
        if value == "*":
            self.any_batch = True
        else:
            self.batch = int(value)

    def hit(self, point: str, batch_id: int, spark: SparkSession) -> None:
        if self.point != point or not (self.any_batch or self.batch == batch_id):
            return
        log(f"fault injection: kill -9 at {point} of batch {batch_id}")
        with contextlib.suppress(Exception):
            jvm_pid = int(spark._jvm.java.lang.ProcessHandle.current().pid())  # type: ignore[attr-defined]
            os.kill(jvm_pid, signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)
