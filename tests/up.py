"""`dispatcher up` as an operator runs it, in a subprocess, for tests that read its whole log."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import yaml

from tests.dispatcher.test_cli import BIN, _wait_healthy
from tests.ports import free_port


@contextlib.asynccontextmanager
async def dispatcher_up(
    tmp_path: Path,
    document: dict[str, Any],
    env: dict[str, str] | None = None,
    *,
    ctrl_c: bool = False,
    options: tuple[str, ...] = (),
) -> AsyncIterator[tuple[str, Path]]:
    """Runs `dispatcher up` with `document` as its directory and JSON logs at debug level (plus
    `env` and the command's `options`, such as --simulate-agents); yields its base URL and its
    log file. It is stopped with SIGTERM, or with `ctrl_c` as a terminal's Ctrl-C stops it
    (SIGINT to its whole process group), and must exit 0."""
    config = tmp_path / "directory.yaml"
    config.write_text(yaml.safe_dump(document))
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    environment.update(DISPATCHER_LOG_FORMAT="json", DISPATCHER_LOG_LEVEL="debug", **(env or {}))
    log_file = tmp_path / "up.log"
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [str(BIN), "up", "--host", "127.0.0.1", "--port", str(port), "--config", str(config),
             "--data-dir", str(tmp_path / "data"), *options],
            env=environment, stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
        try:
            await asyncio.to_thread(_wait_healthy, port, process)
            yield f"http://127.0.0.1:{port}", log_file
        finally:
            if ctrl_c:
                os.killpg(process.pid, signal.SIGINT)
            else:
                process.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(process.wait, 30) == 0
