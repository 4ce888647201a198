"""What a compute or a run last said of its progress (`ctx.progress()`), as the kernel keeps it
while the compute or run goes on."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProgressReport:
    fraction: float  # 0 to 1
    note: str
    at: int  # ms since the epoch, when the kernel heard it

    def as_dict(self) -> dict[str, object]:
        return {"fraction": self.fraction, "note": self.note, "at": self.at}
