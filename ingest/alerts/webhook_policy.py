"""Where a webhook may send: the destination policy against server-side request forgery.

A clinic admin chooses a webhook's URL, so without a policy the service would POST wherever it is
told: the cloud metadata service (``http://169.254.169.254/…``), the database on
``127.0.0.1:5432``, any host of the internal network (OWASP API7:2023). The policy refuses every
destination that is not a public unicast address:

- schemes other than ``http`` and ``https``; credentials in the URL (``user:pass@``);
- loopback, link-local (``169.254.0.0/16``, ``fe80::/10``), private (RFC 1918, ``fc00::/7``),
  carrier-grade NAT (``100.64.0.0/10``), multicast, unspecified, broadcast, reserved, IPv6
  site-local and every other special-purpose range (documentation, benchmarking…);
- IPv6 forms that carry an IPv4 address (``::ffff:127.0.0.1``, 6to4 ``2002::/16``): the IPv4
  address inside is judged as well;
- a host name any of whose addresses is refused: every answer is checked, since the connection may
  go to any of them.

Networks listed in ``RPM_WEBHOOK_ALLOW_NETWORKS`` (an operator setting, empty by default) are
allowed whatever their kind: the way to reach a paging system on the clinic's internal network.

Everything here is pure (no name resolution, no sockets): callers resolve, this module judges.
Every function returns the reason a destination is refused, or ``None`` when it is allowed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Final, TypeAlias

import httpx

from ingest.errors import AlertsError

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOW_SETTING: Final = "RPM_WEBHOOK_ALLOW_NETWORKS"
SCHEMES: Final = frozenset({"http", "https"})
CARRIER_GRADE_NAT: Final = ipaddress.IPv4Network("100.64.0.0/10")
BROADCAST: Final = ipaddress.IPv4Address("255.255.255.255")
# What "private" means in the narrow sense; the other ranges ipaddress calls private are
# special-purpose (documentation, benchmarking, protocol assignments...).
PRIVATE: Final[tuple[IPNetwork, ...]] = (
    ipaddress.IPv4Network("10.0.0.0/8"),
    ipaddress.IPv4Network("172.16.0.0/12"),
    ipaddress.IPv4Network("192.168.0.0/16"),
    ipaddress.IPv6Network("fc00::/7"),
)


class DestinationRefused(AlertsError):
    """A webhook destination the policy refuses; ``reason`` says why (no secret, no patient data)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def allowed_by(ip: IPAddress, allow: Iterable[IPNetwork]) -> bool:
    """Whether the allow-list holds ``ip`` (an IPv4-mapped IPv6 address also by its IPv4 form)."""
    forms: list[IPAddress] = [ip]
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        forms.append(ip.ipv4_mapped)
    return any(form.version == net.version and form in net for net in allow for form in forms)


def _kind(ip: IPAddress) -> str | None:
    """What makes ``ip`` unfit as a webhook destination ("a loopback address"), or ``None``."""
    if isinstance(ip, ipaddress.IPv6Address):
        # an address carrying an IPv4 address reaches that address: judge it too
        if ip.ipv4_mapped is not None:
            inner = _kind(ip.ipv4_mapped)
            return f"an IPv4-mapped form of {inner}" if inner else None
        if ip.sixtofour is not None and (inner := _kind(ip.sixtofour)):
            return f"a 6to4 form of {inner}"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address (where cloud metadata services live)"
    if ip.is_multicast:
        return "a multicast address"
    if ip == BROADCAST:
        return "the broadcast address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in CARRIER_GRADE_NAT:
        return "a carrier-grade NAT address"
    if any(ip.version == net.version and ip in net for net in PRIVATE):
        return "a private address"
    if ip.is_reserved:
        return "a reserved address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "a site-local address"
    if ip.is_private or not ip.is_global:
        return "a special-purpose address, not publicly routable"
    return None


def address_refusal(ip: IPAddress, allow: Sequence[IPNetwork] = ()) -> str | None:
    """Why a connection to ``ip`` is refused, or ``None``."""
    if allowed_by(ip, allow):
        return None
    kind = _kind(ip)
    return None if kind is None else f"{ip} is {kind}, not in {ALLOW_SETTING}"


def addresses_refusal(
    host: str, addresses: Sequence[IPAddress], allow: Sequence[IPNetwork] = ()
) -> str | None:
    """Why ``host``, resolved to ``addresses``, is refused: no address at all, or any refused
    address (the connection could go to any answer), or ``None``."""
    if not addresses:
        return f"{host} has no address"
    for ip in addresses:
        if allowed_by(ip, allow) or (kind := _kind(ip)) is None:
            continue
        subject = f"{ip} is" if str(ip) == host else f"{host} resolves to {ip},"
        return f"{subject} {kind}, not in {ALLOW_SETTING}"
    return None


def url_refusal(url: str) -> str | None:
    """Why the URL itself is refused (scheme, credentials, no host), or ``None``. An address
    written in the URL is judged with the resolved addresses (``destination_refusal``)."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        return f"not a valid URL ({exc})"
    if parsed.scheme not in SCHEMES:
        return f"scheme {parsed.scheme!r} is not http or https"
    if parsed.userinfo:
        return "credentials in the URL are not accepted (the receiver checks the signature)"
    if not parsed.host:
        return "the URL has no host"
    return None


def host_and_port(url: str) -> tuple[str, int]:
    """The host (IPv6 without brackets) and port a URL that passed ``url_refusal`` connects to."""
    parsed = httpx.URL(url)
    return parsed.host, parsed.port or (443 if parsed.scheme == "https" else 80)


def destination_refusal(
    url: str, addresses: Sequence[IPAddress], allow: Sequence[IPNetwork] = ()
) -> str | None:
    """The whole decision for ``url`` whose host resolved to ``addresses``."""
    if (reason := url_refusal(url)) is not None:
        return reason
    host, _ = host_and_port(url)
    return addresses_refusal(host, addresses, allow)
