-- The last known state of each partition, so a launch happens when it crosses the threshold,
-- not on every sample while it stays above it.
CREATE TABLE partitions (
    mountpoint TEXT PRIMARY KEY,
    percent REAL NOT NULL,
    pressured INTEGER NOT NULL,     -- 1 while at or above the threshold
    updated_at INTEGER NOT NULL     -- ms since the epoch, UTC
);
