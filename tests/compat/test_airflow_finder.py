"""core.airflow_imports: Airflow's import paths give headrace's objects, or an ImportError naming the feature."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from headrace.compat.airflow_finder import install_airflow_imports, installed
from headrace.compat.airflow_names import MODULES, NotSupported, is_available
from headrace.config import Settings, load_settings
from headrace.exceptions import ConfigError


def make_settings(tmp_path: Path, airflow_imports: bool) -> Settings:
    return load_settings(
        {"HEADRACE_HOME": str(tmp_path / "home"), "HEADRACE__CORE__AIRFLOW_IMPORTS": str(airflow_imports).lower()}
    )


def test_off_by_default_installs_nothing(tmp_path: Path) -> None:
    settings = load_settings({"HEADRACE_HOME": str(tmp_path)})
    assert settings.get_bool("core", "airflow_imports") is False
    assert install_airflow_imports(settings) is False
    assert not installed()
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("airflow.sdk")


def test_airflow_paths_give_headrace_objects(tmp_path: Path) -> None:
    assert install_airflow_imports(make_settings(tmp_path, True))
    from airflow.exceptions import AirflowFailException, AirflowSkipException  # type: ignore[import-not-found]
    from airflow.operators.dummy import DummyOperator  # type: ignore[import-not-found]
    from airflow.providers.standard.operators.bash import BashOperator  # type: ignore[import-not-found]
    from airflow.sdk import DAG, task  # type: ignore[import-not-found]
    from airflow.timetables.trigger import CronTriggerTimetable  # type: ignore[import-not-found]
    from airflow.utils.trigger_rule import TriggerRule  # type: ignore[import-not-found]

    import headrace
    import headrace.exceptions
    import headrace.operators
    import headrace.timetables

    assert DAG is headrace.DAG and task is headrace.task and TriggerRule is headrace.TriggerRule
    assert BashOperator is headrace.operators.BashOperator
    assert DummyOperator is headrace.operators.EmptyOperator  # Airflow 2's name of the same operator
    assert CronTriggerTimetable is headrace.timetables.CronTriggerTimetable
    assert AirflowSkipException is headrace.exceptions.SkipTask
    assert AirflowFailException is headrace.exceptions.FailTask
    import airflow.operators.python as python_module  # type: ignore[import-not-found]

    assert python_module.PythonOperator is headrace.operators.PythonOperator


def test_airflow_context_type_is_headrace_s(tmp_path: Path) -> None:
    """``Context`` for annotations, from Airflow 3's and Airflow 2's paths."""
    assert install_airflow_imports(make_settings(tmp_path, True))
    from airflow.sdk import Context  # type: ignore[import-not-found]
    from airflow.utils.context import Context as Context2  # type: ignore[import-not-found]

    import headrace.types

    assert Context is headrace.types.Context and Context2 is headrace.types.Context


def test_airflow_sensor_paths_give_headrace_sensors(tmp_path: Path) -> None:
    """Airflow 3's standard provider paths, Airflow 2's ``airflow.sensors.*`` and the Task SDK's names."""
    assert install_airflow_imports(make_settings(tmp_path, True))
    from airflow.exceptions import AirflowRescheduleException, AirflowSensorTimeout  # type: ignore[import-not-found]
    from airflow.providers.standard.exceptions import ExternalTaskFailedError  # type: ignore[import-not-found]
    from airflow.providers.standard.sensors.external_task import (  # type: ignore[import-not-found]
        ExternalTaskMarker,
        ExternalTaskSensor,
    )
    from airflow.providers.standard.sensors.filesystem import FileSensor  # type: ignore[import-not-found]
    from airflow.providers.standard.sensors.time import TimeSensor  # type: ignore[import-not-found]
    from airflow.sdk import BaseSensorOperator, PokeReturnValue  # type: ignore[import-not-found]
    from airflow.sensors.external_task import ExternalTaskSensor as Airflow2Sensor  # type: ignore[import-not-found]
    from airflow.sensors.python import PythonSensor  # type: ignore[import-not-found]
    from airflow.sensors.time_sensor import TimeSensor as Airflow2TimeSensor  # type: ignore[import-not-found]
    from airflow.sensors.weekday import DayOfWeekSensor  # type: ignore[import-not-found]

    import headrace.exceptions
    import headrace.sensors

    assert ExternalTaskSensor is Airflow2Sensor is headrace.sensors.ExternalTaskSensor
    assert ExternalTaskMarker is headrace.sensors.ExternalTaskMarker
    assert ExternalTaskFailedError is headrace.sensors.ExternalTaskFailedError

    assert FileSensor is headrace.sensors.FileSensor and PythonSensor is headrace.sensors.PythonSensor
    assert TimeSensor is Airflow2TimeSensor is headrace.sensors.TimeSensor
    assert DayOfWeekSensor is headrace.sensors.DayOfWeekSensor
    assert BaseSensorOperator is headrace.sensors.BaseSensorOperator
    assert PokeReturnValue is headrace.sensors.PokeReturnValue
    assert AirflowSensorTimeout is headrace.exceptions.SensorTimeout
    assert AirflowRescheduleException is headrace.exceptions.RescheduleTask


