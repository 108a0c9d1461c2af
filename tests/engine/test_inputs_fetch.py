"""Files fetched by URL: by host name, redirects checked hop by hop, size and time caps, and the guard that
keeps the server from being sent to private addresses."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import httpx
import numpy as np
import pytest
import respx

from devkit.documents import encode_image
from docengine.errors import InvalidInputError
from docengine.inputs import load_document

from .conftest import PUBLIC_IP, SETTINGS, make_settings, request

# --- URLs -------------------------------------------------------------------------------------------------


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Public names cannot be resolved offline: answer for *.test names, leave the rest (localhost) real."""
    records: dict[str, list[str]] = {"docs.example.test": [PUBLIC_IP]}
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        if isinstance(host, str) and host.endswith(".test"):
            if host not in records:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return [(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))
                    for ip in records[host]]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return records


@respx.mock
async def test_url_fetch_by_host_name(http: httpx.AsyncClient, fake_dns: dict, pdf3: bytes) -> None:
    # plain http connects to the checked address and names the host in the Host header
    route = respx.get(f"http://{PUBLIC_IP}/files/report.pdf").respond(200, content=pdf3)
    doc = await load_document(request("http://docs.example.test/files/report.pdf"), SETTINGS, http=http)
    assert doc.data_info["numPages"] == 3
    assert route.calls.last.request.headers["host"] == "docs.example.test"
    # https keeps the name, so that its certificate is verified
    respx.get("https://docs.example.test/files/report.pdf").respond(200, content=pdf3)
    doc = await load_document(request("https://docs.example.test/files/report.pdf"), SETTINGS, http=http)
    assert doc.data_info["numPages"] == 3


@respx.mock
async def test_url_fetch_with_its_own_client(page_rgb: np.ndarray) -> None:
    respx.get(f"https://{PUBLIC_IP}/scan").respond(200, content=encode_image(page_rgb, "PNG"))
    doc = await load_document(request(f"https://{PUBLIC_IP}/scan"), SETTINGS)
    assert doc.data_info["type"] == "image" and np.array_equal(doc.pages[0], page_rgb)


@respx.mock
async def test_redirects_are_checked_hop_by_hop(http: httpx.AsyncClient, page_rgb: np.ndarray) -> None:
    respx.get(f"http://{PUBLIC_IP}/a").respond(302, headers={"Location": "/b.png"})
    respx.get(f"http://{PUBLIC_IP}/b.png").respond(200, content=encode_image(page_rgb, "PNG"))
    doc = await load_document(request(f"http://{PUBLIC_IP}/a"), SETTINGS, http=http)
    assert doc.pages[0].shape == page_rgb.shape

    respx.get(f"http://{PUBLIC_IP}/evil").respond(302, headers={"Location": "http://127.0.0.1:8118/v1/models"})
    internal = respx.get("http://127.0.0.1:8118/v1/models").respond(200, content=b"%PDF-")
    with pytest.raises(InvalidInputError, match="non-public address 127.0.0.1"):
        await load_document(request(f"http://{PUBLIC_IP}/evil"), SETTINGS, http=http)
    assert not internal.called

    respx.get(f"http://{PUBLIC_IP}/file").respond(301, headers={"Location": "file:///etc/passwd"})
    with pytest.raises(InvalidInputError, match="only http"):
        await load_document(request(f"http://{PUBLIC_IP}/file"), SETTINGS, http=http)

    loop = respx.get(f"http://{PUBLIC_IP}/loop").respond(302, headers={"Location": "/loop"})
    with pytest.raises(InvalidInputError, match="more than 5 redirects"):
        await load_document(request(f"http://{PUBLIC_IP}/loop"), SETTINGS, http=http)
    assert loop.call_count == 6


