CREATE TABLE levels (
    ts INTEGER NOT NULL,        -- ms since the epoch, UTC
    level TEXT NOT NULL,        -- ok | elevated | high
    cpu_percent REAL,
    memory_percent REAL
);
