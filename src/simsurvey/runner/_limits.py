"""Rate limits and retry backoff for the runner.

Token buckets for requests-per-minute and tokens-per-minute: a call takes its estimated
tokens before it is sent, and the estimate is corrected from the reported usage after it
returns (the bucket may go negative, which delays later calls). Retry waits use exponential
backoff with full jitter (AWS architecture blog, "Exponential Backoff And Jitter", 2015),
unless the server said how long to wait (``Retry-After``), which is honoured as given.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable


class TokenBucket:
    """An async token bucket refilled at ``per_minute / 60`` tokens per second.

    Args:
        per_minute: Refill rate (requests or tokens per minute).
        burst_s: Capacity in seconds of refill (the largest burst after an idle period).
        clock: Monotonic clock (injectable for tests).
        sleep: Async sleep (injectable for tests).
    """

    def __init__(
        self,
        per_minute: float,
        *,
        burst_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be > 0")
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * burst_s)
        self._tokens = self.capacity
        self._clock = clock
        self._sleep = sleep
        self._last = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now

    async def acquire(self, amount: float = 1.0) -> None:
        """Wait until ``amount`` tokens are available and take them (FIFO among waiters).

        An amount larger than the capacity is clamped to it, so one huge prompt cannot block
        forever; its full size is still charged through :meth:`adjust`.
        """
        amount = min(amount, self.capacity)
        async with self._lock:
            while True:
                self._refill()
                # The tolerance stops float round-off from spinning on ever tinier sleeps.
                if self._tokens >= amount - 1e-9:
                    self._tokens -= amount
                    return
                await self._sleep((amount - self._tokens) / self.rate)

    def adjust(self, delta: float) -> None:
        """Charge (``delta > 0``) or refund (``delta < 0``) tokens after the fact."""
        self._refill()
        self._tokens = min(self.capacity, self._tokens - delta)


def backoff_delay(
    attempt: int, *, base: float, cap: float, rng: random.Random, retry_after: float | None = None
) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based).

    Args:
        attempt: How many retries were already made.
        base: Backoff base in seconds.
        cap: Largest jittered wait.
        rng: Seeded random source (``random.Random(seed)``).
        retry_after: The server's ``Retry-After``; honoured as given when present.
    """
    if retry_after is not None:
        return max(0.0, retry_after)
    return rng.uniform(0.0, min(cap, base * 2.0**attempt))


def estimate_tokens(messages: tuple[dict[str, str], ...], max_tokens: int) -> int:
    """Rough token count of a call before it is made: ~4 characters per token, plus the output cap."""
    chars = sum(len(m.get("content") or "") for m in messages)
    return chars // 4 + 4 * len(messages) + max_tokens
