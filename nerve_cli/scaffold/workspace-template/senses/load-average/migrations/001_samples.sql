CREATE TABLE samples (
    ts INTEGER NOT NULL,       -- seconds since the epoch, UTC
    load1 REAL NOT NULL,
    load5 REAL NOT NULL,
    load15 REAL NOT NULL
);
CREATE INDEX samples_ts ON samples (ts);
