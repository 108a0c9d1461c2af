"""A short soak: two minutes of mixed traffic (`devkit.soak`) on the real stack, then nothing may have grown
between a quiet sample after the warm-up and a quiet sample at the end, and nothing may be kept past its
retention. Looser bounds than `python -m bench.soak`'s targets: two minutes on a shared machine, and documents
of at most 5 pages, so that the warm-up has seen the largest requests many times over (a first 30-page
visualised answer raises the high-water mark of every tier, which is no leak)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from devkit.soak import TIERS, Sample, Traffic, growth, sample
from devkit.stack import running_stack

pytestmark = pytest.mark.slow

RETENTION = 20       # seconds: jobs and images expire several times over during the soak
SWEEP = 40           # seconds: a sweep every retention/4 at most, and what a busy machine adds


def test_two_minutes_of_mixed_traffic_leave_nothing_behind(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {"HPS_JOB_DATA_DIR": str(data), "HPS_JOB_RETENTION": str(RETENTION), "HPS_RETURN_IMG_URLS": "true",
           "HPS_MAX_CONCURRENT_REQUESTS": "4", "HPS_MAX_QUEUED_REQUESTS": "8"}
    synthetic = ["--service-time", "0.05", "--parallel", "16"]
    with running_stack(tmp_path / "logs", recogniser="synthetic", recogniser_args=synthetic, workers=2,
                       gateway_env=env) as stack:
        traffic = Traffic(stack.url, burst=24, largest=5)
        started = time.monotonic()

        def quiet() -> Sample:
            assert stack.slots_free(120)
            time.sleep(3)
            return sample(stack, started, data)

        asyncio.run(traffic.run(40))
        before = quiet()
        asyncio.run(traffic.run(80))
        after = quiet()
    assert traffic.failures == [], traffic.failures[:10]
    kinds = {kind.split(" ")[0] for kind in traffic.outcomes}
    assert {"sync", "job", "bad", "gave", "burst"} <= kinds, traffic.outcomes
    assert traffic.outcomes["burst 503"] > 0   # the bursts went past the admission totals
    grown = growth(before, after)
    for tier in TIERS:
        assert grown[f"{tier} rss"] < 0.25, grown
        assert grown[f"{tier} fds"] <= 8 and grown[f"{tier} threads"] <= 16, grown
    assert grown["shm regions"] <= 0 and grown["run files"] <= 0, grown
    assert after.oldest <= RETENTION + SWEEP, after
