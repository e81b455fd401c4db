"""supervise(): a crashed loop is logged with its traceback, counted, restarted, given up on;
SupervisedThread: the same on a thread a component owns; Backoff and Retries: the one
backoff rule every retry loop waits by."""

from __future__ import annotations

import logging
import random
import threading

import pytest

from agent.supervision import (
    Backoff,
    Restart,
    RestartPolicy,
    Retries,
    SupervisedThread,
    supervise,
)
from tests.clock import FakeClock

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
    clock = FakeClock()
    body = Flaky(crashes=10)

    def long_run() -> None:
        clock.now += 100  # every run lasts 100 s
        body()

    policy = RestartPolicy(first_delay_s=1, give_up_after=2, healthy_after_s=50)
    assert supervise("sensor", long_run, threading.Event(), policy, body.seen.append,
                     clock=clock)
    assert len(body.seen) == 10, "each crash followed a healthy run: never given up"
    assert clock.slept == [1] * 10, "and each restart waited the first delay again"


def test_restarts_wait_on_the_clock_doubling_up_to_the_cap() -> None:
    clock = FakeClock()
    body = Flaky(crashes=5)
    policy = RestartPolicy(first_delay_s=2, max_delay_s=10, give_up_after=None)
    assert supervise("counter", body, threading.Event(), policy, body.seen.append,
                     clock=clock)
    assert clock.slept == [2, 4, 8, 10, 10]


def test_a_requested_restart_is_a_warning_without_traceback(
        caplog: pytest.LogCaptureFixture) -> None:
    runs: list[int] = []

    def ends_once() -> None:
        runs.append(1)
        if len(runs) == 1:
            raise Restart("counter process exited with code 1")

    with caplog.at_level(logging.WARNING):
        assert supervise("camera cam", ends_once, threading.Event(), FAST, lambda _: None,
                         clock=FakeClock())
    (record,) = [r for r in caplog.records if "camera cam" in r.getMessage()]
    assert record.levelno == logging.WARNING and not record.exc_info
    assert "exited with code 1; restart 1 in" in record.getMessage()


def test_backoff_doubles_up_to_the_cap() -> None:
    policy = RestartPolicy(first_delay_s=1, max_delay_s=30)
    assert [policy.delay_s(n) for n in (1, 2, 3, 5, 6, 100)] == [1, 2, 4, 16, 30, 30]


def test_full_jitter_draws_below_the_same_ceiling() -> None:
    backoff = Backoff(first_delay_s=1, max_delay_s=30, jitter=True)
    rng = random.Random(7)
    for attempt, ceiling in ((1, 1), (3, 4), (9, 30)):
        draws = [backoff.delay_s(attempt, rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in draws)
        assert max(draws) > 0.9 * ceiling and min(draws) < 0.1 * ceiling


def test_retries_count_failures_in_a_row_and_start_over_after_a_success() -> None:
    retries = Retries(Backoff(first_delay_s=0.5, max_delay_s=2))
    assert [retries.failed() for _ in range(4)] == [0.5, 1, 2, 2]
    retries.succeeded()
    assert retries.failed() == 0.5 and retries.attempt == 1


def test_stop_during_the_backoff_ends_supervision() -> None:
    stop = threading.Event()
    body = Flaky(crashes=1)
    slow = RestartPolicy(first_delay_s=3600, give_up_after=None)
    stop.set()
    assert supervise("forwarder", body, stop, slow, body.seen.append)
    assert body.runs == 1


def test_a_supervised_thread_gives_up_then_runs_its_exit() -> None:
    body = Flaky(crashes=100)
    exits: list[bool] = []
    thread = SupervisedThread("forwarder", body, FAST, body.seen.append,
                              on_exit=lambda: exits.append(True))
    thread.start()
    assert thread.join(10) and thread.gave_up
    assert body.runs == 4 and exits == [True], "the exit runs once, after the last crash"


def test_stopping_a_supervised_thread_ends_its_backoff_and_runs_its_exit() -> None:
    body = Flaky(crashes=1)
    exits: list[bool] = []
    slow = RestartPolicy(first_delay_s=3600, give_up_after=None)
    thread = SupervisedThread("sensor-pm", body, slow, body.seen.append,
                              on_exit=lambda: exits.append(True))
    thread.start()
    assert not thread.join(0.2), "waiting out an hour's backoff"
    thread.stopping.set()
    assert thread.join(5) and not thread.gave_up
    assert body.runs == 1 and exits == [True]
