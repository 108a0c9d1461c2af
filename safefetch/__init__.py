"""Fetching a file by URL for a client, hop by hop, with the guard against server-side request forgery.

The engine fetches `/layout-parsing`'s `file` URLs with it, and the Job API its `fileUrl`s: one module for a
security review to read. It needs only httpx.

Each host is resolved and refused if any of its addresses is not public (unless `allow_private`). A DNS answer
that changes after the check cannot reach an internal service: plain http connects to the checked address
itself, and https verifies the host name's certificate before any request is sent. The body is capped at
`max_bytes` and the whole fetch at `timeout`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

import httpx

MAX_REDIRECTS = 5


class FetchError(Exception):
    """The file could not be fetched; the message says why, in words a client can act on."""


@dataclass(frozen=True)
class FetchLimits:
    timeout: float = 30.0            # seconds for the whole fetch, redirects included
    max_bytes: int = 50 * 1024 * 1024
    allow_private: bool = False      # private, loopback and link-local addresses (tests, trusted networks)


async def fetch_url(url: str, limits: FetchLimits, *, http: httpx.AsyncClient | None = None) -> bytes:
    """GET `url` with redirects followed by hand (each hop checked), under one overall deadline and with the
    body capped at `limits.max_bytes`; `FetchError` when it cannot be had."""
    client = http or httpx.AsyncClient(timeout=limits.timeout, follow_redirects=False)
    try:
        return await asyncio.wait_for(_fetch(client, url, limits), limits.timeout)
    except (TimeoutError, httpx.TimeoutException):
        raise FetchError(f"fetching the file timed out after {limits.timeout:g} s") from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise FetchError(f"fetching the file failed: {type(exc).__name__}: {exc}") from None
    finally:
        if http is None:
            await client.aclose()


async def _fetch(client: httpx.AsyncClient, url: str, limits: FetchLimits) -> bytes:
    target = _parse_url(url)
    for _ in range(MAX_REDIRECTS + 1):
        request_url, headers = await _pin(target, limits)
        async with client.stream("GET", request_url, headers=headers, follow_redirects=False,
                                 timeout=limits.timeout) as response:
            if response.has_redirect_location:
                target = _parse_url(str(target.join(response.headers["location"])))
                continue
            if not response.is_success:
                raise FetchError(f"fetching the file failed: {target.host} answered HTTP "
                                        f"{response.status_code} {response.reason_phrase}".rstrip())
            return await _read_capped(response, limits.max_bytes)
    raise FetchError(f"fetching the file failed: more than {MAX_REDIRECTS} redirects")


def _parse_url(url: str) -> httpx.URL:
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise FetchError("only http(s) URLs with a host name or address can be fetched")
    return parsed


async def _pin(url: httpx.URL, limits: FetchLimits) -> tuple[httpx.URL, dict[str, str]]:
    """The URL to request and its extra headers, after checking every address of its host. Plain http
    goes to the checked address, with the host name in the Host header."""
    if limits.allow_private:
        return url, {}
    host = url.raw_host.decode("ascii")
    addresses = await _resolve(host, url.port or (443 if url.scheme == "https" else 80))
    refused = [a for a in addresses if not _is_public(a)]
    if refused:
        raise FetchError(f"URL host {url.host} resolves to the non-public address {refused[0]}; "
                                "only public addresses may be fetched")
    if url.scheme == "https" or _is_ip_literal(host):
        return url, {}
    return url.copy_with(host=str(addresses[0])), {"Host": url.netloc.decode("ascii")}


async def _resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    if _is_ip_literal(host):
        return [ipaddress.ip_address(host)]
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(f"URL host {host} cannot be resolved ({exc})") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    if not addresses:
        raise FetchError(f"URL host {host} has no addresses")
    return addresses


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            return _is_public(embedded)
    return address.is_global and not (
        address.is_loopback or address.is_private or address.is_link_local or address.is_multicast
        or address.is_reserved or address.is_unspecified)


async def _read_capped(response: httpx.Response, limit: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise FetchError(f"the file at the URL is {declared} bytes, over the limit of {limit} bytes")
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > limit:
            raise FetchError(f"the file at the URL is over the limit of {limit} bytes")
    return bytes(body)