@pytest.mark.parametrize(
    ("statement", "named"),
    [
        ("from airflow.sdk import Metadata", "airflow.sdk.Metadata: headrace does not support asset event metadata"),
        ("import airflow.providers.amazon.aws.operators.s3", "the amazon provider"),
        ("from airflow.sensors.smart_sensor import SmartSensorOperator", "does not support this sensor"),
        ("from airflow.models.dagrun import DagRun", "reading the metadata database from DAG files (DagRun)"),
        ("from airflow.models import TaskInstance", "reading the metadata database from DAG files (TaskInstance)"),
        ("from airflow.sdk import NoSuchThing", "airflow.sdk.NoSuchThing"),
    ],
)
def test_a_name_headrace_lacks_raises_an_import_error_naming_the_feature(
    tmp_path: Path, statement: str, named: str
) -> None:
    install_airflow_imports(make_settings(tmp_path, True))
    with pytest.raises(ImportError) as caught:
        exec(statement, {})
    assert named in str(caught.value)
    assert "not support" in str(caught.value)


def test_every_mapped_name_is_headrace_s_object_or_refused_never_wrong(tmp_path: Path) -> None:
    """Each entry of the table either resolves to the attribute it names or raises NotSupported."""
    install_airflow_imports(make_settings(tmp_path, True))
    for module, names in MODULES.items():
        imported = importlib.import_module(module)
        for name, target in names.items():
            if is_available(target):
                assert getattr(imported, name) is getattr(importlib.import_module(target.module), target.attr)
            else:
                with pytest.raises(NotSupported, match=target.feature.replace("(", r"\(").replace(")", r"\)")):
                    getattr(imported, name)


def test_refused_with_a_clear_message_when_a_real_airflow_is_importable(tmp_path: Path) -> None:
    fake_site = tmp_path / "site"
    (fake_site / "airflow").mkdir(parents=True)
    (fake_site / "airflow" / "__init__.py").write_text("")
    sys.path.insert(0, str(fake_site))
    importlib.invalidate_caches()
    with pytest.raises(ConfigError) as caught:
        install_airflow_imports(make_settings(tmp_path, True))
    assert "a real airflow package is importable" in str(caught.value)
    assert str(fake_site / "airflow") in str(caught.value)
    assert caught.value.key == "core.airflow_imports"
    assert not installed()


def test_the_scheduler_refuses_to_start(tmp_path: Path) -> None:
    """At start, in a real process: `headrace scheduler` with the setting on and an airflow package importable."""
    fake_site = tmp_path / "site"
    (fake_site / "airflow").mkdir(parents=True)
    (fake_site / "airflow" / "__init__.py").write_text("")
    env = {
        "HEADRACE_HOME": str(tmp_path / "home"),
        "HEADRACE__CORE__AIRFLOW_IMPORTS": "true",
        "HEADRACE__METRICS__SCHEDULER_PORT": "0",
        "PYTHONPATH": str(fake_site),
        "PATH": "/usr/bin:/bin",
    }
    migrate = subprocess.run(
        [sys.executable, "-m", "headrace", "db", "migrate"], env=env, capture_output=True, timeout=60
    )
    assert migrate.returncode == 0, migrate.stderr
    code = textwrap.dedent("""
        import sys
        sys.argv = ["headrace", "scheduler"]
        from headrace.cli.main import main
        main()
    """)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "core.airflow_imports is true, but a real airflow package is importable" in proc.stderr
