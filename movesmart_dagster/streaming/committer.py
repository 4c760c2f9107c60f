"""Exactly once for every reader: how a micro-batch's files become visible.

Readers that list files (DuckDB, Athena, Redshift Spectrum, Glue crawlers) never see
Spark's `_spark_metadata`, and they skip every path component that starts with `_` or
`.`. So a batch is written where they do not look and then moved where they do:

1. stage    Spark writes batch B of table T to `<T>/_staging/batch=B/event_date=D/...`,
            and the rows of the exact path (the second validation pass) in a write of their
            own to `<T>/_staging/batch=B/_exact/event_date=D/...` (Spark's own commit
            protocol; a failed attempt's leftovers there are deleted first).
2. manifest The list of moves `staged file -> <T>/event_date=D/part-<q>-b<B>-<task>-<n>.parquet`
            is written to `<warehouse>/_manifests/<q>/batch-<B>.json` (tmp + rename).
            Final names are deterministic: `<q>` is the streaming query id (stable for a
            checkpoint), `<task>` is Spark's partition index (prefixed `x` for the exact
            path's write), which for a re-run of batch B (same offsets, same Kafka
            partitions, same order) holds the same rows.
3. move     Each staged file is renamed to its final name (S3: copy + delete; one object
            appears whole or not at all). If the final name already exists it was moved by
            a failed attempt of this same batch and holds the same rows: it is kept and the
            staged copy dropped, so a reader never sees a row vanish or appear twice.
4. commit   foreachBatch returns, Spark records batch B in the checkpoint's commit log.

A crash (kill -9) at any point, then a restart, re-runs batch B with the same offsets:
- before the manifest: nothing is visible; staging is rewritten.
- after the manifest, during or after the moves: some or all of B's files are visible.
  They are exactly files the re-run produces again under the same names, so they stay;
  the rest are moved. Any final file the old manifest lists that the re-run does not
  produce (it cannot happen unless the code or settings changed between attempts) is
  deleted before the moves.
- after the moves but before Spark's commit: every move finds its target present; the
  re-run changes nothing visible.
So at every instant a reader sees each Kafka record at most once, and once the batch is
committed, exactly once. The manifests of committed batches are pruned.

Starting a *new* checkpoint over an existing warehouse changes `<q>`, so nothing is
overwritten; it re-reads from the earliest offsets, i.e. duplicates — reset the warehouse
together with the checkpoint.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

SECOND_PASS_DIR = "_exact"  # inside a batch's staging dir: the exact path's own write
_STAGED = re.compile(r"^part-(\d+)-[0-9a-f\-]+\.c(\d+)((?:\.[a-z0-9]+)*)\.parquet$")


@dataclass(frozen=True)
class Move:
    table: str
    src: str
    dst: str


class HadoopFS:
    """The few file operations we need, through Spark's own Hadoop FileSystem (file://, s3a://)."""

    def __init__(self, spark: SparkSession) -> None:
        self._jvm = spark._jvm  # type: ignore[attr-defined]
        self._conf = spark._jsc.hadoopConfiguration()  # type: ignore[attr-defined]

    def _path(self, uri: str) -> Any:
        return self._jvm.org.apache.hadoop.fs.Path(uri)

    def _fs(self, uri: str) -> Any:
        return self._path(uri).getFileSystem(self._conf)

    def exists(self, uri: str) -> bool:
        return bool(self._fs(uri).exists(self._path(uri)))

    def delete(self, uri: str, recursive: bool = True) -> bool:
        return bool(self._fs(uri).delete(self._path(uri), recursive))

    def glob(self, pattern: str) -> list[str]:
        statuses = self._fs(pattern).globStatus(self._path(pattern))
        if statuses is None:
            return []
        return sorted(str(s.getPath().toString()) for s in statuses if s.isFile())

    def rename(self, src: str, dst: str) -> None:
        fs = self._fs(src)
        parent = self._path(dst).getParent()
        if not fs.exists(parent):
            fs.mkdirs(parent)
        if not fs.rename(self._path(src), self._path(dst)):
            raise OSError(f"rename failed: {src} -> {dst}")

    def write_bytes(self, uri: str, data: bytes) -> None:
        """Write a small file atomically enough: to `<uri>.tmp`, then rename over."""
        fs = self._fs(uri)
        tmp = self._path(uri + ".tmp")
        out = fs.create(tmp, True)
        try:
            out.write(bytearray(data))
        finally:
            out.close()
        if fs.exists(self._path(uri)):
            fs.delete(self._path(uri), False)
        if not fs.rename(tmp, self._path(uri)):
            raise OSError(f"rename failed: {tmp} -> {uri}")

    def read_bytes(self, uri: str) -> bytes | None:
        fs = self._fs(uri)
        path = self._path(uri)
        if not fs.exists(path):
            return None
        stream = fs.open(path)
        try:
            return bytes(self._jvm.org.apache.commons.io.IOUtils.toByteArray(stream))
        finally:
            stream.close()

    def list_dirs(self, uri: str) -> list[str]:
        fs = self._fs(uri)
        path = self._path(uri)
        if not fs.exists(path):
            return []
        return sorted(str(s.getPath().getName()) for s in fs.listStatus(path) if s.isDirectory())


