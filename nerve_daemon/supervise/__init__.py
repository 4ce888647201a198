"""supervise: processes, not what runs in them.

- `worker_pool`: `WorkerPool` (the one place child processes are made, through the supervised
  fork server) and `WorkerProcess`, the kernel's end of a worker;
- `fork_server`: the preloaded process workers are forked from;
- `policy`: `GroupPolicy` and `CrashHistory`, the supervision rules every supervised process
  shares (readiness, backoff, crash loop);
- `resource_watch`: memory and CPU limits of group workers;
- `worker_runtime`, `user_modules`: what every worker does inside its child (its protocol
  channel, output redirection, the kernel-death watchdog, loading user code).

Depends on nerve_store and nerve_core only; never on senses/, workflows/ or control/ (the fork
server names the worker entry points as strings).
"""
