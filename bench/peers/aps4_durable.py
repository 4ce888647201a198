"""APScheduler 4's side of bench/durable.py: `count` jobs added to an AsyncScheduler whose data
store is SQLAlchemy on SQLite (aiosqlite), each add committed, run in-process; prints one JSON
line: the seconds from the first add to the last result, and each job's add → run latency (ms).

    python bench/peers/aps4_durable.py FOLDER COUNT
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import anyio


def noop(sent: float) -> float:
    return (time.time() - sent) * 1000


async def measure(folder: Path, count: int) -> dict[str, object]:
    from apscheduler import AsyncScheduler
    from apscheduler.datastores.sqlalchemy import SQLAlchemyDataStore

    store = SQLAlchemyDataStore(f"sqlite+aiosqlite:///{folder / 'aps.db'}")
    async with AsyncScheduler(data_store=store) as scheduler:
        await scheduler.start_in_background()
        began = time.time()
        ids = [
            await scheduler.add_job(noop, args=[time.time()], result_expiration_time=600)
            for _ in range(count)
        ]
        latencies = []
        for job_id in ids:
            result = await scheduler.get_job_result(job_id)
            assert result is not None
            latencies.append(result.return_value)
        seconds = time.time() - began
        await scheduler.stop()
    return {"seconds": seconds, "latencies_ms": latencies}


def main() -> None:
    folder, count = Path(sys.argv[1]), int(sys.argv[2])
    print(json.dumps(anyio.run(measure, folder, count)))


if __name__ == "__main__":
    main()
