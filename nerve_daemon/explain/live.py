"""What the running kernel knows of a sense, for `explain_sense`: its state from the read model,
what it waits for from the scheduler (clock times made wall times), and its decisions from the
ledger."""

from __future__ import annotations

from nerve_store import now_ms

from ..senses.ledger import Ledger
from ..senses.scheduler import ReflexScheduler
from ..state import SenseView
from .sense import LiveSense


def live_sense(sense: SenseView, scheduler: ReflexScheduler | None, ledger: Ledger) -> LiveSense:
    counts = {str(reason): count for reason, count in sense.decisions.items()}
    progress = None if sense.progress is None else sense.progress.as_dict()
    limited = sense.rate_limited
    rate_limit = None if limited is None else {"name": limited[0], "until": limited[1]}
    schedule = None if scheduler is None else scheduler.view(sense.name)
    if scheduler is None or schedule is None:
        return LiveSense(state=sense.state, counts=counts, progress=progress, rate_limit=rate_limit)
    now, clock = now_ms(), scheduler.now()

    def wall(at: float | None) -> int | None:
        return None if at is None else now + round((at - clock) * 1000)

    name = sense.name
    return LiveSense(
        state=sense.state,
        pending=None if schedule.pending is None else ledger.about(name, schedule.pending),
        running=None if schedule.running is None else ledger.about(name, schedule.running),
        throttle_until=wall(schedule.throttle_until),
        grace_until=wall(schedule.grace_until),
        next_ticks=tuple(wall(tick) or 0 for tick in schedule.next_ticks),
        recent=ledger.recent(name),
        counts=counts,
        last_run_at=sense.stats.last_run_at,
        progress=progress,
        rate_limit=rate_limit,
    )
