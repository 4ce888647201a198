"""huey's side of bench/durable.py: `count` one-step tasks enqueued to a SqliteHuey (each insert
committed), run by one consumer process with `workers` threads; prints one JSON line: the seconds
from the first enqueue to the last result, and each task's enqueue → run latency (ms).

    python bench/peers/huey_durable.py FOLDER COUNT WORKERS FSYNC
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

TASKS = """
import time
from huey import SqliteHuey

huey = SqliteHuey(filename={db!r}, fsync={fsync})


@huey.task()
def noop(sent):
    return (time.time() - sent) * 1000
"""


def main() -> None:
    folder, count, workers, fsync = (
        Path(sys.argv[1]),
        int(sys.argv[2]),
        int(sys.argv[3]),
        sys.argv[4],
    )
    (folder / "tasks.py").write_text(TASKS.format(db=str(folder / "huey.db"), fsync=fsync == "1"))
    sys.path.insert(0, str(folder))
    import tasks  # type: ignore[import-not-found]

    consumer = subprocess.Popen(
        [sys.executable, "-m", "huey.bin.huey_consumer", "tasks.huey", "-w", str(workers),
         "-k", "thread", "-q", "-d", "0.01", "-m", "0.01"],
        cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        began = time.time()
        results = [tasks.noop(time.time()) for _ in range(count)]
        latencies = [result.get(blocking=True, timeout=120) for result in results]
        seconds = time.time() - began
    finally:
        consumer.terminate()
        consumer.wait(timeout=30)
    print(json.dumps({"seconds": seconds, "latencies_ms": latencies}))


if __name__ == "__main__":
    main()
