"""``macros``, Airflow's template filters and the DAG's template options, rendered in process."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jinja2
import pytest

from headrace import DAG
from headrace.authoring import macros
from headrace.authoring.context import TEMPLATE_FILTERS, make_jinja_env
from headrace.exceptions import DagDefinitionError


def test_ds_add_and_ds_format() -> None:
    assert macros.ds_add("2015-01-01", 5) == "2015-01-06"
    assert macros.ds_add("2015-01-06", -5) == "2015-01-01"
    assert macros.ds_add("2015-01-06", 0) == "2015-01-06"
    assert macros.ds_format("1/5/2015", "%m/%d/%Y", "%Y-%m-%d") == "2015-01-05"
    with pytest.raises(ValueError, match="does not match format"):
        macros.ds_add("20150101", 1)


def test_datetime_diff_for_humans() -> None:
    base = datetime(2026, 1, 10, tzinfo=UTC)
    assert macros.datetime_diff_for_humans(base - timedelta(days=2), base) == "2 days before"
    assert macros.datetime_diff_for_humans(base + timedelta(hours=3), base) == "3 hours after"
    assert macros.datetime_diff_for_humans(base + timedelta(days=400), base) == "1 year after"
    assert macros.datetime_diff_for_humans(datetime.now(UTC) - timedelta(minutes=5)) == "5 minutes ago"
    assert macros.datetime_diff_for_humans(datetime.now(UTC) + timedelta(days=8, minutes=1)) == "in 1 week"


def test_the_modules_airflow_exposes() -> None:
    env = make_jinja_env()
    rendered = env.from_string(
        "{{ macros.json.dumps({'a': 1}) }} {{ macros.uuid.UUID(int=1).int }} {{ macros.time.time() > 0 }} "
        "{{ 0 <= macros.random() < 1 }} {{ macros.dateutil.relativedelta.relativedelta(months=1).months }} "
        "{{ macros.yaml.safe_dump([1]).strip() }} {{ macros.datetime(2026, 1, 1) + macros.timedelta(days=1) }}"
    ).render(macros=macros)
    assert rendered == '{"a": 1} 1 True True 1 - 1 2026-01-02T00:00:00'
    with pytest.raises(AttributeError, match="Hive provider"):
        _ = macros.hive  # type: ignore[attr-defined]


def test_ds_format_locale_formats_with_babel_patterns_in_a_locale() -> None:
    """Airflow's macro: strptime's input format, Babel's output pattern, the locale's names."""
    assert macros.ds_format_locale("1/5/2015", "%m/%d/%Y", "EEEE dd MMMM Y", "en_US") == "Monday 05 January 2015"
    assert macros.ds_format_locale("2015-01-05", "%Y-%m-%d", "EEEE d MMMM y", "nl_BE") == "maandag 5 januari 2015"
    assert macros.ds_format_locale("2015-01-05", "%Y-%m-%d", "EEE d MMM", "fr_FR") == "lun. 5 janv."
    with pytest.raises(ValueError, match="does not match format"):
        macros.ds_format_locale("05.01.2015", "%Y-%m-%d", "y", "en_US")


def test_airflow_filters_format_any_datetime_and_keep_none() -> None:
    when = datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)
    env = make_jinja_env()
    out = env.from_string(
        "{{ w | ds }} {{ w | ds_nodash }} {{ w | ts }} {{ w | ts_nodash }} {{ w | ts_nodash_with_tz }}"
    )
    assert out.render(w=when) == "2026-02-03 20260203 2026-02-03T04:05:06+00:00 20260203T040506 20260203T040506+0000"
    assert {name: f(None) for name, f in TEMPLATE_FILTERS.items()} == dict.fromkeys(TEMPLATE_FILTERS)


def test_dag_template_options() -> None:
    with DAG(
        "opts",
        user_defined_macros={"who": "ann", "ds": "shadowed"},
        user_defined_filters={"twice": lambda s: s * 2},
        template_undefined=jinja2.Undefined,
        jinja_environment_kwargs={"trim_blocks": True},
    ) as dag:
        pass
    env = make_jinja_env(dag)
    assert env.from_string("{{ who | twice }}{{ missing }}").render() == "annann"  # lenient Undefined
    assert env.from_string("{{ ds }}").render(ds="2026-01-01") == "2026-01-01"  # a context key wins over a macro
    assert env.trim_blocks
    native = make_jinja_env(DAG("native", render_template_as_native_obj=True))
    assert native.from_string("{{ [1] + [n] }}").render(n=2) == [1, 2]
    assert make_jinja_env(dag, native=True).from_string("{{ n }}").render(n=3) == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"user_defined_macros": ["x"]}, "user_defined_macros must be a dict, got list"),
        ({"user_defined_filters": {"f": 1}}, "user_defined_filters['f'] is not callable"),
        ({"template_undefined": "strict"}, "template_undefined must be a class"),
        ({"jinja_environment_kwargs": 1}, "jinja_environment_kwargs must be a dict"),
    ],
)
def test_bad_template_options_name_the_argument(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(DagDefinitionError, match=message.replace("[", r"\[").replace("]", r"\]")):
        DAG("bad", **kwargs)  # type: ignore[arg-type]


def test_templates_render_in_the_sandbox_and_a_task_may_override_native() -> None:
    from headrace.operators import BashOperator, PythonOperator

    env = make_jinja_env()
    with pytest.raises(
        jinja2.exceptions.SecurityError, match="access to attribute '__class__' of 'str' object is unsafe"
    ):
        env.from_string("{{ ''.__class__.__mro__[1].__subclasses__() }}").render()
    assert env.from_string("{% set x = [] %}{% do x.append(1) %}{{ x }}").render() == "[1]"

    with DAG("native_dag", render_template_as_native_obj=True):
        as_text = PythonOperator(
            task_id="text", python_callable=print, op_kwargs={"n": "{{ 1 + 1 }}"}, render_template_as_native_obj=False
        )
        as_object = PythonOperator(task_id="obj", python_callable=print, op_kwargs={"n": "{{ 1 + 1 }}"})
        bash = BashOperator(task_id="bash", bash_command="echo {{ 1 + 1 }}")
    for task in (as_text, as_object, bash):
        task.render_template_fields({})
    assert as_text.op_kwargs == {"n": "2"} and as_object.op_kwargs == {"n": 2}
    assert bash.bash_command == "echo 2" and not bash.ignored_arguments
