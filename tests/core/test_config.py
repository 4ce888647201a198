from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from nerve_core import CatchUp, NerveConfig, Overflow, load_nerve_config, parse_nerve_config
from nerve_core.errors import ConfigError

FULL = """\
max_rounds: 40
senses:
  cpu-usage:
    group: system
    throttle: 10s
    timeout: 1m30s
    grace_period: 5s
  disk-pressure:
  memory_usage: {}
reflexes:
  - kind: sense
    sense: cpu-usage
    interval: 30s
    on: [disk-pressure]
  - sense: disk-pressure
    interval: 500ms
workflows:
  cleanup:
    concurrency: 1
    overflow: drop
  code-review:
    concurrency: 3
    overflow: queue
    max_queue: 20
store:
  archive_after: 30d
  synchronous: full
"""


def parse_ok(text: str) -> NerveConfig:
    parsed = parse_nerve_config(textwrap.dedent(text))
    assert parsed.ok, str(parsed.error)
    return parsed.value


def parse_errors(text: str) -> list[str]:
    parsed = parse_nerve_config(textwrap.dedent(text))
    assert not parsed.ok, "expected the config to be rejected"
    return [str(issue) for issue in parsed.error]


def test_a_full_config_parses_with_every_value() -> None:
    config = parse_ok(FULL)
    assert config.max_rounds == 40
    cpu = config.senses["cpu-usage"]
    assert (cpu.group, cpu.throttle, cpu.timeout, cpu.grace_period) == ("system", 10, 90, 5)
    assert config.reflexes[0].on == ("disk-pressure",)
    assert config.reflexes[0].interval == 30
    assert config.reflexes[1].interval == 0.5
    assert config.workflows["code-review"].overflow is Overflow.QUEUE
    assert config.workflows["code-review"].max_queue == 20
    assert config.store.archive_after == 30 * 86400
    assert config.store.synchronous == "full"


def test_omitted_settings_take_their_documented_defaults() -> None:
    config = parse_ok(FULL)
    sense = config.senses["disk-pressure"]
    assert (sense.group, sense.throttle, sense.timeout, sense.grace_period) == (
        "default",
        0,
        30,
        0,
    )
    assert config.sense_groups() == {
        "system": ("cpu-usage",),
        "default": ("disk-pressure", "memory_usage"),
    }


def test_group_limits_parse_and_must_name_a_group_in_use() -> None:
    config = parse_ok(
        "senses:\n  a: {group: g}\ngroups:\n  g:\n    limits: {memory: 256MB, cpu_seconds: 30s}\n"
    )
    assert config.groups["g"].limits.memory == 256_000_000
    assert config.groups["g"].limits.cpu_seconds == 30
    errors = parse_errors("senses:\n  a: {}\ngroups:\n  other:\n    limits: {memory: lots}\n")
    assert errors == [
        'nerve.yaml:4: groups.other: no sense is in group "other"',
        'nerve.yaml:5: groups.other.limits.memory: invalid size "lots": expected e.g. 256MB, 1GiB or a number of bytes',
    ]


def test_an_empty_file_is_an_empty_workspace() -> None:
    config = parse_ok("")
    assert config.senses == {}
    assert config.max_rounds == 100


def test_the_on_key_is_a_key_not_a_yaml_1_1_boolean() -> None:
    config = parse_ok("senses:\n  a: {}\n  b: {}\nreflexes:\n  - sense: a\n    on: [b]\n")
    assert config.reflexes[0].on == ("b",)


def test_an_invalid_duration_names_file_line_and_key() -> None:
    errors = parse_errors(
        """\
        senses:
          a: {}
        reflexes:
          - sense: a
            interval: ten
        """
    )
    assert errors == [
        'nerve.yaml:5: reflexes[0].interval: invalid duration "ten": '
        "expected e.g. 500ms, 30s, 1m30s, 2h, 1d"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("colour: blue\n", "nerve.yaml:1: colour: unknown key"),
        ("senses:\n  a:\n    thottle: 1s\n", "nerve.yaml:3: senses.a.thottle: unknown key"),
        ("workflows:\n  w:\n    limit: 1\n", "nerve.yaml:3: workflows.w.limit: unknown key"),
        ("store:\n  keep: 1d\n", "nerve.yaml:2: store.keep: unknown key"),
        (
            "senses:\n  a: {}\nreflexes:\n  - sense: a\n    interval: 1s\n    every: 2s\n",
            "nerve.yaml:6: reflexes[0].every: unknown key",
        ),
    ],
)
def test_unknown_keys_are_errors_with_their_line(text: str, expected: str) -> None:
    errors = parse_errors(text)
    assert len(errors) == 1
    assert errors[0].startswith(expected)
    assert "allowed:" in errors[0]


