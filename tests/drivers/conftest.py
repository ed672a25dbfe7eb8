"""Servers that misbehave on purpose, on 127.0.0.1: for the tests that every platform call is bounded."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest


@dataclass
class Server:
    """A listening socket on 127.0.0.1 whose connections are handed to ``serve`` in a thread each."""

    serve: Callable[[socket.socket], None]
    sock: socket.socket = field(default_factory=socket.socket)
    clients: list[socket.socket] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    @property
    def port(self) -> int:
        port: int = self.sock.getsockname()[1]
        return port

    def start(self) -> Server:
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            self.clients.append(client)  # kept open: the peer must not see the connection close
            threading.Thread(target=self.serve, args=(client,), daemon=True).start()

    def stop(self) -> None:
        self.stopping.set()
        self.sock.close()
        for client in self.clients:
            client.close()


def _say_nothing(client: socket.socket) -> None:
    """Read whatever comes and never answer."""
    try:
        while client.recv(65536):
            pass
    except OSError:
        pass


@pytest.fixture
def black_hole() -> Iterator[Server]:
    """A server that accepts every connection and never sends a byte."""
    server = Server(_say_nothing).start()
    yield server
    server.stop()


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
