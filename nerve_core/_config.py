"""nerve.yaml: the configuration models and `parse_nerve_config`.

The file is read with a YAML 1.2-style loader (`on`, `yes`, `no` stay strings, so `on:` in a
reflex means what it says), validated with pydantic models that forbid unknown keys, and
cross-checked (a reflex may only name declared senses). Every problem found is reported at once,
each with the key path and the line it is on: `nerve.yaml:14: reflexes[0].interval: invalid
duration "ten"`. Nothing here raises for bad input; `load_nerve_config` is the one helper that
raises, with `ConfigError`, for callers that want an exception.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    model_validator,
)

from ._fields import (
    MAX_ATTEMPTS,
    MAX_CONCURRENCY,
    MAX_QUEUE,
    Duration,
    Name,
    OptionalCron,
    OptionalPositiveDuration,
    OptionalSize,
    OptionalTimezone,
    PositiveDuration,
    Rounds,
    SignalSource,
)
from ._result import Result, err, ok
from ._workspace import CONFIG_FILE, check_name
from .errors import ConfigError
from .workflow import DEFAULT_ENGINE_MAX_ROUNDS

KeyPath = tuple[str | int, ...]


class Overflow(StrEnum):
    """What a run beyond `concurrency` does."""

    DROP = "drop"  # it is recorded dropped
    QUEUE = "queue"  # it waits for a slot (at most `max_queue`, then `evict` decides)
    RESTART = "restart"  # the oldest running run is cancelled and this one starts


class Evict(StrEnum):
    """Which run a full queue gives up for a new one."""

    OLDEST = "oldest"  # the oldest queued run is dropped, the new one queued
    NEWEST = "newest"  # the newest queued run is dropped, the new one queued
    REFUSE = "refuse"  # the new run is dropped; the queue stays as it is


class CatchUp(StrEnum):
    """What a timer does at start for the ticks it missed while the daemon was down."""

    NONE = "none"  # nothing: the next tick on the grid
    LAST = "last"  # one compute for all of them
    ALL = "all"  # one compute each, oldest first (at most MAX_CATCH_UP)


class OnStall(StrEnum):
    """What a stalled run (no message for `stall_after`) gets."""

    NONE = "none"  # it is reported (a row, `@run.stalled`, `nerve workflow list`), nothing more
    CANCEL = "cancel"  # it ends `cancelled`
    RESTART = "restart"  # its thread is cancelled and it resumes from its persisted messages


class Synchronous(StrEnum):
    NORMAL = "normal"
    FULL = "full"


class ReloadMode(StrEnum):
    AUTO = "auto"  # a changed file is applied at once
    MANUAL = "manual"  # changed files wait for `nerve reload` (see `nerve reload --plan`)


# -- models -------------------------------------------------------------------------------------


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetryConfig(_Section):
    """Attempts in all (the first one included), the wait before the second, and its bound: each
    wait doubles, then is jittered down by up to half."""

    attempts: Annotated[StrictInt, Field(ge=1, le=MAX_ATTEMPTS)] = 3
    backoff: PositiveDuration = 1.0
    max_backoff: PositiveDuration = 60.0

    @model_validator(mode="after")
    def _bounded(self) -> RetryConfig:
        if self.max_backoff < self.backoff:
            raise ValueError("`max_backoff` must be at least `backoff`")
        return self


class SenseConfig(_Section):
    group: Name = "default"
    throttle: Duration = 0.0
    timeout: PositiveDuration = 30.0
    grace_period: Duration = 0.0
    retry: RetryConfig | None = None  # a compute that raises or times out is tried again


class ReflexConfig(_Section):
    kind: Literal["sense"] = "sense"
    sense: Name
    interval: OptionalPositiveDuration = None
    cron: OptionalCron = None  # five fields or @hourly-style, in `timezone`
    timezone: OptionalTimezone = None  # IANA name; the machine's own zone when unset
    jitter: Duration = 0.0  # each tick is delayed by up to this, the same delay for a tick
    catch_up: CatchUp = CatchUp.LAST  # ticks missed while the daemon was down
    on: tuple[SignalSource, ...] = ()  # senses' names, or the kernel's "@…" signals

    @model_validator(mode="after")
    def _schedules_something(self) -> ReflexConfig:
        if self.interval is None and self.cron is None and not self.on:
            raise ValueError("a reflex needs `interval`, `cron` or `on` (or a combination)")
        if self.timezone is not None and self.cron is None:
            raise ValueError("`timezone` applies to `cron` only (interval grids are on the epoch)")
        if self.jitter and self.interval is None and self.cron is None:
            raise ValueError("`jitter` applies to `interval` and `cron` ticks only")
        if self.interval is not None and self.jitter >= self.interval:
            raise ValueError("`jitter` must be shorter than `interval`")
        return self

    @property
    def timed(self) -> bool:
        return self.interval is not None or self.cron is not None


DEFAULT_IDLE_AFTER_S = 10.0


class WorkflowConfig(_Section):
    concurrency: Annotated[StrictInt, Field(ge=1, le=MAX_CONCURRENCY)] = 1
    overflow: Overflow = Overflow.DROP
    max_queue: Annotated[StrictInt, Field(ge=0, le=MAX_QUEUE)] = 10
    evict: Evict = Evict.OLDEST
    retry: RetryConfig | None = None  # a role that raises is tried again before the run fails
    stall_after: OptionalPositiveDuration = None  # a started run silent this long is stalled
    on_stall: OnStall = OnStall.NONE
    timeout: OptionalPositiveDuration = None  # a run started longer ago than this ends failed
    # The worker stops after this long with no run (started again by the next); null: it stays
    idle_after: OptionalPositiveDuration = DEFAULT_IDLE_AFTER_S


class LimitsConfig(_Section):
    memory: OptionalSize = None  # resident memory of the group's worker, e.g. 256MB
    cpu_seconds: OptionalPositiveDuration = None  # CPU time the worker may use in any minute
    # `memory` is enforced by a memory cgroup of the group's own where nerve can make one (the
    # OS refuses the worker any page past it) and by polling its resident memory once a second;
    # `poll`: by polling only
    memory_by: Literal["auto", "poll"] = "auto"


class GroupConfig(_Section):
    limits: LimitsConfig = LimitsConfig()


class StoreConfig(_Section):
    archive_after: OptionalPositiveDuration = None
    synchronous: Synchronous = Synchronous.NORMAL


class NerveConfig(_Section):
    max_rounds: Rounds = DEFAULT_ENGINE_MAX_ROUNDS
    senses: dict[Name, SenseConfig] = Field(default_factory=dict)
    reflexes: tuple[ReflexConfig, ...] = ()
    workflows: dict[Name, WorkflowConfig] = Field(default_factory=dict)
    groups: dict[Name, GroupConfig] = Field(default_factory=dict)
    store: StoreConfig = StoreConfig()
    reload: ReloadMode = ReloadMode.AUTO

    def sense_groups(self) -> dict[str, tuple[str, ...]]:
        """Sense names by group, in declaration order."""
        groups: dict[str, list[str]] = {}
        for name, sense in self.senses.items():
            groups.setdefault(sense.group, []).append(name)
        return {group: tuple(names) for group, names in groups.items()}

    def reflexes_of(self, sense: str) -> tuple[ReflexConfig, ...]:
        return tuple(reflex for reflex in self.reflexes if reflex.sense == sense)


_SECTION_MODELS: dict[KeyPath, type[BaseModel]] = {
    (): NerveConfig,
    ("senses", "*"): SenseConfig,
    ("senses", "*", "retry"): RetryConfig,
    ("workflows", "*", "retry"): RetryConfig,
    ("reflexes", "*"): ReflexConfig,
    ("workflows", "*"): WorkflowConfig,
    ("groups", "*"): GroupConfig,
    ("groups", "*", "limits"): LimitsConfig,
    ("store",): StoreConfig,
}

_REFLEX_WORKFLOW_MESSAGE = (
    "reflexes only schedule senses and cannot start a workflow; to start one, return "
    '{"workflow": "<name>|<maxRounds>|<prompt>"} from a sense\'s compute, '
    "or run `nerve workflow trigger <name>`"
)


# -- issues -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in nerve.yaml, located by key path and line."""

    path: str
    line: int | None
    message: str
    file: str = CONFIG_FILE

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class ConfigIssues:
    """Every problem found in one nerve.yaml, in line order."""

    issues: tuple[ConfigIssue, ...]

    def __iter__(self) -> Iterator[ConfigIssue]:
        return iter(self.issues)

    def __len__(self) -> int:
        return len(self.issues)

    def __str__(self) -> str:
        return "\n".join(str(issue) for issue in self.issues)


