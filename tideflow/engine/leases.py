"""This engine's hold on runs: who it is, which runs it wants, when it renews.

An engine owns a run while its lease in the database has not expired; it
renews the leases of the runs it drives a few times per lease, and polls the
database now and then to claim runs and read control requests. :class:`Leases`
is that bookkeeping: it decides what to claim, renew or release and when, and
the reconciler makes the store calls. Nothing here does I/O, so the schedule
can be checked with plain datetimes.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime, timedelta

#: How many times per lease the leases are renewed: a renewal may be missed
#: (a slow commit, a busy loop) without losing the run.
RENEWALS_PER_LEASE = 3


class Leases:
    """The runs one engine holds or wants, and its poll and renewal schedule."""

    def __init__(
        self, owner: str, lease_seconds: float, poll_seconds: float, now: datetime
    ) -> None:
        """Args:
        owner: The engine's owner id, written on every run it claims.
        lease_seconds: How long a claim or renewal holds a run.
        poll_seconds: How often to claim runs and read control requests when
            nothing wakes the engine earlier (see :meth:`poll_now`).
        now: The start: the first poll and renewal are due at once.
        """
        self.owner = owner
        self._lease = timedelta(seconds=lease_seconds)
        self._poll_every = timedelta(seconds=poll_seconds)
        self.next_poll = now
        self.next_renew = now
        #: Runs to claim even when not serving (the ones being driven).
        self._wanted: set[int] = set()
        #: Runs this engine still owns in the database but dropped from memory
        #: (a failed commit): claimed again at the next poll, released when handing back.
        self._reclaim: set[int] = set()

    def until(self, now: datetime) -> datetime:
        """When a lease taken or renewed (or a commit made) at ``now`` expires."""
        return now + self._lease

    @property
    def wake_at(self) -> datetime:
        """When the next poll or renewal is due."""
        return min(self.next_poll, self.next_renew)

    # -- polling ------------------------------------------------------------------

    def poll_now(self, now: datetime) -> None:
        """Something changed in the database (a new run, a control request): poll now."""
        self.next_poll = now

    def poll_due(self, now: datetime) -> bool:
        """Whether to poll at ``now``; if so, the next poll is scheduled from it."""
        if now < self.next_poll:
            return False
        self.next_poll = now + self._poll_every
        return True

    def want(self, run_id: int) -> None:
        """Claim ``run_id`` at each poll until :meth:`unwant`, serving or not."""
        self._wanted.add(run_id)

    def unwant(self, run_id: int) -> None:
        self._wanted.discard(run_id)

    def to_claim(self, held: Collection[int]) -> list[int]:
        """The runs to claim one by one at this poll: wanted or to reclaim, not held.

        Each one asked for is no longer to reclaim (see :meth:`asked`), whatever
        the answer: if another engine has it, it is that engine's now.
        """
        return sorted((self._wanted | self._reclaim).difference(held))

    def asked(self, run_id: int) -> None:
        """A claim of ``run_id`` was made."""
        self._reclaim.discard(run_id)

    # -- renewing -----------------------------------------------------------------

    def to_renew(self, now: datetime, held: Collection[int]) -> list[int]:
        """The runs whose leases to renew at ``now`` (none if it is not time yet).

        Renewing is scheduled from ``now`` even if nothing is held, so an idle
        engine does not wake for it more often than a busy one.
        """
        if now < self.next_renew:
            return []
        self.next_renew = now + self._lease / RENEWALS_PER_LEASE
        return list(held)

    # -- giving up ----------------------------------------------------------------

    def reclaim(self, run_ids: Iterable[int]) -> None:
        """Runs still ours in the database whose state was dropped: adopt them afresh."""
        self._reclaim.update(run_ids)

    def to_release(self, held: Collection[int]) -> list[int]:
        """Runs to release when handing back besides the ones held: those to reclaim."""
        return sorted(self._reclaim.difference(held))

    @property
    def reclaiming(self) -> bool:
        return bool(self._reclaim)

    def handed_back(self) -> None:
        """Every run was released (or will be, when its lease expires)."""
        self._reclaim.clear()
