"""Slowing and then refusing repeated failed logins from one address (no key guessing at line speed)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class LoginThrottle:
    """Per address: each failure is answered later than the one before (`delay` × failures so far,
    at most 5 × `delay`); `max_failures` within `lockout` seconds refuse the address for `lockout`
    seconds. Thread-safe: the gateway serves each connection in its own thread."""

    def __init__(self, delay: float, max_failures: int, lockout: float, clock: Callable[[], float] = time.monotonic):
        self.delay, self.max_failures, self.lockout, self.clock = delay, max_failures, lockout, clock
        self._failures: dict[str, deque[float]] = {}
        self._refused_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def refused_for(self, address: str) -> float:
        """Seconds the address is still refused (0: it may try)."""
        with self._lock:
            left = self._refused_until.get(address, 0.0) - self.clock()
            if left <= 0:
                self._refused_until.pop(address, None)
                return 0.0
            return left

    def failed(self, address: str) -> float:
        """Record a failure; returns how long to wait before answering it."""
        now = self.clock()
        with self._lock:
            recent = self._failures.setdefault(address, deque())
            recent.append(now)
            while recent and recent[0] <= now - self.lockout:
                recent.popleft()
            if len(recent) >= self.max_failures:
                self._refused_until[address] = now + self.lockout
                recent.clear()
            return self.delay * min(len(recent) or self.max_failures, 5)

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._failures.pop(address, None)
