"""Hostile plugin: talks to the outside world. Must fail inside the sandbox (no network)."""

import socket

from harness import register_method


@register_method("net-probe", needs_retain=False)
def net_probe(task, *, port: int = 0, abstract: str = "", host: str = "1.1.1.1"):
    """Connect to the harness machine's loopback, an abstract unix socket, and a public address."""
    reached = []
    for family, address in ((socket.AF_INET, ("127.0.0.1", port)), (socket.AF_UNIX, "\0" + abstract),
                            (socket.AF_INET, (host, 53))):
        if not address or address == "\0" or address == ("127.0.0.1", 0):
            continue
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(3)
            try:
                sock.connect(address)
                sock.sendall(b"net-probe was here")
                reached.append(repr(address))
            except OSError as exc:
                print(f"net-probe: {address!r}: {exc}")
    if not reached:
        raise ConnectionError("net-probe reached nothing: no network")
    return task.model
