"""A local S3-compatible endpoint (moto's server mode) for development and tests.

moto serves the S3 and Glue APIs on loopback, which is what the S3A connector, boto3
and pyarrow need to exercise the exact code paths used against AWS. Its state lives in
memory: buckets and objects vanish with `stack down`. That is fine for tests and demos;
for data that must survive, point MOVESMART_S3_ENDPOINT at MinIO or use AWS itself.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from movesmart_dagster.settings import Settings
from movesmart_dagster.stack.processes import (
    PidFile,
    StackError,
    port_bindable,
    spawn_group,
    stop_group,
    wait_for_port,
)

_MARKER = "moto.server"


@dataclass(frozen=True)
class S3Status:
    running: bool
    pid: int | None
    endpoint: str
    bucket: str


class LocalS3Endpoint:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = settings.s3_local_port
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.pid_file = PidFile(settings.home_dir / "run" / "s3.pid", _MARKER)
        self.log_file = settings.home_dir / "s3" / "server.log"

    def status(self) -> S3Status:
        pid = self.pid_file.read()
        return S3Status(pid is not None, pid, self.endpoint, self.settings.warehouse_bucket)

    def up(self) -> S3Status:
        if not self.status().running:
            if not port_bindable(self.port):
                raise StackError(f"port {self.port} is already in use by another process")
            env = dict(os.environ)
            proc = spawn_group(
                [sys.executable, "-m", _MARKER, "-H", "127.0.0.1", "-p", str(self.port)],
                self.log_file,
                env=env,
            )
            self.pid_file.write(proc.pid)
            if not wait_for_port(self.port, 30, alive=lambda: proc.poll() is None):
                stop_group(proc, timeout=5)
                self.pid_file.clear()
                raise StackError(f"local S3 endpoint did not start; see {self.log_file}")
        self.ensure_bucket()
        return self.status()

    def ensure_bucket(self) -> None:
        import boto3

        # the local endpoint accepts any key; these are not credentials of any account
        s3 = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.settings.aws_region,
            aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "local"),
            aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "local"),
        )
        bucket = self.settings.warehouse_bucket
        existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        if bucket not in existing:
            s3.create_bucket(Bucket=bucket)

    def down(self) -> bool:
        pid = self.pid_file.read()
        if pid is None:
            return False
        stop_group(pid, timeout=10)
        self.pid_file.clear()
        return True
