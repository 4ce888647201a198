"""nerve_daemon: the kernel and the processes it supervises, in rooms that depend downward.

    kernel.py        the composition root: builds the parts, starts and stops them; no logic
    options.py       KernelOptions, what an embedder sets
    state.py         the kernel's state as one snapshot, rendered by health and list-senses
    lifetimes.py     each part's task tracked, and one deadline for a whole stop
    service.py       the kernel as a workspace's service (lock, text log, signals)
    daemon_main.py   the background daemon's process
    control/         the socket, the file watcher, what a reload means, config diffs, the archive
    senses/          the scheduler, sense groups, outcomes, the signal bus
    workflows/       the workflow manager and runners, admission, the workflow worker
    supervise/       the worker pool and fork server, supervision policy, resource limits
    containment.py   the wall that keeps an unexpected error inside one request or run

kernel → control → workflows, senses → supervise → nerve_store → nerve_core.
"""
