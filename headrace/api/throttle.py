"""Login throttling: failed logins per username and per client address, in a sliding window.

After ``api.login_max_failures`` failures (10 by default) within
``api.login_failure_window`` seconds (300), further attempts for that
username, or from that address, are refused with 429 and ``Retry-After``
until the oldest failure leaves the window, *before* any password is hashed.
Failures are wrong passwords (the login form, ``POST /api/v1/auth/login``,
HTTP Basic) and unknown or expired API tokens (these count against the
address only: a token names no user until it is found). Refused attempts do
not count, so a lock ends one window after the last failure that was checked.

The trade-off, for operators: the per-username count is what stops a
password guesser who spreads over many addresses, and it is also what lets
an attacker keep a known username locked: ten wrong guesses per window lock
the real user out for that window, from everywhere, for as long as the
attacker keeps at it. It never lasts beyond the window after the attacker
stops, failures from one address never block another address once the
window has passed, a successful login clears that username's failures, and
API tokens of that user keep working throughout. Raise
``api.login_max_failures`` to make locking a username costlier.

State lives in the API server's process: several API servers each count on
their own (an attacker spread over ``n`` servers gets ``n`` times the
guesses), and a restart forgets the counts. Memory is bounded: at most
:data:`MAX_KEYS` usernames and addresses are tracked, the stalest forgotten first.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from headrace.config import Settings

MAX_KEYS = 100_000
"""Most usernames plus addresses tracked at once (each holds at most ``login_max_failures`` floats)."""


class LoginThrottle:
    """Counts failed logins per username and per client address within a sliding window (thread-safe).

    ``clock`` returns seconds (monotonic); tests inject one.
    """

    def __init__(
        self,
        max_failures: int,
        window_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self.max_failures = max_failures
        self.window_seconds = window_seconds
        self.clock = clock
        self.max_keys = max_keys
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginThrottle:
        """A throttle with ``api.login_max_failures`` and ``api.login_failure_window``."""
        return cls(settings.get_int("api", "login_max_failures"), settings.get_float("api", "login_failure_window"))

    @staticmethod
    def _keys(username: str | None, address: str | None) -> list[tuple[str, str]]:
        keys = []
        if username is not None:
            keys.append(("user", username))
        if address is not None:
            keys.append(("address", address))
        return keys

    def retry_after(self, username: str | None, address: str | None) -> int | None:
        """Whole seconds until ``username`` and ``address`` may try again, or ``None`` if they may now."""
        now = self.clock()
        wait = 0.0
        with self._lock:
            for key in self._keys(username, address):
                times = self._failures.get(key)
                if times is not None and len(times) >= self.max_failures:
                    wait = max(wait, times[0] + self.window_seconds - now)
        return max(1, math.ceil(wait)) if wait > 0 else None

    def record_failure(self, username: str | None, address: str | None) -> bool:
        """Count a failed login; return True if it made ``username`` or ``address`` reach the limit."""
        now = self.clock()
        reached = False
        with self._lock:
            for key in self._keys(username, address):
                times = self._failures.pop(key, None)  # re-inserted last: the dict stays oldest-activity-first
                if times is None:
                    times = deque(maxlen=self.max_failures)
                while times and times[0] <= now - self.window_seconds:
                    times.popleft()
                times.append(now)
                self._failures[key] = times
                reached = reached or len(times) == self.max_failures
            if len(self._failures) > self.max_keys:
                self._forget_stale(now)
        return reached

    def record_success(self, username: str) -> None:
        """Forget ``username``'s failures (its address's stay: one good account must not launder guesses)."""
        with self._lock:
            self._failures.pop(("user", username), None)

    def _forget_stale(self, now: float) -> None:
        for key in [k for k, times in self._failures.items() if times[-1] <= now - self.window_seconds]:
            del self._failures[key]
        while len(self._failures) > self.max_keys:
            del self._failures[next(iter(self._failures))]


__all__ = ["MAX_KEYS", "LoginThrottle"]
