"""supervise(): a crashed loop is logged with its traceback, counted, restarted, given up on."""

from __future__ import annotations

import logging
import threading

import pytest

from agent.supervision import RestartPolicy, supervise

FAST = RestartPolicy(first_delay_s=0.001, max_delay_s=0.004, give_up_after=4)


class Flaky:
    """Crashes ``crashes`` times, then returns; records what the supervisor saw."""

    def __init__(self, crashes: int) -> None:
        self.left = crashes
        self.runs = 0
        self.seen: list[Exception] = []

    def __call__(self) -> None:
        self.runs += 1
        if self.left:
            self.left -= 1
            raise RuntimeError(f"boom {self.runs}")


def test_crashes_are_logged_with_traceback_counted_and_restarted(
        caplog: pytest.LogCaptureFixture) -> None:
    body = Flaky(crashes=3)
    with caplog.at_level(logging.ERROR):
        assert supervise("worker", body, threading.Event(), FAST, body.seen.append)
    assert body.runs == 4
    assert [str(e) for e in body.seen] == ["boom 1", "boom 2", "boom 3"]
    crashes = [r for r in caplog.records if "worker crashed" in r.getMessage()]
    assert len(crashes) == 3 and all(r.exc_info for r in crashes)
    assert "restarting in" in crashes[0].getMessage()


def test_a_loop_that_keeps_crashing_is_given_up(caplog: pytest.LogCaptureFixture) -> None:
    body = Flaky(crashes=100)
    assert not supervise("forwarder", body, threading.Event(), FAST, body.seen.append)
    assert body.runs == 4 and len(body.seen) == 4
    (last,) = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert "giving up" in last.getMessage() and last.exc_info


def test_a_long_healthy_run_resets_the_consecutive_count() -> None:
    clock = iter(float(t) for t in range(0, 10_000, 100))  # every run lasts 100 s
    body = Flaky(crashes=10)
    policy = RestartPolicy(first_delay_s=0.001, give_up_after=2, healthy_after_s=50)
    assert supervise("sensor", body, threading.Event(), policy, body.seen.append,
                     monotonic=lambda: next(clock))
    assert len(body.seen) == 10, "each crash followed a healthy run: never given up"


def test_backoff_doubles_up_to_the_cap() -> None:
    policy = RestartPolicy(first_delay_s=1, max_delay_s=30)
    assert [policy.delay_s(n) for n in (1, 2, 3, 5, 6, 100)] == [1, 2, 4, 16, 30, 30]


def test_stop_during_the_backoff_ends_supervision() -> None:
    stop = threading.Event()
    body = Flaky(crashes=1)
    slow = RestartPolicy(first_delay_s=3600, give_up_after=None)
    stop.set()
    assert supervise("forwarder", body, stop, slow, body.seen.append)
    assert body.runs == 1
