"""Several replicas of each tier on one machine, as Kubernetes runs them on several (real processes):

- two gateways sharing one real Redis count a client's rate limit together: the (N+1)-th request is refused
  whichever gateway takes it, while another client still gets through;
- two Triton + recogniser pairs behind one gateway: requests and recognition calls are spread over both;
  once one pair is killed, requests still succeed on the other and readiness names what is down.
(That a gateway killed mid-job loses no accepted job is tests/jobs/test_resilience.py.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from devkit.documents import b64, sample_pdf
from devkit.redis import redis_server
from devkit.replicas import gateway_replica, triton_pairs
from devkit.stack import eventually

pytestmark = pytest.mark.slow

LIMIT = 4
KEYS = ("client-one-key", "client-two-key")
RESTRUCTURE = {"pages": [{"prunedResult": {"width": 100, "height": 100, "parsing_res_list": []},
                          "markdownImages": {}}]}


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


def restructure(url: str, key: str) -> httpx.Response:
    return httpx.post(f"{url}/restructure-pages", json=RESTRUCTURE, headers={"X-API-Key": key}, timeout=60)


@pytest.mark.parametrize("last", [0, 1], ids=["refused-on-a", "refused-on-b"])
def test_a_clients_rate_limit_holds_across_two_gateways_on_one_redis(tmp_path: Path, redis_url: str,
                                                                     last: int) -> None:
    keys = tmp_path / "api-keys"   # as a mounted Secret
    keys.write_text("\n".join(KEYS) + "\n")
    redis.Redis.from_url(redis_url).flushdb()   # no counts of the other run
    # A client's window starts at its first request and lasts an hour: none ends during the test.
    env = {"HPS_RATE_LIMIT": f"{LIMIT}/hour", "HPS_RATE_LIMIT_STORAGE": redis_url,
           "HPS_API_KEYS_FILE": str(keys), "HPS_JOB_ENABLED": "false"}
    with triton_pairs(1, tmp_path / "logs") as (pair,), \
            gateway_replica(pair.triton_grpc, pair.vlm_url, env, tmp_path / "a.log") as (a, _), \
            gateway_replica(pair.triton_grpc, pair.vlm_url, env, tmp_path / "b.log") as (b, _):
        gateways = [a, b]
        for n in range(LIMIT):   # the client's N requests, alternating between the replicas
            answer = restructure(gateways[n % 2], KEYS[0])
            assert answer.status_code == 200, answer.text
            assert answer.headers["RateLimit-Remaining"] == str(LIMIT - 1 - n)   # one count for both
        refused = restructure(gateways[last], KEYS[0])
        assert refused.status_code == 429
        assert refused.json()["errorCode"] == 429 and int(refused.headers["Retry-After"]) > 0
        assert restructure(gateways[1 - last], KEYS[0]).status_code == 429   # and on the other one
        other = restructure(gateways[last], KEYS[1])   # another client has its own count
        assert other.status_code == 200 and other.headers["RateLimit-Remaining"] == str(LIMIT - 1)


async def parse_many(url: str, body: dict, count: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=120) as client:
        return list(await asyncio.gather(*(client.post(f"{url}/layout-parsing", json=body)
                                           for _ in range(count))))


def test_two_triton_pairs_share_the_work_and_one_left_still_serves(tmp_path: Path) -> None:
    # Every block recognised (not read from the PDF's text layer): a page's blocks go out together, so each
    # engine has several calls in flight at once, and the second goes to the other recogniser.
    body = {"file": b64(sample_pdf(2)[0]), "fileType": 0, "visualize": False, "textSource": "vlm"}
    args = ["--service-time", "0.2", "--parallel", "4"]
    with triton_pairs(2, tmp_path / "logs", recogniser_args=args) as pairs:
        tritons = ",".join(p.triton_grpc for p in pairs)
        vlms = ",".join(p.vlm_url for p in pairs)
        env = {"HPS_HEALTH_CHECK_TIMEOUT": "2", "HPS_JOB_ENABLED": "false"}
        with gateway_replica(tritons, vlms, env, tmp_path / "gateway.log") as (url, _):
            answers = asyncio.run(parse_many(url, body, 6))
            assert [a.status_code for a in answers] == [200] * 6, [a.text[:300] for a in answers]
            assert all(p.inferences("layout-parsing") > 0 for p in pairs)   # requests went to both Tritons
            assert all(p.served() > 0 for p in pairs)   # and recognition calls to both recognisers
            assert httpx.get(f"{url}/health/ready", timeout=10).json()["errorMsg"] == "Ready"

            gone = pairs[1]
            gone.kill()
            answers = asyncio.run(parse_many(url, body, 4))
            assert [a.status_code for a in answers] == [200] * 4, [a.text[:300] for a in answers]
            assert all(len(a.json()["result"]["layoutParsingResults"]) == 2 for a in answers)

            def degraded() -> str:
                ready = httpx.get(f"{url}/health/ready", timeout=10)
                message: str = ready.json()["errorMsg"]
                return message if ready.status_code == 200 and message.startswith("Ready, degraded") else ""

            message = eventually(degraded, 10)
            assert message, "readiness did not report the lost pair"
            assert f"Triton server at {gone.triton_grpc}" in message
            assert f"VLM server {gone.vlm_url}" in message
            assert pairs[0].triton_grpc not in message and pairs[0].vlm_url not in message
