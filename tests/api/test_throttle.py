"""``LoginThrottle`` with an injected clock: the window, per-username and per-address counts, bounded memory."""

from __future__ import annotations

from headrace.api.throttle import LoginThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_limit_is_reached_after_max_failures_and_ends_with_the_window() -> None:
    clock = Clock()
    throttle = LoginThrottle(3, 300.0, clock=clock)
    assert [throttle.record_failure("admin", "10.0.0.1") for _ in range(3)] == [False, False, True]
    assert throttle.retry_after("admin", "10.0.0.1") == 300
    clock.now += 299.5
    assert throttle.retry_after("admin", "10.0.0.1") == 1
    clock.now += 0.5
    assert throttle.retry_after("admin", "10.0.0.1") is None  # never forever: the window ends


def test_sliding_window_forgets_old_failures() -> None:
    clock = Clock()
    throttle = LoginThrottle(3, 300.0, clock=clock)
    throttle.record_failure("admin", "10.0.0.1")
    clock.now += 200
    throttle.record_failure("admin", "10.0.0.1")
    clock.now += 200  # the first failure has left the window
    assert throttle.record_failure("admin", "10.0.0.1") is False
    assert throttle.retry_after("admin", "10.0.0.1") is None


def test_another_address_is_blocked_only_by_the_per_user_window() -> None:
    clock = Clock()
    throttle = LoginThrottle(3, 300.0, clock=clock)
    for _ in range(3):
        throttle.record_failure("admin", "203.0.113.9")  # the attacker
    assert throttle.retry_after("admin", "192.0.2.1") == 300  # the username is locked for the window
    assert throttle.retry_after("alice", "192.0.2.1") is None  # other users from other addresses are not
    clock.now += 301
    assert throttle.retry_after("admin", "192.0.2.1") is None


def test_success_clears_the_username_but_not_the_address() -> None:
    throttle = LoginThrottle(2, 300.0, clock=Clock())
    throttle.record_failure("admin", "10.0.0.1")
    throttle.record_failure("bob", "10.0.0.1")
    throttle.record_success("admin")
    assert throttle.retry_after("admin", None) is None
    assert throttle.retry_after(None, "10.0.0.1") == 300


def test_memory_is_bounded() -> None:
    clock = Clock()
    throttle = LoginThrottle(5, 300.0, clock=clock, max_keys=100)
    for i in range(1000):
        clock.now += 0.001
        throttle.record_failure(f"user{i}", f"10.0.{i // 256}.{i % 256}")
    assert len(throttle._failures) <= 100
    assert throttle.retry_after("user999", None) is None and ("user", "user999") in throttle._failures
