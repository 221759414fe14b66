"""ServiceClient over several replicas: a call that cannot connect to one goes to the next."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from processes import free_ports

from teeplane.remote import RemoteError, ServiceClient


class _Answer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"served_by": self.server.server_address[1]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def replica() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_replica_that_refuses_connections_is_skipped_and_the_next_kept(replica: str) -> None:
    dead = [f"http://127.0.0.1:{port}" for port in free_ports(2)]
    client = ServiceClient(f"{dead[0]}, {dead[1]},{replica}")
    port = int(replica.rsplit(":", 1)[1])
    assert client._json("GET", "/") == {"served_by": port}
    assert str(client._http.base_url).rstrip("/") == replica  # later calls go straight to it
    assert client._json("GET", "/") == {"served_by": port}


def test_no_replica_answering_is_service_unreachable() -> None:
    urls = ",".join(f"http://127.0.0.1:{port}" for port in free_ports(3))
    with pytest.raises(RemoteError) as caught:
        ServiceClient(urls)._json("GET", "/")
    assert (caught.value.code, caught.value.http_status) == ("service.unreachable", 503)
