"""How a failed streaming query is told: one line in the job's log, not a traceback.

Why its own module: Spark's message for a failed query carries the whole cause chain (a Python
traceback from foreachBatch, Java `Caused by:` lines); a user needs its first line and the
innermost error, and a full disk said as such with what to do about it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from movesmart_dagster.settings import Settings

# "OSError: ...", "java.io.IOException: ...": the line of an error in a traceback or cause chain
_ERROR_LINE = re.compile(r"^[A-Za-z_][\w.$]*(Error|Exception|Exit|Interrupt): ")


def failure_summary(error: BaseException | str, settings: Settings, checkpoint: str) -> str:
    """The one line a failed query leaves in the job's log: a full disk said as such; else the
    first line of Spark's message and, when that is not it, the innermost error it carries (a
    Python traceback from foreachBatch, a Java `Caused by:`)."""
    text = str(error)
    if "No space left on device" in text:  # ENOSPC, from a Spark task or from the driver
        return (
            f"no space left on device writing to the warehouse {settings.warehouse} "
            f"(or the checkpoint {checkpoint}): free space there and start the job again; "
            "the failed batch is re-run, exactly once"
        )
    lines = [line.strip().removeprefix("Caused by: ") for line in text.splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    causes = [line for line in lines[1:] if _ERROR_LINE.match(line)]
    return lines[0] if not causes or causes[-1] in lines[0] else f"{lines[0]} ... {causes[-1]}"
