CREATE TABLE samples (
    ts INTEGER NOT NULL,            -- ms since the epoch, UTC
    percent REAL NOT NULL,          -- memory in use
    available_mb INTEGER NOT NULL
);
CREATE INDEX samples_ts ON samples (ts);
