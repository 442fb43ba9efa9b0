"""The HTTP client webhooks are delivered with: the destination policy enforced at the socket.

The check and the connection are one step. The client's network backend resolves the host itself,
judges every address with :mod:`ingest.alerts.webhook_policy`, and opens the TCP connection to one
of the addresses it has just judged — no second lookup, so a name that answers a public address to
the check and an internal one to the connection (DNS rebinding) gets nowhere. The URL is left as
it is: the ``Host`` header, TLS server name (SNI) and certificate check still use the host name.

The client never follows redirects, reads no proxy or credentials from the environment
(``trust_env=False``: a proxy would do its own resolving, out of the policy's sight), and the worker
reads at most :data:`RESPONSE_CAP_BYTES` of an answer (:func:`drain_capped`).

``httpx.HTTPTransport`` takes no network backend, so :class:`GuardedTransport` replaces the
connection pool it builds with one built on the guarded backend (httpx 0.28 and httpcore 1.x, as
pinned in ``pyproject.toml``; the tests deliver through it to real local servers).
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Final, TypeAlias

import httpcore
import httpx

from ingest.alerts.webhook_policy import (
    DestinationRefused,
    IPAddress,
    IPNetwork,
    addresses_refusal,
    host_and_port,
    url_refusal,
)

RESPONSE_CAP_BYTES: Final = 64 * 1024
LIMITS: Final = httpx.Limits(max_connections=20, max_keepalive_connections=5)

Resolver: TypeAlias = Callable[[str, int], list[IPAddress]]


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every TCP address of ``host`` (an address literal resolves to itself), in the resolver's
    order, without repeats. Raises ``OSError`` (``socket.gaierror``) when it has none."""
    out: list[IPAddress] = []
    for family, _, _, _, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        ip = ipaddress.ip_address(sockaddr[0])
        if ip not in out:
            out.append(ip)
    return out


def check_new_destination(url: str, allow: Sequence[IPNetwork], *, resolver: Resolver = resolve) -> None:
    """The check when a webhook is registered. Raises :class:`DestinationRefused`.

    A host that does not resolve is refused too ("cannot resolve"): the admin is there to correct
    a typo or to try again once the receiver's DNS record exists, whereas a webhook accepted
    unresolvable would only fail later, at delivery, where nobody is watching. The same checks run
    again at every delivery (addresses change), so passing here is no lasting permission."""
    if (reason := url_refusal(url)) is not None:
        raise DestinationRefused(reason)
    host, port = host_and_port(url)
    try:
        addresses = resolver(host, port)
    except (OSError, UnicodeError) as exc:
        raise DestinationRefused(f"cannot resolve {host} ({exc})") from None
    if (reason := addresses_refusal(host, addresses, allow)) is not None:
        raise DestinationRefused(reason)


class GuardedBackend(httpcore.NetworkBackend):
    """Resolves, judges every address, connects only to an address it judged."""

    def __init__(
        self,
        allow: Sequence[IPNetwork],
        *,
        resolver: Resolver = resolve,
        inner: httpcore.NetworkBackend | None = None,
    ) -> None:
        self._allow = tuple(allow)
        self._resolve = resolver
        self._inner = inner or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = self._resolve(host, port)
        except (OSError, UnicodeError) as exc:
            # transient as far as anyone can tell: an ordinary connection failure, retried
            raise httpcore.ConnectError(f"cannot resolve {host} ({exc})") from exc
        if (reason := addresses_refusal(host, addresses, self._allow)) is not None:
            raise DestinationRefused(reason)
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for ip in addresses:
            try:
                return self._inner.connect_tcp(str(ip), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # addresses is not empty, or the policy refused it
        raise failure

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise DestinationRefused("webhooks are not delivered over Unix sockets")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class GuardedTransport(httpx.HTTPTransport):
    """``httpx.HTTPTransport`` whose connections are opened by a :class:`GuardedBackend`."""

    def __init__(
        self,
        allow: Sequence[IPNetwork],
        *,
        resolver: Resolver = resolve,
        limits: httpx.Limits = LIMITS,
    ) -> None:
        super().__init__(trust_env=False, limits=limits)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(allow, resolver=resolver),
        )


def webhook_client(
    *, timeout_s: float, allow: Sequence[IPNetwork], user_agent: str, resolver: Resolver = resolve
) -> httpx.Client:
    """The client the webhook worker posts with: guarded transport, no redirects, no environment."""
    return httpx.Client(
        transport=GuardedTransport(allow, resolver=resolver),
        timeout=timeout_s,
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": user_agent},
    )


def drain_capped(response: httpx.Response, *, cap: int = RESPONSE_CAP_BYTES, deadline: float) -> int:
    """Read (and drop) the answer's body as sent, stopping once ``cap`` bytes are in (the last
    network read may carry up to 64 KiB past it) or at ``deadline`` (``time.monotonic()``);
    returns the bytes read. Closing the response then closes a connection whose body was not read
    to the end. Raw bytes are counted, so a compressed body cannot expand past the cap."""
    read = 0
    for chunk in response.iter_raw():
        read += len(chunk)
        if read >= cap or time.monotonic() >= deadline:
            break
    return read
