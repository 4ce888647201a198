"""`nerve explain`: why a sense computed or did not, where a run came from, what a signal did.

Each answer is a JSON document built from what the daemon knows now (its state, the scheduler's
view and the decision ledger, when it runs) and from logs.db (always, so that an answer outlives
the daemon). The same functions serve the IPC `explain` request and the CLI with no daemon: only
`live` differs. Reading logs.db is synchronous; the kernel calls these off its event loop.

A chain is walked by lineage: a run's launch row (its `ref_id` is the run) names the trigger it
came from (`cause`) and the signal that trigger was made for (`parent`); that signal's row names
its own compute's trigger and signal; and so on to a trigger with no signal, whose id says its
kind (`i-` interval tick, `u-` startup compute, `m-` manual `nerve sense trigger`).
"""

from __future__ import annotations

from .lineage import explain_run, explain_signal
from .sense import LiveSense, explain_sense

__all__ = ["LiveSense", "explain_run", "explain_sense", "explain_signal"]
