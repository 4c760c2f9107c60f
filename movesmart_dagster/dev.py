"""`make dev`: start the local stack, the simulator and `dagster dev`; Ctrl-C stops them all.

Runs in the foreground so a person sees everything start, and cleans up what it started
(never a broker it did not start) on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from movesmart_dagster.settings import load_settings
from movesmart_dagster.stack.kafka_broker import KafkaBroker

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    settings = load_settings()
    broker = KafkaBroker(settings)
    started_broker = not broker.status().running
    status = broker.up()
    print(f"kafka   running pid={status.pid} bootstrap={status.bootstrap}", flush=True)

    bin_dir = Path(sys.executable).parent
    children: list[subprocess.Popen] = []
    dagster_home = settings.home_dir / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "MOVESMART_HOME": str(settings.home_dir)}
    children.append(
        subprocess.Popen(
            [
                str(bin_dir / "dagster"),
                "dev",
                "-w",
                str(REPO / "workspace.yaml"),
                "-h",
                "127.0.0.1",
                "-p",
                "3000",
            ],
            env=env,
            cwd=REPO,
        )
    )
    print("dagster dev -> http://localhost:3000  (Ctrl-C stops everything)", flush=True)

    def stop(*_: object) -> None:
        for child in reversed(children):
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
        for child in children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
        if started_broker:
            broker.down()
        print("stopped", flush=True)

    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        for child in children:
            child.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
