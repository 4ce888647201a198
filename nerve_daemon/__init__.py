"""nerve_daemon: the kernel and the processes it supervises.

So far: loading user modules (a sense's `compute.py`, a workflow's `workflow.py`) with errors that
name the file and line. The kernel, worker pool, signal bus, reflex scheduler, workflow manager,
file watcher and IPC server land here next (see DESIGN.md, "Processes and protocols").
"""