@respx.mock
async def test_url_size_cap(http: httpx.AsyncClient) -> None:
    settings = make_settings(max_file_bytes=1000)
    respx.get(f"http://{PUBLIC_IP}/declared.pdf").respond(200, content=b"%PDF-" + b"0" * 2000)
    with pytest.raises(InvalidInputError, match="2005 bytes, over the limit of 1000"):
        await load_document(request(f"http://{PUBLIC_IP}/declared.pdf"), settings, http=http)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b"0" * 100

    respx.get(f"http://{PUBLIC_IP}/streamed.pdf").mock(
        side_effect=lambda _: httpx.Response(200, content=chunks()))   # no Content-Length
    with pytest.raises(InvalidInputError, match="over the limit of 1000 bytes"):
        await load_document(request(f"http://{PUBLIC_IP}/streamed.pdf"), settings, http=http)


@respx.mock
async def test_url_http_error_names_the_status(http: httpx.AsyncClient) -> None:
    respx.get(f"http://{PUBLIC_IP}/missing.pdf").respond(404)
    with pytest.raises(InvalidInputError, match="HTTP 404 Not Found"):
        await load_document(request(f"http://{PUBLIC_IP}/missing.pdf"), SETTINGS, http=http)


@respx.mock
async def test_url_timeouts(http: httpx.AsyncClient) -> None:
    respx.get(f"http://{PUBLIC_IP}/slow-connect").mock(side_effect=httpx.ConnectTimeout("timed out"))
    with pytest.raises(InvalidInputError, match="timed out after 5 s"):
        await load_document(request(f"http://{PUBLIC_IP}/slow-connect"), SETTINGS, http=http)

    async def drip() -> AsyncIterator[bytes]:
        while True:                      # each chunk in time, the whole body never
            await asyncio.sleep(0.05)
            yield b"0"

    respx.get(f"http://{PUBLIC_IP}/drip").mock(side_effect=lambda _: httpx.Response(200, content=drip()))
    started = time.perf_counter()
    with pytest.raises(InvalidInputError, match="timed out after 0.3 s"):
        await load_document(request(f"http://{PUBLIC_IP}/drip"), make_settings(url_fetch_timeout=0.3),
                            http=http)
    assert time.perf_counter() - started < 2


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/a.pdf",
    "http://10.1.2.3/a.pdf",
    "http://192.168.0.10/a.pdf",
    "http://169.254.169.254/latest/meta-data",
    "http://0.0.0.0/a.pdf",
    "http://224.0.0.1/a.pdf",
    "http://[::1]/a.pdf",
    "http://[fe80::1]/a.pdf",
    "http://[::ffff:127.0.0.1]/a.pdf",
    "http://[::ffff:10.0.0.1]/a.pdf",
    "http://localhost:8080/a.pdf",
])
@respx.mock
async def test_private_addresses_are_refused(http: httpx.AsyncClient, url: str) -> None:
    with pytest.raises(InvalidInputError, match="non-public address"):
        await load_document(request(url), SETTINGS, http=http)
    assert not respx.calls


@respx.mock
async def test_host_name_with_any_private_address_is_refused(http: httpx.AsyncClient, fake_dns: dict) -> None:
    fake_dns["mixed.example.test"] = [PUBLIC_IP, "10.0.0.7"]
    with pytest.raises(InvalidInputError, match="non-public address 10.0.0.7"):
        await load_document(request("http://mixed.example.test/a.pdf"), SETTINGS, http=http)
    with pytest.raises(InvalidInputError, match="cannot be resolved"):
        await load_document(request("http://nowhere.example.test/a.pdf"), SETTINGS, http=http)
    assert not respx.calls


@respx.mock
async def test_allow_private_urls(http: httpx.AsyncClient, page_rgb: np.ndarray) -> None:
    settings = make_settings(allow_private_urls=True)
    png = encode_image(page_rgb, "PNG")
    respx.get("http://127.0.0.1:9000/scan.png").respond(200, content=png)
    respx.get("http://localhost:9000/scan.png").respond(200, content=png)
    for url in ("http://127.0.0.1:9000/scan.png", "http://localhost:9000/scan.png"):
        doc = await load_document(request(url), settings, http=http)
        assert np.array_equal(doc.pages[0], page_rgb)
