"""Virtualenvs of PythonVirtualenvOperator: built once per spec, reused, one builder at a time, pip's error kept."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from headrace.authoring.venv_cache import (
    MARKER,
    VenvSpec,
    VirtualenvError,
    as_lines,
    find_python,
    prepare_venv,
    venv_python,
)

from .tiny_wheel import make_wheel


def _spec(wheels: Path, requirement: str = "tinypkg==0.1") -> VenvSpec:
    return VenvSpec(
        requirements=(requirement,),
        system_site_packages=False,
        pip_install_options=("--no-index", "--find-links", str(wheels)),
    )


def _value(venv: Path) -> str:
    out = subprocess.run(
        [str(venv_python(venv)), "-c", "import tinypkg; print(tinypkg.VALUE)"], capture_output=True, text=True
    )
    return out.stdout.strip() or out.stderr


def test_built_once_then_reused(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    make_wheel(wheels)
    venv, built = prepare_venv(tmp_path / "cache", _spec(wheels))
    assert built and (venv / MARKER).exists()
    assert _value(venv) == "42"
    again, built_again = prepare_venv(tmp_path / "cache", _spec(wheels))
    assert (again, built_again) == (venv, False)
    other, built_other = prepare_venv(tmp_path / "cache", VenvSpec(system_site_packages=False))
    assert built_other and other != venv  # another spec, another venv


def test_two_tries_building_at_once_build_it_once(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    make_wheel(wheels)
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda _: prepare_venv(tmp_path / "cache", _spec(wheels)), range(2)))
    assert sorted(built for _, built in results) == [False, True]
    assert results[0][0] == results[1][0]
    assert _value(results[0][0]) == "42"


def test_a_build_that_did_not_finish_is_redone(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    make_wheel(wheels)
    spec = _spec(wheels)
    half = tmp_path / "cache" / f"venv-{spec.key()}"
    half.mkdir(parents=True)
    (half / "junk").write_text("a killed build left this")
    venv, built = prepare_venv(tmp_path / "cache", spec)
    assert built and venv == half and not (half / "junk").exists()
    assert _value(venv) == "42"


def test_a_failed_pip_install_raises_with_pips_message_and_leaves_nothing(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    make_wheel(wheels)
    spec = _spec(wheels, "tinypkg==9.9")
    with pytest.raises(VirtualenvError) as info:
        prepare_venv(tmp_path / "cache", spec)
    first_line = str(info.value).splitlines()[0]
    assert "pip could not install ['tinypkg==9.9']" in first_line
    assert "No matching distribution found for tinypkg==9.9" in first_line
    assert not (tmp_path / "cache" / f"venv-{spec.key()}").exists()


def test_python_version_without_interpreter_is_a_clear_error() -> None:
    with pytest.raises(VirtualenvError, match=r"python_version '2\.9': no interpreter python2\.9"):
        find_python("2.9")
    with pytest.raises(VirtualenvError, match="python_version must look like"):
        find_python("latest")
    assert find_python("3").endswith("python3")


def test_requirements_as_string_or_list() -> None:
    assert as_lines("a==1\n# comment\n\nb>2\n") == ("a==1", "b>2")
    assert as_lines(["a", " b "]) == ("a", "b")
    assert as_lines(None) == ()


def test_python_version_picks_that_interpreter(tmp_path: Path) -> None:
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    venv, built = prepare_venv(tmp_path / "cache", VenvSpec(python_version=version, system_site_packages=False))
    out = subprocess.run(
        [
            str(venv_python(venv)),
            "-c",
            "import sys; print('%d.%d' % sys.version_info[:2], sys.prefix != sys.base_prefix)",
        ],
        capture_output=True,
        text=True,
    )
    assert built and out.stdout.split() == [version, "True"]