# -- parsing ------------------------------------------------------------------------------------


def parse_nerve_config(text: str, filename: str = CONFIG_FILE) -> Result[NerveConfig, ConfigIssues]:
    """Parse and validate the text of a nerve.yaml; never raises for bad input."""
    located = _load_yaml(text, filename)
    if not located.ok:
        return err(ConfigIssues((located.error,)))
    data, lines, issues = located.value
    if data is None:
        data = {}
    if not isinstance(data, dict):
        issue = ConfigIssue("", 1, "expected a mapping of settings at the top level", filename)
        return err(ConfigIssues((issue,)))

    data = _normalise(data)
    issues.extend(_reflex_workflow_keys(data, lines, filename))
    issues.extend(_unknown_references(data, lines, filename))
    issues.extend(_unknown_groups(data, lines, filename))
    try:
        config = NerveConfig.model_validate(data)
    except ValidationError as exc:
        issues.extend(_from_validation_error(exc, lines, filename))
        config = None
    if issues or config is None:
        unique = dict.fromkeys(issues)  # the same issue can be found twice; keep the first
        ordered = sorted(unique, key=lambda issue: (issue.line or 0, issue.path))
        return err(ConfigIssues(tuple(ordered)))
    return ok(config)


def load_nerve_config(path: Path) -> NerveConfig:
    """Read and parse the nerve.yaml at `path`; raise `ConfigError` listing every problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [ConfigIssue("", None, f"not valid UTF-8 ({exc.reason})", path.name)]
        ) from None
    except OSError as exc:
        raise ConfigError(
            [ConfigIssue("", None, f"cannot read: {exc.strerror}", str(path))]
        ) from None
    parsed = parse_nerve_config(text, path.name)
    if not parsed.ok:
        raise ConfigError(parsed.error.issues)
    return parsed.value


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans (only true/false, so `on:` and `no:` stay strings) and
    no implicit dates (a date-like value stays the string it is)."""


