"""nerve_cli: the `nerve` command (typer + rich).

Talks to a running daemon only through the IPC protocol of nerve_core, and reads the stores
directly for read-only queries. Heavy modules are imported inside the command functions, so
`nerve --help` stays close to a bare typer start-up.
"""
