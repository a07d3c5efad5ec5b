"""agent.toml: values land in Settings; every mistake is named by file, line and key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.config import (
    MAX_CONFIG_BYTES,
    ConfigError,
    Settings,
    load_config,
    parse_config,
    resolve_roots,
)

HOME = Path("/home/dev")

FULL = """\
# the agent's settings
[scan]
roots = ["~/models", "/srv/models"]
default_roots = true
excludes = ["*/.git", "node_modules"]
interval = 600
snapshot_interval = 7200.5

[hash]
rate_limit = 52_428_800
defer = true
cache_entries = 5000

[watch]
enabled = false
settle = 2

[spool]
max_bytes = 1_048_576
"""


def test_an_empty_file_gives_the_defaults() -> None:
    assert parse_config("", source="agent.toml") == Settings()


def test_every_key_lands_in_settings() -> None:
    assert parse_config(FULL, source="agent.toml", home=HOME) == Settings(
        roots=(HOME / "models", Path("/srv/models")),
        include_default_roots=True,
        excludes=("*/.git", "node_modules"),
        interval=600.0,
        snapshot_interval=7200.5,
        hash_bytes_per_second=52_428_800,
        defer_hash=True,
        hash_cache_entries=5000,
        watch=False,
        settle_seconds=2.0,
        spool_max_bytes=1_048_576,
    )


def test_a_zero_rate_limit_means_unthrottled() -> None:
    parsed = parse_config("[hash]\nrate_limit = 0\n", source="agent.toml")
    assert parsed.hash_bytes_per_second is None


def test_a_syntax_error_names_its_line() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("[scan]\ninterval = 5\nroots = [\n  '/a',\n  oops\n]\n", source="agent.toml")
    (problem,) = caught.value.problems
    assert problem.startswith("agent.toml:5: ")


def test_a_syntax_error_at_the_end_names_the_last_line() -> None:
    with pytest.raises(ConfigError, match=r"^agent.toml:2: "):
        parse_config("[scan]\ninterval =", source="agent.toml")


def test_a_bad_value_names_line_and_key() -> None:
    text = '[scan]\nroots = ["/m"]\ninterval = "fast"\n'
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="/etc/agent.toml")
    assert caught.value.problems == [
        "/etc/agent.toml:3: scan.interval: expected a number of seconds"
    ]


def test_every_problem_is_reported_at_once() -> None:
    text = (
        "[scan]\n"
        "interval = 0\n"
        "roots = ['relative/dir']\n"
        "colour = 'blue'\n"
        "[hash]\n"
        "defer = 'yes'\n"
        "[gpu]\n"
        "enabled = true\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="agent.toml")
    problems = caught.value.problems
    assert [p.split(": ")[0:2] for p in problems] == [
        ["agent.toml:2", "scan.interval"],
        ["agent.toml:3", "scan.roots"],
        ["agent.toml:4", "scan.colour"],
        ["agent.toml:6", "hash.defer"],
        ["agent.toml:7", "gpu"],
    ]
    assert "unknown key" in problems[2] and "unknown table" in problems[4]
    assert "relative/dir" in problems[1]


def test_dotted_and_inline_keys_are_located_too() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("hash.defer = 1\nwatch = { settle = -1 }\n", source="a.toml")
    assert [p.split(": ")[0] for p in caught.value.problems] == ["a.toml:1", "a.toml:2"]


def test_a_table_must_be_a_table() -> None:
    with pytest.raises(ConfigError, match=r"a.toml:1: scan: expected a table"):
        parse_config("scan = 5\n", source="a.toml")


def test_booleans_are_not_numbers_and_infinity_is_not_a_duration() -> None:
    for text in (
        "[scan]\ninterval = true\n",
        "[scan]\ninterval = inf\n",
        "[scan]\ninterval = nan\n",
    ):
        with pytest.raises(ConfigError, match=r"scan\.interval"):
            parse_config(text, source="a.toml")
    with pytest.raises(ConfigError, match=r"spool\.max_bytes: expected an integer"):
        parse_config("[spool]\nmax_bytes = 1e9\n", source="a.toml")


def test_a_tilde_root_needs_a_home() -> None:
    with pytest.raises(ConfigError, match="no home directory"):
        parse_config("[scan]\nroots = ['~/models']\n", source="a.toml")


def test_load_reads_the_file_and_reports_its_path(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text("[watch]\nenabled = false\n")
    assert load_config(path).watch is False
    path.write_text("[watch]\nenabled = 'no'\n")
    with pytest.raises(ConfigError, match=rf"^{path}:2: watch.enabled: expected true or false"):
        load_config(path)


def test_a_missing_file_is_an_error_unless_allowed(tmp_path: Path) -> None:
    assert load_config(tmp_path / "agent.toml", missing_ok=True) == Settings()
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "agent.toml")


def test_bytes_that_are_not_utf8_or_too_many_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_bytes(b"[scan]\ninterval = 5\n# caf\xe9\n")
    with pytest.raises(ConfigError, match=r":3: not UTF-8"):
        load_config(path)
    path.write_bytes(b"#" * (MAX_CONFIG_BYTES + 1))
    with pytest.raises(ConfigError, match="larger than"):
        load_config(path)


def test_roots_fall_back_to_the_os_stores() -> None:
    stores = [Path("/s1"), Path("/s2")]
    assert resolve_roots(Settings(), stores) == tuple(stores)
    mine = Settings(roots=(Path("/m"), Path("/s1")))
    assert resolve_roots(mine, stores) == (Path("/m"), Path("/s1"))
    both = Settings(roots=(Path("/m"), Path("/s1")), include_default_roots=True)
    assert resolve_roots(both, stores) == (Path("/m"), Path("/s1"), Path("/s2"))


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_any_text_gives_settings_or_a_config_error(text: str) -> None:
    try:
        result = parse_config(text, source="fuzz.toml", home=HOME)
    except ConfigError as exc:
        assert exc.problems and all(p.startswith("fuzz.toml:") for p in exc.problems)
    else:
        assert isinstance(result, Settings)


_KEYS = {
    "scan": ["roots", "default_roots", "excludes", "interval", "snapshot_interval", "other"],
    "hash": ["rate_limit", "defer", "cache_entries"],
    "watch": ["enabled", "settle"],
    "spool": ["max_bytes"],
    "extra": ["x"],
}
_VALUES = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.lists(st.text(max_size=12), max_size=4),
    st.lists(st.integers(), max_size=3),
)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # inf and nan are spelled the same in TOML
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)  # ints, and strings as basic strings


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(sorted(_KEYS)),
        st.dictionaries(st.sampled_from(sorted({k for ks in _KEYS.values() for k in ks})), _VALUES),
    )
)
def test_well_formed_documents_of_any_values_give_settings_or_errors_with_keys(
    doc: dict[str, dict[str, object]],
) -> None:
    text = "".join(
        f"[{table}]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in body.items())
        for table, body in doc.items()
    )
    try:
        parse_config(text, source="gen.toml", home=HOME)
    except ConfigError as exc:
        for problem in exc.problems:
            where, _, rest = problem.partition(": ")
            assert where.startswith("gen.toml:") and int(where.split(":")[1]) >= 1
            syntax = "(at line" in rest or "(at end of document)" in rest
            assert syntax or rest.split(":")[0].split(".")[0] in doc


SERVICE = """\
[scan]
users = true
homes = false

