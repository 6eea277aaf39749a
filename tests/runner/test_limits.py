"""Token buckets and backoff, on a virtual clock."""

from __future__ import annotations

import asyncio
import random

import pytest
from scipy import stats

from simsurvey.runner._limits import TokenBucket, backoff_delay, estimate_tokens


class VirtualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, s: float) -> None:
        self.now += s
        await asyncio.sleep(0)


def test_bucket_rate_and_burst():
    clock = VirtualClock()
    bucket = TokenBucket(600, burst_s=1.0, clock=clock, sleep=clock.sleep)  # 10/s, capacity 10

    async def go() -> list[float]:
        times = []
        for _ in range(50):
            await bucket.acquire()
            times.append(clock.now)
        return times

    times = asyncio.run(go())
    assert times[9] == 0.0  # the burst
    # then 10 per second: the 50th token (40 beyond the burst) at 4 s
    assert times[-1] == pytest.approx(4.0)
    assert all(b >= a for a, b in zip(times, times[1:]))


def test_bucket_concurrent_waiters_respect_the_rate():
    clock = VirtualClock()
    bucket = TokenBucket(120, clock=clock, sleep=clock.sleep)  # 2/s, capacity 2

    async def go() -> None:
        await asyncio.gather(*(bucket.acquire() for _ in range(22)))

    asyncio.run(go())
    assert clock.now == pytest.approx(10.0)  # 20 beyond the burst of 2, at 2/s


def test_bucket_adjust_charges_later_calls_and_clamps_large_amounts():
    clock = VirtualClock()
    bucket = TokenBucket(6000, burst_s=10.0, clock=clock, sleep=clock.sleep)  # 100 tokens/s, capacity 1000

    async def go() -> None:
        await bucket.acquire(100)  # estimate
        bucket.adjust(900)  # the call really used 1000: the bucket is now empty
        await bucket.acquire(500)
        await bucket.acquire(10**6)  # clamped to the capacity: does not block forever

    asyncio.run(go())
    assert clock.now == pytest.approx(5.0 + 10.0)


def test_backoff_full_jitter_bounds_and_distribution():
    rng = random.Random(0)
    draws = [backoff_delay(3, base=0.5, cap=30, rng=rng) for _ in range(4000)]
    assert min(draws) >= 0 and max(draws) <= 4.0
    # full jitter: uniform on [0, min(cap, base * 2**attempt)] = [0, 4]
    assert stats.kstest(draws, stats.uniform(0, 4).cdf).pvalue > 0.01
    capped = [backoff_delay(10, base=0.5, cap=30, rng=rng) for _ in range(500)]
    assert max(capped) <= 30 and max(capped) > 25


def test_backoff_honours_retry_after_even_above_the_cap():
    assert backoff_delay(0, base=0.5, cap=30, rng=random.Random(1), retry_after=2.5) == 2.5
    assert backoff_delay(5, base=0.5, cap=1, rng=random.Random(1), retry_after=60) == 60


def test_estimate_tokens():
    msgs = ({"role": "system", "content": "x" * 400}, {"role": "user", "content": "y" * 40})
    assert estimate_tokens(msgs, 16) == 110 + 8 + 16
