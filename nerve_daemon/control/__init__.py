"""control: how the outside drives a running kernel.

- `ipc`: `DaemonIpcServer`, nerve.sock, serving any `DaemonApi` (the kernel is one);
- `file_watch`: `FileWatcher`, debounced changes of nerve.yaml, senses/ and workflows/;
- `reload`: `Reload`, what each change means, applied to any `ReloadTarget` (the kernel is one);
- `config_diff`: `diff_configs`, what a reloaded nerve.yaml changes;
- `archive_schedule`: the daily archive;
- `notify`: `Notifier`, systemd's readiness, watchdog and stopping notifications.

Depends on workflows/ (its errors), supervise/ (and nerve_store, nerve_core); never on the
kernel, which sits above every room and composes them.
"""
