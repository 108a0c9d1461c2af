"""Fetching a file by URL, hop by hop, with the guard against server-side request forgery.

Each host is resolved and refused if any of its addresses is not public (unless `allow_private_urls`). A DNS
answer that changes after the check cannot reach an internal service: plain http connects to the checked
address itself, and https verifies the host name's certificate before any request is sent. The body is capped
at `max_file_bytes` and the whole fetch at `url_fetch_timeout`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import httpx

from docengine.errors import InvalidInputError
from docengine.settings import EngineSettings

MAX_REDIRECTS = 5


async def fetch_url(url: str, settings: EngineSettings, *, http: httpx.AsyncClient | None = None) -> bytes:
    """GET `url` with redirects followed by hand (each hop checked), under one overall deadline and with the
    body capped at `max_file_bytes`."""
    client = http or httpx.AsyncClient(timeout=settings.url_fetch_timeout, follow_redirects=False)
    try:
        return await asyncio.wait_for(_fetch(client, url, settings), settings.url_fetch_timeout)
    except (TimeoutError, httpx.TimeoutException):
        raise InvalidInputError(
            f"fetching the file timed out after {settings.url_fetch_timeout:g} s") from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise InvalidInputError(f"fetching the file failed: {type(exc).__name__}: {exc}") from None
    finally:
        if http is None:
            await client.aclose()


async def _fetch(client: httpx.AsyncClient, url: str, settings: EngineSettings) -> bytes:
    target = _parse_url(url)
    for _ in range(MAX_REDIRECTS + 1):
        request_url, headers = await _pin(target, settings)
        async with client.stream("GET", request_url, headers=headers, follow_redirects=False,
                                 timeout=settings.url_fetch_timeout) as response:
            if response.has_redirect_location:
                target = _parse_url(str(target.join(response.headers["location"])))
                continue
            if not response.is_success:
                raise InvalidInputError(f"fetching the file failed: {target.host} answered HTTP "
                                        f"{response.status_code} {response.reason_phrase}".rstrip())
            return await _read_capped(response, settings.max_file_bytes)
    raise InvalidInputError(f"fetching the file failed: more than {MAX_REDIRECTS} redirects")


def _parse_url(url: str) -> httpx.URL:
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InvalidInputError("only http(s) URLs with a host name or address can be fetched")
    return parsed


async def _pin(url: httpx.URL, settings: EngineSettings) -> tuple[httpx.URL, dict[str, str]]:
    """The URL to request and its extra headers, after checking every address of its host. Plain http
    goes to the checked address, with the host name in the Host header."""
    if settings.allow_private_urls:
        return url, {}
    host = url.raw_host.decode("ascii")
    addresses = await _resolve(host, url.port or (443 if url.scheme == "https" else 80))
    refused = [a for a in addresses if not _is_public(a)]
    if refused:
        raise InvalidInputError(f"URL host {url.host} resolves to the non-public address {refused[0]}; "
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
        raise InvalidInputError(f"URL host {host} cannot be resolved ({exc})") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    if not addresses:
        raise InvalidInputError(f"URL host {host} has no addresses")
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
        raise InvalidInputError(f"the file at the URL is {declared} bytes, over the limit of {limit} bytes")
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > limit:
            raise InvalidInputError(f"the file at the URL is over the limit of {limit} bytes")
    return bytes(body)