_DROPPED_TAGS = ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _DROPPED_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _load_yaml(
    text: str, filename: str
) -> Result[tuple[Any, dict[KeyPath, int], list[ConfigIssue]], ConfigIssue]:
    """The data of `text`, the line of every key and item, and duplicate-key issues."""
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow, found up front
        return err(_reader_issue(exc, text, filename))
    try:
        node = loader.get_single_node()
        if node is None:
            return ok((None, {}, []))
        lines: dict[KeyPath, int] = {(): node.start_mark.line + 1}
        issues: list[ConfigIssue] = []
        _index_lines(node, (), lines, issues, filename, set())
        return ok((loader.construct_document(node), lines, issues))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "malformed YAML"
        return err(ConfigIssue("", line, f"invalid YAML: {problem}", filename))
    except yaml.reader.ReaderError as exc:
        return err(_reader_issue(exc, text, filename))
    except yaml.YAMLError as exc:
        return err(ConfigIssue("", None, f"invalid YAML: {exc}", filename))
    except RecursionError:
        return err(ConfigIssue("", None, "invalid YAML: nested too deeply", filename))
    except (ValueError, OverflowError) as exc:  # a scalar its explicit tag cannot construct
        return err(ConfigIssue("", None, f"invalid YAML value: {exc}", filename))
    finally:
        loader.dispose()


def _reader_issue(exc: yaml.reader.ReaderError, text: str, filename: str) -> ConfigIssue:
    line = text.count("\n", 0, exc.position) + 1
    return ConfigIssue("", line, f"invalid YAML: {exc.reason}", filename)


