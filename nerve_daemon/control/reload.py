"""Reload: what a change of the workspace's files means, decided in one place.

- `nerve.yaml` changed: it is parsed; an invalid one is logged (`config.error`) and the running
  config stays; a valid one is applied as a diff by the target and logged (`config.reload`);
- a file under `senses/<name>/`: that sense's group gets a fresh worker;
- a file under `workflows/<name>/`: that workflow's worker is drained and replaced.

The kernel is the target; this module knows only the `ReloadTarget` it is given.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from nerve_core import LogType, NerveConfig, load_nerve_config, parse_nerve_config
from nerve_core._workspace import CONFIG_FILE
from nerve_core.errors import ConfigError
from nerve_store import KERNEL_SOURCE, LogRow

from ..containment import contained
from .config_diff import ConfigDiff
from .reload_plan import Running, make_plan

log = logging.getLogger("nerve")


class ReloadTarget(Protocol):
    async def apply_config(self, config: NerveConfig) -> ConfigDiff: ...

    def reload_senses(self, senses: set[str]) -> list[str]:
        """Give the groups of `senses` a fresh worker; the groups' names."""
        ...

    def reload_workflows(self, workflows: set[str]) -> list[str]:
        """Drain and replace the workers of `workflows`; the names of those that exist."""
        ...


class Reload:
    def __init__(
        self, config_path: Path, target: ReloadTarget, record: Callable[[LogRow], None]
    ) -> None:
        self._config_path = config_path
        self._target = target
        self._record = record
        self.pending: set[Path] = set()  # changed, waiting for `apply_pending` (reload: manual)

    async def files_changed(self, changed: set[Path], *, manual: bool = False) -> None:
        """React to `changed` (paths relative to the workspace); never raises. `manual`: keep
        them for `apply_pending` instead."""
        if manual:
            self.pending |= changed
            log.info(
                "%d file(s) changed (reload: manual): `nerve reload --plan` shows what "
                "`nerve reload` would do",
                len(self.pending),
            )
            return
        with contained("a reload"):
            await self._reload(changed)

    def plan(self, running: Running) -> dict[str, Any]:
        """What `apply_pending` would do to what runs now."""
        try:
            text = self._config_path.read_text()
        except OSError as exc:
            new, errors = None, [f"{CONFIG_FILE}: cannot be read: {exc.strerror or exc}"]
        else:
            parsed = parse_nerve_config(text)
            new = parsed.value if parsed.ok else None
            errors = [] if parsed.ok else [str(issue) for issue in parsed.error]
        return make_plan(running, new, errors, self.pending)

    async def apply_pending(self) -> None:
        """Apply nerve.yaml as it is now and every file changed since the last reload."""
        changed, self.pending = self.pending | {Path(CONFIG_FILE)}, set()
        await self.files_changed(changed)

    async def _reload(self, changed: set[Path]) -> None:
        if Path(CONFIG_FILE) in changed:
            await self._reload_config()
        senses = {p.parts[1] for p in changed if p.parts[0] == "senses"}
        workflows = {p.parts[1] for p in changed if p.parts[0] == "workflows"}
        groups = self._target.reload_senses(senses)
        drained = self._target.reload_workflows(workflows)
        if groups or drained:
            paths = sorted(str(path) for path in changed)
            payload = {"changed": paths, "groups": groups, "workflows": drained}
            self._record(LogRow(KERNEL_SOURCE, LogType.CONFIG_RELOAD, payload))

    async def _reload_config(self) -> None:
        try:
            config = load_nerve_config(self._config_path)
        except ConfigError as exc:
            log.error("nerve.yaml changed and is invalid; the running config stays:\n%s", exc)
            self._record(LogRow(KERNEL_SOURCE, LogType.CONFIG_ERROR, {"error": str(exc)}))
            return
        diff = await self._target.apply_config(config)
        if not diff.empty:
            log.info("nerve.yaml reloaded: %s", diff.summary())
            payload = {"changed": [CONFIG_FILE], **diff.summary()}
            self._record(LogRow(KERNEL_SOURCE, LogType.CONFIG_RELOAD, payload))