def test_a_reflex_naming_a_workflow_is_rejected_with_how_to_start_one() -> None:
    errors = parse_errors(
        """\
        senses:
          disk: {}
        reflexes:
          - sense: disk
            interval: 1m
            workflow: cleanup
        """
    )
    assert len(errors) == 1
    assert errors[0].startswith("nerve.yaml:6: reflexes[0].workflow: reflexes only schedule senses")
    assert "nerve workflow trigger" in errors[0]


def test_a_reflex_for_an_undeclared_sense_is_an_error() -> None:
    errors = parse_errors("senses:\n  a: {}\nreflexes:\n  - sense: b\n    interval: 1s\n")
    assert errors == [
        'nerve.yaml:4: reflexes[0].sense: unknown sense "b": declare it under `senses:`'
    ]


def test_an_on_naming_an_undeclared_signal_is_an_error() -> None:
    errors = parse_errors(
        "senses:\n  a: {}\nreflexes:\n  - sense: a\n    on:\n      - a\n      - ghost\n"
    )
    assert len(errors) == 1
    assert errors[0].startswith('nerve.yaml:7: reflexes[0].on[1]: unknown signal "ghost"')


def test_a_reflex_may_listen_to_the_kernels_own_signals_and_only_to_those_that_exist() -> None:
    from nerve_core import KERNEL_SIGNALS, parse_nerve_config

    listed = ", ".join(f'"{name}"' for name in KERNEL_SIGNALS)
    good = parse_nerve_config(f"senses:\n  a: {{}}\nreflexes:\n  - sense: a\n    on: [{listed}]\n")
    assert good.ok, str(good.error)
    assert good.value.reflexes[0].on == tuple(KERNEL_SIGNALS)
    errors = parse_errors('senses:\n  a: {}\nreflexes:\n  - sense: a\n    on: ["@run.fail"]\n')
    assert len(errors) == 1
    assert errors[0].startswith(
        'nerve.yaml:5: reflexes[0].on[0]: unknown kernel signal "@run.fail" (known: @worker.crash,'
    )


def test_a_reflex_with_neither_interval_cron_nor_on_schedules_nothing_and_is_an_error() -> None:
    errors = parse_errors("senses:\n  a: {}\nreflexes:\n  - sense: a\n")
    assert errors == [
        "nerve.yaml:4: reflexes[0]: a reflex needs `interval`, `cron` or `on` (or a combination)"
    ]


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("senses:\n  CPU: {}\n", "nerve.yaml:2: senses.CPU: invalid name"),
        ("senses:\n  ../../etc: {}\n", "nerve.yaml:2: senses.../../etc: invalid name"),
        ("senses:\n  a:\n    group: My Group\n", "nerve.yaml:3: senses.a.group: invalid name"),
        ("workflows:\n  -w: {}\n", "nerve.yaml:2: workflows.-w: invalid name"),
        (
            "senses:\n  " + "a" * 65 + ": {}\n",
            "nerve.yaml:2: senses." + "a" * 65 + ": invalid name",
        ),
    ],
)
def test_names_outside_the_pattern_are_errors(text: str, path: str) -> None:
    errors = parse_errors(text)
    assert len(errors) == 1
    assert errors[0].startswith(path)


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("senses:\n  kernel: {}\n", "nerve.yaml:2: senses.kernel: invalid name"),
        ("workflows:\n  kernel: {}\n", "nerve.yaml:2: workflows.kernel: invalid name"),
    ],
)
def test_a_sense_or_workflow_named_like_the_kernels_own_rows_is_refused(
    text: str, path: str
) -> None:
    [error] = parse_errors(text)
    assert error.startswith(path)
    assert "reserved" in error


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("max_rounds: 1000001\n", "nerve.yaml:1: max_rounds:"),
        ("workflows:\n  w:\n    concurrency: 10001\n", "nerve.yaml:3: workflows.w.concurrency:"),
        ("senses:\n  a:\n    timeout: 99999999999d\n", "nerve.yaml:3: senses.a.timeout:"),
    ],
)
def test_numbers_past_their_bounds_are_errors_located_in_nerve_yaml(
    text: str, expected: str
) -> None:
    [error] = parse_errors(text)
    assert error.startswith(expected), error


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("workflows:\n  w:\n    concurrency: 0\n", "nerve.yaml:3: workflows.w.concurrency:"),
        ("workflows:\n  w:\n    concurrency: two\n", "nerve.yaml:3: workflows.w.concurrency:"),
        ("workflows:\n  w:\n    overflow: spill\n", "nerve.yaml:3: workflows.w.overflow: must be"),
        ("workflows:\n  w:\n    max_queue: -1\n", "nerve.yaml:3: workflows.w.max_queue:"),
        ("max_rounds: 0\n", "nerve.yaml:1: max_rounds:"),
        ("max_rounds: true\n", "nerve.yaml:1: max_rounds:"),
        (
            "senses:\n  a:\n    timeout: 0s\n",
            "nerve.yaml:3: senses.a.timeout: duration must be greater",
        ),
        ("senses: [a, b]\n", "nerve.yaml:1: senses: expected a mapping"),
        ("reflexes: {a: 1}\n", "nerve.yaml:1: reflexes: expected a list"),
        ("store:\n  synchronous: off\n", "nerve.yaml:2: store.synchronous: must be"),
    ],
)
def test_out_of_range_and_ill_typed_values_are_errors(text: str, expected: str) -> None:
    errors = parse_errors(text)
    assert len(errors) == 1
    assert errors[0].startswith(expected)


