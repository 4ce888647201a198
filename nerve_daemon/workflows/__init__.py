"""workflows: runs, from launch to a recorded end.

- `manager`: `WorkflowManager` (the entry for launches and cancels, recovery at start) and
  `WorkflowRunner`, one supervised worker per workflow with its runs;
- `admission`: `Admission` (concurrency and overflow, decided atomically) and `RunQueue`;
- `worker`: the workflow worker's side (moderator, roles, rounds), run in the child.

Depends on supervise/ (and nerve_store, nerve_core).
"""
