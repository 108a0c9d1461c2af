"""API keys, per-client rate limits (trusted proxies included) and CORS, on one guarded gateway."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from .conftest import Gateway, layout_body, new_id

KEYS = ("key-auth", "key-rate", "key-cors")
LIMIT = 3


@pytest.fixture(scope="module")
def guarded(start_gateway: Any, vlm: Any) -> Gateway:
    return start_gateway(  # type: ignore[no-any-return]
        HPS_VLM_URL=vlm.url, HPS_API_KEYS=",".join(KEYS), HPS_RATE_LIMIT=f"{LIMIT}/minute",
        HPS_TRUSTED_PROXIES="127.0.0.1", HPS_CORS_ORIGINS="https://app.example",
        HPS_FILTER_HEALTH_ACCESS_LOG="false")


def post(gateway: Gateway, headers: dict[str, str], client: httpx.Client | None = None) -> httpx.Response:
    url = f"{gateway.url}/layout-parsing"
    return (client or httpx).post(url, json=layout_body(new_id()), headers=headers)


def test_without_a_valid_key_it_is_401(guarded: Gateway) -> None:
    for headers in ({"x-forwarded-for": "198.51.100.10"},
                    {"x-forwarded-for": "198.51.100.11", "authorization": "Bearer wrong"},
                    {"x-forwarded-for": "198.51.100.12", "x-api-key": "wrong"}):
        response = post(guarded, headers)
        assert response.status_code == 401 and response.json()["errorCode"] == 401
        assert response.headers["www-authenticate"] == "Bearer"


def test_a_key_in_either_header_is_accepted(guarded: Gateway) -> None:
    assert post(guarded, {"authorization": f"Bearer {KEYS[0]}"}).status_code == 200
    assert post(guarded, {"x-api-key": KEYS[0]}).status_code == 200


def test_probes_docs_and_metrics_need_no_key_and_are_not_limited(guarded: Gateway) -> None:
    for _ in range(LIMIT + 2):
        for path in ("/health", "/health/ready", "/metrics", "/openapi.json"):
            answer = httpx.get(f"{guarded.url}{path}", headers={"x-request-id": "guarded-probe"})
            assert answer.status_code == 200
    # HPS_FILTER_HEALTH_ACCESS_LOG=false here: probes are logged like any request.
    assert '[guarded-probe] 127.0.0.1' in guarded.log() and '"GET /health HTTP/1.1" 200' in guarded.log()


def test_the_web_page_is_not_limited_and_spends_none_of_the_budget(guarded: Gateway) -> None:
    client = {"x-forwarded-for": "198.51.100.77"}
    for _ in range(LIMIT + 2):
        for path in ("/", "/ui/config", "/ui/assets/app.css", "/ui/assets/js/main.js"):
            assert httpx.get(f"{guarded.url}{path}", headers=client).status_code == 200, path
    first_call = post(guarded, client)
    assert first_call.status_code == 401 and first_call.headers["ratelimit-remaining"] == str(LIMIT - 1)


def test_a_key_is_limited_on_its_own_with_ratelimit_headers(guarded: Gateway) -> None:
    headers = {"authorization": f"Bearer {KEYS[1]}"}
    answers = [post(guarded, headers | {"x-forwarded-for": f"203.0.113.{i}"}) for i in range(LIMIT + 1)]
    assert [a.status_code for a in answers] == [200] * LIMIT + [429]  # the key, not the address, counts
    assert [a.headers["ratelimit-remaining"] for a in answers[:LIMIT]] == ["2", "1", "0"]
    refused = answers[-1]
    assert refused.json()["errorCode"] == 429
    assert refused.headers["ratelimit-limit"] == str(LIMIT) and refused.headers["ratelimit-remaining"] == "0"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert 0 <= int(refused.headers["ratelimit-reset"]) <= 60
    assert guarded.metric("gateway_rejections_total", reason="rate_limited") >= 1


def test_without_a_key_the_address_a_trusted_proxy_names_is_the_client(guarded: Gateway) -> None:
    proxied = {"x-forwarded-for": "192.0.2.50, 10.9.9.9"}  # rightmost untrusted hop: 10.9.9.9
    answers = [post(guarded, proxied) for _ in range(LIMIT + 1)]
    assert [a.status_code for a in answers] == [401] * LIMIT + [429]
    assert post(guarded, {"x-forwarded-for": "10.9.9.10"}).status_code == 401  # another client


def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(guarded: Gateway) -> None:
    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2")) as client:
        answers = [post(guarded, {"x-forwarded-for": f"192.0.2.{i}"}, client) for i in range(LIMIT + 1)]
    assert [a.status_code for a in answers] == [401] * LIMIT + [429]  # all counted as 127.0.0.2


def test_cors_preflight_and_exposed_headers(guarded: Gateway) -> None:
    origin = {"origin": "https://app.example"}
    preflight = httpx.options(f"{guarded.url}/layout-parsing", headers=origin | {
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization,content-type"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    response = post(guarded, origin | {"authorization": f"Bearer {KEYS[2]}"})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://app.example"
    exposed = response.headers["access-control-expose-headers"].lower()
    assert "x-request-id" in exposed and "retry-after" in exposed
    foreign = httpx.options(f"{guarded.url}/layout-parsing", headers={
        "origin": "https://evil.example", "access-control-request-method": "POST"})
    assert "access-control-allow-origin" not in foreign.headers
