"""nerve_store: where nerve keeps what it promises not to lose.

The log store over data/logs.db, the JSONL archive, the content-addressed blob store and the
per-sense databases with their migrations (see DESIGN.md, "logs.db"). Built on nerve_core only.
"""
