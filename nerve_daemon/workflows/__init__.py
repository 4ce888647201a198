"""workflows: runs, from launch to a recorded end.

- `manager`: `WorkflowManager`, the entry for launches and cancels, and recovery at start;
- `runner`: `WorkflowRunner`, one supervised worker per workflow with its runs;
- `runs`: a run in memory, the parts runners share, run ids, and what observers see;
- `admission`: `Admission` (concurrency and overflow, decided atomically) and `RunQueue`;
- `worker`: the workflow worker's side (moderator, roles, rounds), run in the child.

Depends on supervise/ (and nerve_store, nerve_core).
"""
