"""The one free loopback port helper of the suite."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A loopback TCP port nothing listens on: bound once to port 0 and closed again, so a
    server started next can take it (or a client can be refused there)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