[health]
interval = 30

[watchdog]
enabled = true
cpu_share = 0.2
window = 120
memory_mb = 300
quarantine = 3600

[pause]
on_battery = false
busy_percent = 75
"""


def test_service_keys_land_in_settings() -> None:
    parsed = parse_config(SERVICE, source="agent.toml")
    assert (parsed.users, parsed.homes, parsed.health_interval) == (True, False, 30.0)
    assert (parsed.watchdog_cpu_share, parsed.watchdog_window) == (0.2, 120.0)
    assert parsed.watchdog_memory_bytes == 300 * 2**20
    assert (parsed.quarantine_seconds, parsed.pause_on_battery) == (3600.0, False)
    assert parsed.pause_busy_percent == 75.0


def _cli(*argv: str) -> tuple[int, str, str]:
    import io

    from agent.cli import main

    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), out=out, err=err)
    return status, out.getvalue(), err.getvalue()


def test_config_check_prints_every_problem_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text("[scan]\ninterval = -1\n\n[watchdog]\nmemory_mb = 1\ncolour = 'red'\n")
    status, out, _ = _cli("config", "check", "--config", str(path))
    assert status == 1
    assert f"{path}:2: scan.interval:" in out
    assert f"{path}:5: watchdog.memory_mb:" in out
    assert f"{path}:6: watchdog.colour: unknown key" in out
    assert out.endswith("3 problems\n")
    path.write_text("[scan]\ninterval = 60\n")
    assert _cli("config", "check", "--config", str(path)) == (0, f"{path}: ok\n", "")


def test_a_config_error_comes_before_not_enrolled(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text("[scan]\ninterval = 'soon'\n")
    status, _, err = _cli("--data-dir", str(tmp_path / "d"), "run", "--once", "--config", str(path))
    assert status == 2
    assert f"{path}:2: scan.interval" in err
    assert "not enrolled" not in err
    missing = tmp_path / "nowhere.toml"
    status, _, err = _cli("--data-dir", str(tmp_path / "d"), "run", "--config", str(missing))
    assert (status, err) == (2, f"error: {missing}: no such file\n")


def test_the_config_lives_where_administrators_look_on_each_os() -> None:
    from agent.platform import Platform

    home = Path("/home/dev")
    assert Platform("linux", home, {}).config_path() == Path("/etc/shadowai/agent.toml")
    assert Platform("macos", home, {}).config_path() == Path(
        "/Library/Application Support/shadowai/agent.toml"
    )
    windows = Platform("windows", home, {"PROGRAMDATA": r"D:\PD"})
    assert str(windows.config_path()).endswith("agent.toml") and "shadowai" in str(
        windows.config_path()
    )
    assert Platform("linux", home, {"SHADOWAI_AGENT_CONFIG": "/x.toml"}).config_path() == Path(
        "/x.toml"
    )
    assert Platform("linux", home, {}, system=True).data_dir() == Path("/var/lib/shadowai-agent")


def test_configured_roots_are_watched_and_service_homes_are_only_scanned(tmp_path: Path) -> None:
    import argparse

    from agent.run_command import run_settings

    config = tmp_path / "agent.toml"
    config.write_text(f'[scan]\nroots = ["{tmp_path}"]\n')
    args = argparse.Namespace(
        config=config, path=[], default_paths=False, exclude=[], interval=None
    )
    settings = run_settings(args)
    assert settings.roots == settings.watch_roots == (tmp_path,)
