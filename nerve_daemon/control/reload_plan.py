"""A reload plan: what applying the workspace's current nerve.yaml and its changed code would do to
the running daemon, before it happens (`nerve reload --plan`). Pure: built from what the daemon
runs now (`Running`), the parsed nerve.yaml and the paths changed since they were applied, by the
same rules the reload then follows (`diff_configs`, the scheduler's in-place `apply`, the groups'
and workflows' reloads), so the plan and the reload agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nerve_core import NerveConfig, format_duration
from nerve_core._workspace import CONFIG_FILE

from ..senses.scheduler import ReflexScheduler
from ..senses.ticks import describe, timers_rebuilt
from ..workflows.runner import WorkflowRunner
from .config_diff import diff_configs


@dataclass(frozen=True, slots=True)
class Running:
    """What the plan needs of the running daemon."""

    config: NerveConfig
    computing: Mapping[str, str] = field(default_factory=dict)  # sense → its compute's trigger
    runs: Mapping[str, Sequence[str]] = field(default_factory=dict)  # workflow → runs in flight
    queued: Mapping[str, Sequence[str]] = field(default_factory=dict)  # workflow → queued runs
    drain_timeout_s: float = 30.0


def running_now(
    config: NerveConfig,
    scheduler: ReflexScheduler | None,
    runners: Mapping[str, WorkflowRunner],
    drain_timeout_s: float,
) -> Running:
    """What runs now, as the plan needs it."""
    computing = {}
    for name in config.senses:
        view = None if scheduler is None else scheduler.view(name)
        if view is not None and view.running is not None:
            computing[name] = view.running.id
    return Running(
        config=config,
        computing=computing,
        runs={name: runner.active_runs for name, runner in runners.items()},
        queued={name: runner.queued_runs for name, runner in runners.items()},
        drain_timeout_s=drain_timeout_s,
    )


def make_plan(
    running: Running, new: NerveConfig | None, errors: Sequence[str], changed: Iterable[Path]
) -> dict[str, Any]:
    """The plan for applying `new` (None when nerve.yaml is invalid: `errors` say why, and only
    the code changes would apply) and the files `changed` (relative to the workspace)."""
    old = running.config
    target = new if new is not None else old
    paths = sorted({Path(path) for path in changed} - {Path(CONFIG_FILE)})
    code_senses = {p.parts[1] for p in paths if len(p.parts) > 1 and p.parts[0] == "senses"}
    code_workflows = {p.parts[1] for p in paths if len(p.parts) > 1 and p.parts[0] == "workflows"}
    diff = diff_configs(old, target)

    because: dict[str, list[str]] = {}
    for name in diff.groups_restarted:
        because[name] = _group_reasons(old, target, name)
    for sense in sorted(code_senses):
        group = target.senses[sense].group if sense in target.senses else None
        if group is not None and group not in diff.groups_added:
            because.setdefault(group, []).append(f"senses/{sense}/ changed")
    groups = [
        {
            "group": name,
            "action": "restart",
            "because": reasons,
            "finishFirst": _computing(running, old, name),
        }
        for name, reasons in sorted(because.items())
    ]
    groups += [{"group": name, "action": "start"} for name in diff.groups_added]
    groups += [
        {"group": name, "action": "stop", "finishFirst": _computing(running, old, name)}
        for name in diff.groups_removed
    ]

    timers: list[dict[str, Any]] = []
    rebuilt = timers_rebuilt(old, target)  # the scheduler's own rule
    for sense in sorted(set(old.senses) | set(target.senses)):
        before, after = _every(old, sense), _every(target, sense)
        if not before and not after:
            continue
        if sense not in target.senses:
            timers.append({"sense": sense, "action": "removed"})
        elif sense not in old.senses:
            timers.append({"sense": sense, "action": "added", "every": after})
        elif sense in rebuilt:
            timers.append({"sense": sense, "action": "rebuilt", "every": after, "was": before})
        else:
            timers.append({"sense": sense, "action": "kept", "every": after})

    workflows: list[dict[str, Any]] = []
    for name in sorted(code_workflows & set(old.workflows) & set(target.workflows)):
        workflows.append(
            {
                "workflow": name,
                "action": "drain",
                "because": [f"workflows/{name}/ changed"],
                "interruptsIfStillRunningAfter": format_duration(running.drain_timeout_s),
                "runs": list(running.runs.get(name, ())),
            }
        )
    for name in diff.workflows_removed:
        workflows.append(
            {
                "workflow": name,
                "action": "retire",
                "interruptsIfStillRunningAfter": format_duration(running.drain_timeout_s),
                "runs": list(running.runs.get(name, ())),
                "drops": list(running.queued.get(name, ())),
            }
        )
    workflows += [{"workflow": name, "action": "add"} for name in diff.workflows_added]
    for name in diff.workflows_changed:
        changes = _changes(old.workflows[name], target.workflows[name])
        workflows.append({"workflow": name, "action": "limits", "changes": changes})

    plan: dict[str, Any] = {
        "config": {"valid": new is not None, "errors": list(errors)},
        "groups": groups,
        "timers": timers,
        "senses": {
            "added": sorted(set(target.senses) - set(old.senses)),
            "removed": sorted(set(old.senses) - set(target.senses)),
            "changed": {
                name: _changes(old.senses[name], target.senses[name])
                for name in sorted(set(old.senses) & set(target.senses))
                if old.senses[name] != target.senses[name]
            },
        },
        "workflows": workflows,
        "other": diff.other_changed + (["groups' limits"] if diff.limits_changed else []),
        "pending": [str(path) for path in paths],
    }
    plan["empty"] = not (
        groups
        or workflows
        or plan["other"]
        or diff.reflexes_changed
        or any(timer["action"] != "kept" for timer in timers)
    )
    return plan


def _group_reasons(old: NerveConfig, new: NerveConfig, group: str) -> list[str]:
    before, after = old.sense_groups().get(group, ()), new.sense_groups().get(group, ())
    reasons = [f"sense {s} added" for s in after if s not in before]
    reasons += [f"sense {s} removed" for s in before if s not in after]
    for sense in after:
        if sense in before and old.senses[sense] != new.senses[sense]:
            changes = _changes(old.senses[sense], new.senses[sense])
            described = ", ".join(f"{key} {was} → {now}" for key, (was, now) in changes.items())
            reasons.append(f"sense {sense} changed ({described})")
    return reasons


def _computing(running: Running, config: NerveConfig, group: str) -> list[str]:
    """The senses of `group` computing now: their computes finish before the worker goes."""
    return sorted(
        sense for sense in config.sense_groups().get(group, ()) if sense in running.computing
    )


def _every(config: NerveConfig, sense: str) -> list[str]:
    return describe(config, sense)


def _changes(old: Any, new: Any) -> dict[str, list[Any]]:
    before, after = old.model_dump(), new.model_dump()
    return {
        key: [_show(before.get(key)), _show(after.get(key))]
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    }


def _show(value: Any) -> Any:
    return format_duration(value) if isinstance(value, float) else value
