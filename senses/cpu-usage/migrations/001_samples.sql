CREATE TABLE samples (
    ts INTEGER NOT NULL,        -- ms since the epoch, UTC
    percent REAL NOT NULL       -- CPU busy since the previous sample, all cores
);
CREATE INDEX samples_ts ON samples (ts);
