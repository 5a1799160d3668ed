"""Which outbound URLs the scheduler may contact (a render's audio_url, webhooks).

http(s) only, and never a host that resolves to a private, loopback, link-local,
reserved, shared or multicast address, unless the configuration allows it:
`Limits.allow_private_urls` (everything) or `Limits.url_allowlist` (host names, IPs,
CIDRs). The check runs when a URL is accepted and again when it is contacted, through
`connector()`, whose resolver refuses the same addresses, so a name that re-resolves
to a private address between the check and the connection is still refused.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from aiohttp.resolver import ThreadedResolver

from farm.config import Limits
from farm.errors import InvalidInput

MAX_URL_CHARS = 2048

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    host: str
    port: int


class UrlRefused(OSError):
    """Raised by the resolver of `connector()`: aiohttp reports it as a connection error."""


def parse_url(url: str, field: str) -> Target:
    """Syntax only: an http(s) URL with a host, within MAX_URL_CHARS."""
    if len(url) > MAX_URL_CHARS:
        raise InvalidInput(f"{field} has {len(url)} characters; the limit is {MAX_URL_CHARS}",
                           code="url_too_long")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidInput(f"{field} is not a valid URL: {url[:200]!r}", code="invalid_url") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"{field} must be an http(s) URL, got {url[:200]!r}", code="invalid_url")
    return Target(url=url, scheme=parts.scheme, host=parts.hostname,
                  port=port or (443 if parts.scheme == "https" else 80))


def is_public(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is loopback (Python 3.11 says otherwise)
    return ip.is_global and not (ip.is_private or ip.is_loopback or ip.is_link_local
                                 or ip.is_reserved or ip.is_multicast or ip.is_unspecified)


@functools.cache
def _allowlist(entries: tuple[str, ...]) -> tuple[frozenset[str], tuple]:
    names, networks = set(), []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            if "/" in entry:
                raise InvalidInput(f"url allow-list entry {entry!r} is not a valid CIDR",
                                   code="invalid_config") from None
            names.add(entry.lower().rstrip("."))
    return frozenset(names), tuple(networks)


def allowed(host: str, ip: IPAddress, limits: Limits) -> bool:
    """May the scheduler connect to `ip`, which `host` resolved to?"""
    if limits.allow_private_urls or is_public(ip):
        return True
    names, networks = _allowlist(limits.url_allowlist)
    return host.lower().rstrip(".") in names or any(ip in net for net in networks)


async def check_host(host: str, port: int, limits: Limits, field: str,
                     unresolvable_code: str = "url_unresolvable") -> None:
    """Resolve `host`; refuse it (400 url_not_allowed) if any address it has is not allowed."""
    if limits.allow_private_urls:
        return
    try:
        addresses = [ipaddress.ip_address(host.split("%")[0])]  # a literal: nothing to resolve
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            raise InvalidInput(f"{field} host {host!r} does not resolve", code=unresolvable_code) from None
        addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    for ip in addresses:
        if not allowed(host, ip, limits):
            raise InvalidInput(f"{field} host {host!r} resolves to a private or reserved address; "
                               "the farm does not contact those", code="url_not_allowed")


async def check_url(url: str, limits: Limits, field: str,
                    unresolvable_code: str = "url_unresolvable") -> Target:
    """Parse `url` and check where its host resolves; the parsed target."""
    target = parse_url(url, field)
    await check_host(target.host, target.port, limits, field, unresolvable_code)
    return target


class GuardedResolver(ThreadedResolver):
    """aiohttp's resolver, refusing the addresses `allowed` refuses."""

    def __init__(self, limits: Limits) -> None:
        super().__init__()
        self.limits = limits

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET):
        hosts = await super().resolve(host, port, family)
        for h in hosts:
            if not allowed(host, ipaddress.ip_address(h["host"].split("%")[0]), self.limits):
                raise UrlRefused(f"{host!r} resolves to a private or reserved address")
        return hosts


def connector(limits: Limits) -> aiohttp.TCPConnector:
    """A connector whose every connection is checked (no DNS cache: names can change)."""
    return aiohttp.TCPConnector(resolver=GuardedResolver(limits), use_dns_cache=False)


def refused(exc: BaseException) -> bool:
    """Did this connection error come from the resolver's refusal?"""
    for _ in range(8):  # a short chain: ClientConnectorDNSError -> UrlRefused
        if exc is None or isinstance(exc, UrlRefused):
            return exc is not None
        exc = exc.__cause__ or getattr(exc, "os_error", None)
    return False
