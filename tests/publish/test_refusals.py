"""What a refused message leads to: split, retry, or set aside (pure bookkeeping)."""

from __future__ import annotations

from agent.publish.mqtt import PACKET_TOO_LARGE
from agent.publish.refusals import Refusals, Verdict

NOT_AUTHORIZED = 0x87


def test_a_refusal_counts_only_when_the_broker_took_something_else_since() -> None:
    refusals = Refusals(poison_after=3)
    assert refusals.refused(7, 10, 2000, NOT_AUTHORIZED) is Verdict.RETRY
    for _ in range(20):  # a broker refusing everything: the count stays at one
        assert refusals.refused(7, 10, 2000, NOT_AUTHORIZED) is Verdict.RETRY
    assert refusals.refusals(7) == 1
    refusals.accepted(30)
    assert refusals.refused(7, 10, 2000, NOT_AUTHORIZED) is Verdict.RETRY
    refusals.accepted(40)
    assert refusals.refused(7, 10, 2000, NOT_AUTHORIZED) is Verdict.POISON
    assert refusals.refusals(7) == 0, "forgotten once set aside"


def test_a_message_that_gets_through_is_forgotten() -> None:
    refusals = Refusals(poison_after=2)
    refusals.refused(7, 1, 200, NOT_AUTHORIZED)
    refusals.accepted(7)
    refusals.accepted(8)
    assert refusals.refused(7, 1, 200, NOT_AUTHORIZED) is Verdict.RETRY, "counting anew"


def test_too_large_splits_several_measurements_and_counts_one() -> None:
    refusals = Refusals(poison_after=2)
    assert refusals.refused(1, 200, 20_000, PACKET_TOO_LARGE) is Verdict.SPLIT
    assert refusals.refused(1, 100, 10_000, PACKET_TOO_LARGE) is Verdict.SPLIT
    assert refusals.refused(1, 150, 15_000, PACKET_TOO_LARGE) is Verdict.SPLIT
    assert refusals.split_below == 5_000, "the smallest learnt limit holds"
    assert refusals.refused(9, 1, 4_000, PACKET_TOO_LARGE) is Verdict.RETRY
    refusals.accepted(10)
    assert refusals.refused(9, 1, 4_000, PACKET_TOO_LARGE) is Verdict.POISON
