"""The circuit breaker of a store family (a store and its namespaces): stops calls of stores with
``on_error="miss"`` from trying a database that cannot be reached.

After ``FAILURES_TO_OPEN`` calls in a row failed to reach the database, the breaker opens: calls of
``"miss"`` stores answer at once (a miss, nothing written), with no connection attempt, for a back-off
of ``BACKOFF_FIRST`` seconds. Then one call is let through as a probe (half-open); the others keep
missing while it runs. A probe that fails opens the breaker again for twice as long, up to
``BACKOFF_MAX``; any call that succeeds (a probe, or a call of an ``on_error="raise"`` store, which
the breaker never holds back) closes it. A probe that never reports (cancelled) is replaced by
another one after the back-off. Thread-safe: one breaker may see calls from several event loops.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ("BACKOFF_FIRST", "BACKOFF_MAX", "FAILURES_TO_OPEN", "Breaker")

FAILURES_TO_OPEN = 3
"""Calls in a row that failed to reach the database before the breaker opens."""
BACKOFF_FIRST = 1.0
"""Seconds the breaker stays open the first time."""
BACKOFF_MAX = 30.0
"""Seconds the breaker stays open at most (the back-off doubles after each failed probe)."""


class Breaker:
    """Consecutive failures to reach the database, and until when calls should not try."""

    __slots__ = ("backoff", "clock", "failures", "lock", "open_until", "probing")

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        self.failures = 0  # calls in a row that could not reach the database
        self.open_until: float | None = None  # None: closed
        self.backoff = BACKOFF_FIRST
        self.probing = False  # a probe was let through and has not reported

    @property
    def is_open(self) -> bool:
        """Whether calls that may miss are held back now (open, or half-open with a probe out)."""
        open_until = self.open_until
        return open_until is not None and (self.probing or self.clock() < open_until)

    def allow(self) -> bool:
        """Whether a call that may miss should try the database; ``False``: answer it as a miss."""
        if self.open_until is None:  # closed: the common case, no lock
            return True
        with self.lock:
            open_until = self.open_until
            if open_until is None:
                return True
            now = self.clock()
            if now < open_until:
                return False
            # half-open: this call is the probe; the next one only after another back-off
            self.probing = True
            self.open_until = now + self.backoff
            return True

    def failed(self) -> bool:
        """Record a call that could not reach the database; whether the breaker opened (again)."""
        with self.lock:
            self.failures += 1
            if self.open_until is None:
                if self.failures < FAILURES_TO_OPEN:
                    return False
                self.backoff = BACKOFF_FIRST
            elif self.probing:
                self.backoff = min(self.backoff * 2, BACKOFF_MAX)
            else:  # a call that started before the breaker opened: already counted as down
                return False
            self.probing = False
            self.open_until = self.clock() + self.backoff
            return True

    def succeeded(self) -> bool:
        """Record a call that reached the database; whether that closed an open breaker."""
        if not self.failures:  # the common case, no lock
            return False
        with self.lock:
            was_open = self.open_until is not None
            self.failures = 0
            self.open_until = None
            self.probing = False
            self.backoff = BACKOFF_FIRST
            return was_open
