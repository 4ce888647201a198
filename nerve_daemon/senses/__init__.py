"""senses: when senses compute, and what becomes of it.

- `scheduler`: `ReflexScheduler`, the scheduling semantics (interval grids, `on` signals,
  coalescing, throttle, grace), changed in place by a reload;
- `group`: `SenseGroup`, one supervised worker per sense group running computes one at a time;
- `outcomes`: `OutcomeRouter`, outcomes to log rows, signals and workflow launches;
- `bus`: `SignalBus`, signals to the senses whose reflexes listen;
- `worker`: the sense worker's side, run in the child.

Depends on supervise/ (and nerve_store, nerve_core).
"""
