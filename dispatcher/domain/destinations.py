"""Where a tenant's webhook may be delivered: public addresses only, unless allow-listed, so
that a webhook_url cannot reach the service's own network (loopback, metadata, private)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from urllib.parse import urlsplit

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

SCHEMES = frozenset({"http", "https"})


def allowed(address: str, networks: Sequence[Network] = ()) -> bool:
    """Whether a webhook may be sent to `address` (an IP, as a resolver returns it): one in
    `networks`, else a global unicast one (`is_global` refuses loopback, link-local, private,
    unique-local, CGNAT, 0.0.0.0, ::, broadcast and the other reserved ranges)."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1: the kernel connects it over IPv4
    if any(ip in network for network in networks):
        return True
    return ip.is_global and not ip.is_multicast


def url_problem(url: str, networks: Sequence[Network] = ()) -> str | None:
    """Why `url` cannot be a webhook URL, if it cannot: not http(s), no host, or a host that is
    a refused address (a name is checked at delivery, on each address it resolves to)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a port that is not a number)
    except ValueError:
        return "is not a valid URL"
    if parts.scheme.lower() not in SCHEMES or not parts.hostname:
        return "must be an http:// or https:// URL with a host"
    if _is_ip(parts.hostname) and not allowed(parts.hostname, networks):
        return f"{parts.hostname} is not a public address"
    return None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def destination(url: str) -> str:
    """host:port of `url`: what a refused delivery logs (never the path, query or userinfo),
    and what one circuit breaker guards."""
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError:  # not a number: url_problem refuses such a URL
        port = 0
    host = parts.hostname or ""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
