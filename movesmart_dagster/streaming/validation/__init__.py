"""The data contract in the streaming job: a JVM fast path, then the reference itself.

The modules, one reason to change each: `fast_path` (the first pass's SQL, in the
streaming plan), `fast_contract` (the Java UDFs it calls and their spec), `exact_path`
(the second pass: the reference on the driver), `chunks` (how that pass bounds the
driver's memory), `sql` (quoting). `route` below composes the two passes as the job does.

How a batch is routed (see `route`): the Kafka columns first meet the checks that need no
parse (tombstone, size cap, UTF-8), written as SQL with the reference's own reason texts
(`contract.TOMBSTONE`, `contract.NOT_JSON`, the `oversized` text). Then the JVM fast
path (`register_fast_contract`, `io.movesmart.spark.FastContract`, configured from
`schemas.py` and the event-time rule) accepts the plainly valid records in one Jackson pass;
it never rejects. The records it cannot vouch for get `_dest = '_exact'` and `reroute_exact`
judges every one of them with `contract.validate` — the reference — on the driver, in
bounded chunks. Both passes judge a record's event time against its ingestion time, the
Kafka record timestamp (`contract.EventTimeRule`): the fast path gets it as the UDF's second
argument, the reference as `ingested_at`.

Why the reference judges every undecided record, however many: a record's verdict and its
reason text must not depend on what else is in its batch. An earlier design switched
to the same rules written as Spark SQL when a batch held more than
`MOVESMART_DRIVER_VALIDATION_MAX_ROWS` undecided records, and that SQL differed from the
reference in documented corners (ISO week dates, glued objects, UTF-16, float notation in
reasons): the same payload could land in a table alone and in quarantine among 100,000 bad
records. It was retired rather than chased corner by corner.

Why on the driver, not on the executors: running the reference on executors means
Python worker processes, and the job dropped those after one survived a `kill -9` of the
job. The driver is already a Python process; it judges some 30,000 small undecided
records a second on a busy 2-core machine, which only a whole stream in an unusual dialect
would strain (its valid records would then wait for the driver, not be misjudged).

Why in chunks: the driver holds one chunk at a time — at most
`MOVESMART_DRIVER_VALIDATION_MAX_ROWS` records and about `CHUNK_BYTES` (or one record of up
to the size cap) — and each chunk's verdicts go back to Spark's block manager
(`localCheckpoint`, memory and disk) before the next chunk is fetched, so the driver's
memory stays within its setting however large the batch. Chunks are contiguous offset
ranges per Kafka partition, planned from per-bucket counts, so fetching one is a filter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from movesmart_dagster.contract import EventTimeRule
from movesmart_dagster.streaming.validation.exact_path import DEFAULT_CHUNK_ROWS, reroute_exact, with_exact
from movesmart_dagster.streaming.validation.fast_contract import register_fast_contract
from movesmart_dagster.streaming.validation.fast_path import route_fast, unpack

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def route(
    df: DataFrame,
    max_message_bytes: int,
    time_rule: EventTimeRule | None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> DataFrame:
    """A batch of Kafka rows of any topics (tests, tools) routed the way the streaming job
    routes them: the JVM fast path, then `reroute_exact` for the rows it left undecided."""
    register_fast_contract(df.sparkSession, time_rule)
    routed = unpack(route_fast(df, max_message_bytes))
    return with_exact(routed, reroute_exact(routed, max_message_bytes, time_rule, chunk_rows=chunk_rows))