class BatchCommitter:
    """Stage, manifest, move: the visible side of one query's micro-batches."""

    def __init__(self, fs: HadoopFS, warehouse: str, query_id: str) -> None:
        self.fs = fs
        self.warehouse = warehouse.rstrip("/")
        self.query_id = query_id
        self.tag = query_id.replace("-", "")[:12]

    # --- paths ---------------------------------------------------------------------------
    def staging_dir(self, table: str, batch_id: int, second_pass: bool = False) -> str:
        """Where batch B of a table is staged; second_pass: the rows of the exact path, a
        write of their own (running while the fast path's rows are written)."""
        base = f"{self.warehouse}/{table}/_staging/batch={batch_id}"
        return f"{base}/{SECOND_PASS_DIR}" if second_pass else base

    def manifest_path(self, batch_id: int) -> str:
        return f"{self.warehouse}/_manifests/{self.query_id}/batch-{batch_id}.json"

    def final_name(self, staged_name: str, batch_id: int, second_pass: bool = False) -> str:
        m = _STAGED.match(staged_name)
        if not m:
            raise ValueError(f"unexpected staged file name {staged_name!r}")
        task, count, codec = m.group(1), m.group(2), m.group(3)
        mark = "x" if second_pass else ""  # the two writes number their tasks alike
        return f"part-{self.tag}-b{batch_id:010d}-{mark}{task}-{count}{codec}.parquet"

    # --- protocol ------------------------------------------------------------------------
    def prepare(self, tables: Iterable[str], batch_id: int) -> None:
        """Remove what a failed attempt of this batch left in staging."""
        for table in tables:
            self.fs.delete(self.staging_dir(table, batch_id))

    def plan(self, tables: Iterable[str], batch_id: int) -> list[Move]:
        moves = []
        for table in tables:
            for second_pass in (False, True):
                staging = self.staging_dir(table, batch_id, second_pass)
                for src in self.fs.glob(f"{staging}/*=*/part-*.parquet"):
                    partition = src.rsplit("/", 2)[-2]
                    name = self.final_name(src.rsplit("/", 1)[-1], batch_id, second_pass)
                    moves.append(Move(table, src, f"{self.warehouse}/{table}/{partition}/{name}"))
        return moves

    def previous_moves(self, batch_id: int) -> list[Move] | None:
        """The moves of a failed attempt of this batch, if it got as far as its manifest."""
        raw = self.fs.read_bytes(self.manifest_path(batch_id))
        if raw is None:
            return None
        try:
            doc = json.loads(raw)
        except ValueError:
            return None  # torn write of the manifest: no move had started
        return [Move(**m) for m in doc.get("moves", [])]

    def write_manifest(self, batch_id: int, moves: list[Move]) -> None:
        doc = {"query_id": self.query_id, "batch_id": batch_id, "moves": [m.__dict__ for m in moves]}
        self.fs.write_bytes(self.manifest_path(batch_id), json.dumps(doc, indent=1).encode())

    def apply(
        self,
        batch_id: int,
        moves: list[Move],
        previous: list[Move] | None,
        on_progress: Callable[[int], None] | None = None,
    ) -> int:
        """Make the batch visible; returns how many files were moved (not already there)."""
        wanted = {m.dst for m in moves}
        for old in previous or []:
            if old.dst not in wanted and self.fs.exists(old.dst):
                self.fs.delete(old.dst, recursive=False)
        moved = 0
        for i, m in enumerate(moves):
            if self.fs.exists(m.dst):
                self.fs.delete(m.src, recursive=False)  # moved by a failed attempt: same rows
            else:
                self.fs.rename(m.src, m.dst)
                moved += 1
            if on_progress:
                on_progress(i + 1)
        return moved

    def finish(self, tables: Iterable[str], batch_id: int) -> None:
        """After the moves: drop staging, and manifests of batches Spark has surely committed."""
        for table in tables:
            self.fs.delete(self.staging_dir(table, batch_id))
        # batch B running means B-1 is committed; keep the last one for inspection
        old = batch_id - 2
        if old >= 0:
            self.fs.delete(self.manifest_path(old), recursive=False)
