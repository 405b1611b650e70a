from __future__ import annotations

import os
from pathlib import Path

import pytest

from headrace.config import load_settings
from headrace.exceptions import ConfigError


def test_defaults_fit_the_machine(tmp_path: Path) -> None:
    s = load_settings({"HEADRACE_HOME": str(tmp_path)})
    assert s.parallelism == len(os.sched_getaffinity(0))
    assert s.database_url == f"sqlite:///{tmp_path / 'headrace.db'}"
    assert s.dags_folder == tmp_path / "dags"
    assert s.sources["core"]["parallelism"] == "default"


def test_env_beats_file_beats_default(tmp_path: Path) -> None:
    (tmp_path / "headrace.toml").write_text("[core]\nparallelism = 3\nmax_active_runs_per_dag = 2\n")
    s = load_settings({"HEADRACE_HOME": str(tmp_path), "HEADRACE__CORE__PARALLELISM": "8"})
    assert s.parallelism == 8 and s.sources["core"]["parallelism"] == "env"
    assert s.get("core", "max_active_runs_per_dag") == 2
    assert s.sources["core"]["max_active_runs_per_dag"] == "file"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HEADRACE__CORE__PARALLELISM": "0"}, "core.parallelism (from env HEADRACE__CORE__PARALLELISM): 0 is below"),
        ({"HEADRACE__CORE__PARALLELISM": "many"}, "expected int, got 'many'"),
        ({"HEADRACE__CORE__EXECUTOR": "kubernetes"}, "is not one of sequential, local"),
        ({"HEADRACE__CORE__NOPE": "1"}, "unknown setting in environment variable HEADRACE__CORE__NOPE"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings({"HEADRACE_HOME": str(tmp_path), **env})


def test_bad_file(tmp_path: Path) -> None:
    (tmp_path / "headrace.toml").write_text("[scheduler]\nloop_intervl = 2\n")
    with pytest.raises(ConfigError, match="unknown key scheduler.loop_intervl"):
        load_settings({"HEADRACE_HOME": str(tmp_path)})
    (tmp_path / "headrace.toml").write_text("[core\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings({"HEADRACE_HOME": str(tmp_path)})


def test_typed_getters_give_the_declared_type_and_refuse_another() -> None:
    from headrace.config import load_settings

    settings = load_settings({"HEADRACE_HOME": "/tmp/headrace-typed"})
    assert isinstance(settings.get_float("scheduler", "loop_interval"), float)
    assert isinstance(settings.get_int("core", "parallelism"), int)
    assert isinstance(settings.get_str("database", "url"), str)
    assert isinstance(settings.get_bool("core", "load_examples"), bool)
    with pytest.raises(ConfigError, match="core.parallelism is not text"):
        settings.get_str("core", "parallelism")
    with pytest.raises(ConfigError, match="core.load_examples is not a number"):
        settings.get_float("core", "load_examples")