def test_every_problem_is_reported_in_line_order_not_only_the_first() -> None:
    errors = parse_errors(
        """\
        senses:
          a:
            throttle: soon
          B: {}
        reflexes:
          - sense: a
            interval: 1s
            workflow: cleanup
          - sense: ghost
            on: [phantom]
        workflows:
          w:
            overflow: spill
        """
    )
    lines = [int(error.split(":")[1]) for error in errors]
    assert lines == [3, 4, 8, 9, 10, 13]


def test_malformed_yaml_is_an_error_with_its_line() -> None:
    errors = parse_errors(
        "senses:\n  a: {}\nreflexes:\n  - sense: a\n    on: [a, b\n  - sense: c\n"
    )
    assert len(errors) == 1
    assert errors[0].startswith("nerve.yaml:6: invalid YAML")


def test_a_tab_indent_is_malformed_yaml_not_a_traceback() -> None:
    errors = parse_errors("senses:\n\ta: {}\n")
    assert errors[0].startswith("nerve.yaml:2: invalid YAML")


def test_a_top_level_that_is_not_a_mapping_is_an_error() -> None:
    assert parse_errors("- a\n- b\n") == [
        "nerve.yaml:1: expected a mapping of settings at the top level"
    ]


def test_a_duplicate_key_is_an_error_not_a_silent_override() -> None:
    errors = parse_errors("senses:\n  a: {}\n  a:\n    group: x\n")
    assert errors == ["nerve.yaml:3: senses.a: duplicate key"]


def test_an_alias_bomb_is_parsed_quickly_without_expanding() -> None:
    bomb = 'a: &a ["x","x","x","x","x","x","x","x","x"]\n'
    for index, prev in zip("bcdefghi", "abcdefgh", strict=True):
        bomb += (
            f"{index}: &{index} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
        )
    errors = parse_errors(bomb)
    assert all("unknown key" in error for error in errors)


def test_load_nerve_config_raises_config_error_with_every_issue(tmp_path: Path) -> None:
    path = tmp_path / "nerve.yaml"
    path.write_text("colour: blue\nmax_rounds: -1\n")
    with pytest.raises(ConfigError) as raised:
        load_nerve_config(path)
    assert len(raised.value.issues) == 2
    assert str(raised.value).splitlines()[0].startswith("nerve.yaml:1: colour: unknown key")


def test_load_nerve_config_reports_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "nerve.yaml"
    path.write_bytes(b"senses:\n  a: {}\n\xff\xfe\n")
    with pytest.raises(ConfigError, match="not valid UTF-8"):
        load_nerve_config(path)


