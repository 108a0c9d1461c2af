"""What the job tests share: the stores (a test that asks for `store` runs once on SQLite and once on a real
Redis), and the settings of the real stacks they start."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from devkit.redis import redis_server
from jobs.store import JobStore, open_store


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[JobStore]:
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        redis.Redis.from_url(url).flushdb()
        opened = open_store(url, str(tmp_path))
    else:
        opened = open_store("", str(tmp_path))
    yield opened
    await opened.close()


# --- the real stack with the Job API ------------------------------------------------------------------------

KEY = "job-test-key"


def job_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """Gateway settings for the job tests: API keys on, quick polls, the data in `data_dir`."""
    return {"HPS_API_KEYS": KEY, "HPS_JOB_DATA_DIR": str(data_dir), "HPS_JOB_POLL": "0.1",
            "HPS_JOB_LEASE": "3", **extra}


def synthetic(service_time: float, parallel: int = 64) -> dict[str, Any]:
    return {"recogniser": "synthetic",
            "recogniser_args": ["--service-time", str(service_time), "--parallel", str(parallel)]}