def _index_lines(
    node: yaml.Node,
    path: KeyPath,
    lines: dict[KeyPath, int],
    issues: list[ConfigIssue],
    filename: str,
    seen: set[int],
) -> None:
    # Aliases share nodes: visit each node once, or an alias bomb takes exponential time.
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        keys_seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = (*path, key)
            if key in keys_seen:
                issues.append(
                    ConfigIssue(
                        _format_path(child), key_node.start_mark.line + 1, "duplicate key", filename
                    )
                )
            keys_seen.add(key)
            lines.setdefault(child, key_node.start_mark.line + 1)
            _index_lines(value_node, child, lines, issues, filename, seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.setdefault((*path, index), item.start_mark.line + 1)
            _index_lines(item, (*path, index), lines, issues, filename, seen)


def _normalise(data: dict[Any, Any]) -> dict[Any, Any]:
    """An empty section or an empty sense/workflow entry means "all defaults"."""
    data = {key: value for key, value in data.items() if value is not None}
    for section in ("senses", "workflows", "groups"):
        entries = data.get(section)
        if isinstance(entries, dict):
            data[section] = {name: {} if body is None else body for name, body in entries.items()}
    return data


def _reflex_workflow_keys(
    data: dict[Any, Any], lines: dict[KeyPath, int], filename: str
) -> list[ConfigIssue]:
    issues = []
    for index, reflex in _reflex_items(data):
        if "workflow" in reflex:
            path: KeyPath = ("reflexes", index, "workflow")
            issues.append(
                ConfigIssue(
                    _format_path(path), _line(lines, path), _REFLEX_WORKFLOW_MESSAGE, filename
                )
            )
            del reflex["workflow"]  # reported above; not again as an unknown key
    return issues


def _unknown_references(
    data: dict[Any, Any], lines: dict[KeyPath, int], filename: str
) -> list[ConfigIssue]:
    senses = data.get("senses")
    declared = set(senses) if isinstance(senses, dict) else set()
    issues = []
    for index, reflex in _reflex_items(data):
        sense = reflex.get("sense")
        if isinstance(sense, str) and check_name(sense).ok and sense not in declared:
            path: KeyPath = ("reflexes", index, "sense")
            issues.append(
                ConfigIssue(
                    _format_path(path),
                    _line(lines, path),
                    f'unknown sense "{sense}": declare it under `senses:`',
                    filename,
                )
            )
        on = reflex.get("on")
        for position, source in enumerate(on if isinstance(on, list) else []):
            if isinstance(source, str) and check_name(source).ok and source not in declared:
                path = ("reflexes", index, "on", position)
                issues.append(
                    ConfigIssue(
                        _format_path(path),
                        _line(lines, path),
                        f'unknown signal "{source}": signals are named after '
                        "the sense that emits them, and no sense has that name",
                        filename,
                    )
                )
    return issues


def _unknown_groups(
    data: dict[Any, Any], lines: dict[KeyPath, int], filename: str
) -> list[ConfigIssue]:
    senses, groups = data.get("senses"), data.get("groups")
    if not isinstance(groups, dict):
        return []
    used = {"default"}
    if isinstance(senses, dict):
        used |= {body.get("group", "default") for body in senses.values() if isinstance(body, dict)}
    issues = []
    for name in groups:
        if isinstance(name, str) and check_name(name).ok and name not in used:
            path: KeyPath = ("groups", name)
            issues.append(
                ConfigIssue(
                    _format_path(path),
                    _line(lines, path),
                    f'no sense is in group "{name}"',
                    filename,
                )
            )
    return issues


def _reflex_items(data: dict[Any, Any]) -> Iterator[tuple[int, dict[Any, Any]]]:
    reflexes = data.get("reflexes")
    if isinstance(reflexes, list):
        for index, reflex in enumerate(reflexes):
            if isinstance(reflex, dict):
                yield index, reflex


def _from_validation_error(
    exc: ValidationError, lines: dict[KeyPath, int], filename: str
) -> list[ConfigIssue]:
    issues = []
    for error in exc.errors(include_url=False):
        loc: KeyPath = tuple(part for part in error["loc"] if part != "[key]")
        issues.append(
            ConfigIssue(_format_path(loc), _line(lines, loc), _message(error, loc), filename)
        )
    return issues


def _message(error: Any, loc: KeyPath) -> str:
    kind = error["type"]
    value = error.get("input")
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        allowed = ", ".join(model.model_fields) if model else ""
        return f"unknown key (allowed: {allowed})" if allowed else "unknown key"
    if kind == "missing":
        return "missing required key"
    if kind in ("duration", "name", "size", "cron", "timezone"):
        return str(error["msg"])
    if kind in ("dict_type", "model_type"):
        return f"expected a mapping, got {_show(value)}"
    if kind in ("list_type", "tuple_type"):
        return f"expected a list, got {_show(value)}"
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    if kind in ("literal_error", "enum"):
        expected = error.get("ctx", {}).get("expected", "")
        return f"must be {expected}, got {_show(value)}"
    message = str(error["msg"]).removeprefix("Input ")
    return f"{message}, got {_show(value)}"


def _model_at(loc: KeyPath) -> type[BaseModel] | None:
    for pattern, model in _SECTION_MODELS.items():
        if len(pattern) == len(loc) and all(
            p in ("*", part) for p, part in zip(pattern, loc, strict=True)
        ):
            return model
    return None


def _line(lines: dict[KeyPath, int], loc: KeyPath) -> int | None:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _format_path(loc: KeyPath) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _show(value: object) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)