TIMED = "senses:\n  a: {}\n  b: {}\nreflexes:\n  - sense: a\n"  # the reflex on line 5


@pytest.mark.parametrize(
    ("reflex", "error"),
    [
        (
            "    cron: '61 * * * *'\n",
            'nerve.yaml:6: reflexes[0].cron: invalid cron expression "61 * * * *": Bad minute',
        ),
        (
            "    cron: '* * *'\n",
            'nerve.yaml:6: reflexes[0].cron: invalid cron expression "* * *": expected five '
            "fields (minute hour day month weekday), got 3",
        ),
        (
            "    cron: '@reboot'\n",
            'nerve.yaml:6: reflexes[0].cron: invalid cron expression "@reboot": unknown name '
            "(known: @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly)",
        ),
        (
            "    cron: '0 9 * * *'\n    timezone: Mars/Olympus\n",
            'nerve.yaml:7: reflexes[0].timezone: unknown time zone "Mars/Olympus": expected an '
            "IANA name, e.g. Europe/Paris",
        ),
        (
            "    interval: 1m\n    timezone: UTC\n",
            "nerve.yaml:5: reflexes[0]: `timezone` applies to `cron` only (interval grids are on "
            "the epoch)",
        ),
        (
            "    interval: 1m\n    jitter: 1m\n",
            "nerve.yaml:5: reflexes[0]: `jitter` must be shorter than `interval`",
        ),
        (
            "    on: [b]\n    jitter: 1s\n",
            "nerve.yaml:5: reflexes[0]: `jitter` applies to `interval` and `cron` ticks only",
        ),
        (
            "    interval: 1m\n    catch_up: some\n",
            "nerve.yaml:7: reflexes[0].catch_up: must be 'none', 'last' or 'all', got \"some\"",
        ),
    ],
)
def test_a_bad_timer_reflex_is_refused_naming_the_line_the_key_and_why(
    reflex: str, error: str
) -> None:
    assert parse_errors(TIMED + reflex) == [error]


def test_a_timer_reflex_parses_with_cron_timezone_jitter_and_catch_up() -> None:
    config = parse_ok(
        TIMED
        + "    cron: '@daily'\n    timezone: Europe/Paris\n    jitter: 5m\n    catch_up: all\n"
        + "    interval: 1h\n"
    )
    reflex = config.reflexes[0]
    assert (reflex.cron, reflex.timezone, reflex.jitter) == ("@daily", "Europe/Paris", 300.0)
    assert (reflex.catch_up, reflex.interval, reflex.timed) == (CatchUp.ALL, 3600.0, True)
    assert parse_ok(TIMED + "    interval: 1h\n").reflexes[0].catch_up is CatchUp.LAST


def test_overlap_modes_parse_and_an_unknown_one_is_refused_naming_the_choices() -> None:
    config = parse_ok(
        "workflows:\n  w:\n    overflow: restart\n  q:\n    overflow: queue\n    evict: refuse\n"
    )
    assert str(config.workflows["w"].overflow) == "restart"
    assert str(config.workflows["q"].evict) == "refuse"
    assert str(config.workflows["w"].evict) == "oldest"  # the default
    assert parse_errors("workflows:\n  w:\n    evict: random\n") == [
        "nerve.yaml:3: workflows.w.evict: must be 'oldest', 'newest' or 'refuse', got \"random\""
    ]


def test_stall_and_timeout_settings_parse_with_their_defaults_and_bad_ones_name_the_key() -> None:
    config = parse_ok(
        "workflows:\n  w:\n    stall_after: 10m\n    on_stall: restart\n    timeout: 1h\n  v: {}\n"
    )
    w, v = config.workflows["w"], config.workflows["v"]
    assert (w.stall_after, str(w.on_stall), w.timeout) == (600.0, "restart", 3600.0)
    assert (v.stall_after, str(v.on_stall), v.timeout) == (None, "none", None)
    assert parse_errors("workflows:\n  w:\n    on_stall: kill\n") == [
        "nerve.yaml:3: workflows.w.on_stall: must be 'none', 'cancel' or 'restart', got \"kill\""
    ]
    [error] = parse_errors("workflows:\n  w:\n    stall_after: soon\n")
    assert error.startswith("nerve.yaml:3: workflows.w.stall_after: ")
