"""The lease schedule and claim bookkeeping of one engine, without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tideflow.engine.leases import Leases

T0 = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_polls_and_renewals_are_due_at_once_then_on_their_schedule() -> None:
    leases = Leases("engine-a", lease_seconds=30, poll_seconds=2, now=T0)
    assert leases.poll_due(T0) and not leases.poll_due(_at(1.9)) and leases.poll_due(_at(2))
    assert leases.to_renew(T0, [4, 5]) == [4, 5]
    assert leases.to_renew(_at(9.9), [4, 5]) == []  # a third of the lease
    assert leases.to_renew(_at(10), []) == []  # nothing held: nothing to renew, still scheduled
    assert leases.next_renew == _at(20)
    assert leases.wake_at == _at(4)  # the poll at 2s is taken; the next is at 4s
    assert leases.until(_at(10)) == _at(40)


def test_a_notification_brings_the_next_poll_forward() -> None:
    leases = Leases("engine-a", lease_seconds=30, poll_seconds=2, now=T0)
    assert leases.poll_due(T0) and leases.to_renew(T0, [1]) == [1]
    assert leases.wake_at == _at(2)
    leases.poll_now(_at(0.5))
    assert leases.wake_at == _at(0.5) and leases.poll_due(_at(0.5))


def test_wanted_and_dropped_runs_are_claimed_until_asked_for() -> None:
    leases = Leases("engine-a", lease_seconds=30, poll_seconds=2, now=T0)
    leases.want(3)
    leases.reclaim([9, 4])
    assert leases.to_claim(held=[4]) == [3, 9]
    leases.asked(9)
    assert leases.to_claim(held=[]) == [3, 4]  # still wanted; 4 still to reclaim
    assert leases.to_release(held=[3]) == [4]
    leases.unwant(3)
    leases.handed_back()
    assert leases.to_claim(held=[]) == [] and not leases.reclaiming
