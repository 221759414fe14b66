"""Loopback ports of the development stack: chosen at the first `up`, kept in STATE/ports.json so
URLs stay stable, and chosen anew only for a stopped component whose port something else took."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Mapping
from pathlib import Path

from teeplane.dev.errors import STATE_CORRUPT, DevError
from teeplane.dev.materials import write


def is_free(port: int) -> bool:
    """Whether a server could listen on 127.0.0.1:`port` now (a connection in TIME_WAIT does not count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def fresh_ports(count: int, avoid: set[int]) -> list[int]:
    """`count` distinct free ports, none in `avoid` (every socket stays bound until all are chosen)."""
    sockets: list[socket.socket] = []
    chosen: list[int] = []
    try:
        while len(chosen) < count:
            sock = socket.socket()
            sockets.append(sock)
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
            if port not in avoid:
                chosen.append(port)
        return chosen
    finally:
        for sock in sockets:
            sock.close()


def choose(
    saved: Mapping[str, int],
    owners: Mapping[str, str],
    running: set[str],
    free: Callable[[int], bool] = is_free,
    fresh: Callable[[int, set[int]], list[int]] = fresh_ports,
) -> dict[str, int]:
    """A port for each key of `owners` (key -> component): the saved one while its component runs or
    the port is free, otherwise a fresh one."""
    kept = {key: saved[key] for key, owner in owners.items() if key in saved and (owner in running or free(saved[key]))}
    missing = [key for key in owners if key not in kept]
    return kept | dict(zip(missing, fresh(len(missing), set(kept.values())), strict=True))


def load(path: Path) -> dict[str, int]:
    """The ports saved in `path` (none when it does not exist)."""
    if not path.exists():
        return {}
    try:
        loaded = json.loads(path.read_text())
        return {str(key): int(port) for key, port in loaded.items()}
    except (ValueError, TypeError, AttributeError):
        raise DevError(STATE_CORRUPT, f"{path} is not a JSON object of ports: delete it to choose new ones") from None


def save(path: Path, ports: Mapping[str, int]) -> None:
    """Write the ports to `path`."""
    write(path, (json.dumps(dict(ports), indent=2, sort_keys=True) + "\n").encode())
