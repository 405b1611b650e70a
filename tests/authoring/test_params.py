"""Param and ParamsDict: Airflow's names, JSON-schema validation, and the parse-time rules of a DAG's params."""

from __future__ import annotations

import copy
import subprocess
import sys
from datetime import datetime, timedelta

import pytest

from headrace import DAG, dag
from headrace.authoring.params import (
    NOTSET,
    Param,
    ParamsDict,
    params_from_specs,
    resolve_params,
)
from headrace.exceptions import DagDefinitionError, DagRunConfError, ParamValidationError


def refusal(param: Param, value: object) -> str:
    """The message of ``param.resolve(value)``, which must refuse it."""
    with pytest.raises(ParamValidationError) as info:
        param.resolve(value, name="p")
    assert info.value.param == "p"
    return str(info.value)


def test_importable_from_headrace_and_airflow_names() -> None:
    import headrace

    assert headrace.Param is Param and headrace.ParamsDict is ParamsDict
    assert issubclass(ParamValidationError, DagRunConfError) and ParamValidationError.http_status == 400


def test_type_minimum_maximum() -> None:
    p = Param(5, type="integer", minimum=1, maximum=10, title="Count", description="how many")
    assert p.resolve() == 5 and p.resolve(10) == 10 and p.value == 5
    assert refusal(p, 11) == "param 'p': 11 is greater than the maximum 10"
    assert refusal(p, 0) == "param 'p': 0 is less than the minimum 1"
    assert refusal(p, "7") == "param 'p': \"7\" is not of type integer"
    assert refusal(p, 2.5) == "param 'p': 2.5 is not of type integer"
    assert refusal(p, None) == "param 'p': null is not of type integer"


def test_enum_const_and_values_display() -> None:
    env = Param("dev", type="string", enum=["dev", "prod"], values_display={"dev": "Development", "prod": "Live"})
    assert env.resolve("prod") == "prod"
    assert refusal(env, "qa") == 'param \'p\': "qa" is not one of ["dev", "prod"]'
    fixed = Param(3, const=3)
    assert refusal(fixed, 4) == "param 'p': 4 is not 3"


def test_nullable_through_a_list_of_types() -> None:
    p = Param(None, type=["null", "string"], minLength=2)
    assert p.resolve() is None and p.resolve("ab") == "ab"
    assert refusal(p, "a") == "param 'p': \"a\" is too short"
    assert refusal(p, 3) == "param 'p': 3 is not of type null or string"
    assert refusal(Param("x", type="string"), None) == "param 'p': null is not of type string"


def test_formats_are_checked() -> None:
    day = Param("2026-01-31", type="string", format="date")
    assert refusal(day, "2026-02-30").startswith("param 'p': \"2026-02-30\" is not a valid date")
    when = Param("2026-01-31T06:00:00+00:00", type="string", format="date-time")
    assert when.resolve("2026-01-31T06:00:00Z") == "2026-01-31T06:00:00Z"
    assert "needs a UTC offset" in refusal(when, "2026-01-31T06:00:00")
    assert "is not a valid date-time" in refusal(when, "tomorrow")
    assert "is not a valid email" in refusal(Param("a@b.c", format="email"), "not-an-address")
    assert Param("text", type="string", format="multiline").resolve("two\nlines") == "two\nlines"  # a UI hint


def test_arrays_and_objects_name_where_in_the_value() -> None:
    p = Param([1, 2], type="array", items={"type": "integer"}, minItems=1)
    assert refusal(p, [1, "a"]) == "param 'p': at [1]: \"a\" is not of type integer"
    o = Param({"a": 1}, type="object", properties={"a": {"type": "integer"}}, required=["a"])
    assert refusal(o, {"a": "x"}) == "param 'p': at ['a']: \"x\" is not of type integer"
    assert refusal(o, {}) == "param 'p': 'a' is a required property"


def test_schema_argument_and_no_default() -> None:
    p = Param(description="the table", schema={"type": "string", "pattern": "^[a-z_]+$"})
    assert not p.has_value and p.value is NOTSET and p.schema == {"type": "string", "pattern": "^[a-z_]+$"}
    assert refusal(p, NOTSET) == "param 'p': no value given and the param has no default"
    assert p.resolve("users") == "users"
    assert p.resolve("Users", suppress_exception=True) is None
    assert Param(None).has_value  # None is a value (JSON null), not "no default"


def test_bad_schema_or_default_is_a_definition_error() -> None:
    with pytest.raises(DagDefinitionError, match="not a valid JSON schema"):
        Param(1, type="integr")
    with pytest.raises(DagDefinitionError, match="not JSON-serializable"):
        Param(datetime(2026, 1, 1))


def test_long_values_are_cut_in_messages() -> None:
    message = refusal(Param("x", type="string", maxLength=3), "y" * 500)
    assert len(message) < 200 and "…" in message


def test_serialize_round_trip() -> None:
    p = Param("dev", "where", type="string", enum=["dev", "prod"], title="Env")
    data = p.serialize()
    assert data == {
        "default": "dev",
        "description": "where",
        "schema": {"enum": ["dev", "prod"], "title": "Env", "type": "string"},
    }
    assert Param.deserialize(data) == p
    assert "default" not in Param(type="integer").serialize()
    assert not Param.deserialize(Param(type="integer").serialize()).has_value


def test_params_dict_reads_values_and_keeps_schemas() -> None:
    params = ParamsDict({"n": Param(3, type="integer", minimum=1), "plain": "hi"})
    assert dict(params) == {"n": 3, "plain": "hi"} and params["n"] == 3
    assert params.get_param("n").schema == {"type": "integer", "minimum": 1}
    params["n"] = 7  # a plain value over a Param: checked against its schema, schema kept
    assert params["n"] == 7 and params.get_param("n").schema["type"] == "integer"
    with pytest.raises(ParamValidationError, match=r"param 'n': 0 is less than the minimum 1"):
        params["n"] = 0
    assert params["n"] == 7  # the refused value is not kept
    params["n"] = Param("any")  # a Param replaces
    assert params["n"] == "any" and params.get_param("n").schema == {}
    params["new"] = [1]
    assert params.get_param("new").schema == {} and params.validate() == {"n": "any", "plain": "hi", "new": [1]}
    other = copy.copy(params)
    other["plain"] = "changed"
    assert params["plain"] == "hi"
    required = ParamsDict({"table": Param(type="string")})
    assert ParamsDict(required).get_param("table") == required.get_param("table")  # copying resolves nothing
    assert ParamsDict(required).get_param("table") is not required.get_param("table")
    relaxed = ParamsDict({"n": Param(1, type="integer")}, suppress_exception=True)
    relaxed["n"] = "x"
    assert relaxed["n"] is None


def test_resolve_params_conf_overrides_then_validates() -> None:
    params = ParamsDict({"n": Param(3, type="integer"), "table": Param(type="string"), "env": "dev"})
    assert resolve_params(params, {"table": "users", "extra": [1]}) == {
        "n": 3,
        "table": "users",
        "env": "dev",
        "extra": [1],
    }
    with pytest.raises(ParamValidationError) as info:
        resolve_params(params, {"n": 5})
    assert (info.value.param, info.value.reason) == ("table", "no value given and the param has no default")
    with pytest.raises(ParamValidationError) as info:
        resolve_params(params, {"n": "five", "table": "t"})
    assert str(info.value) == "param 'n': \"five\" is not of type integer" and info.value.param == "n"
    assert params_from_specs(params.serialize()).serialize() == params.serialize()


def test_dag_with_an_invalid_default_fails_at_its_line() -> None:
    with pytest.raises(DagDefinitionError) as info:
        DAG("bad_default", params={"n": Param("x", type="integer")})
    line = info.value.lineno
    assert info.value.fileloc == __file__ and line is not None
    assert str(info.value) == f"{__file__}:{line}: DAG 'bad_default': param 'n': \"x\" is not of type integer"


def test_a_scheduled_dag_needs_a_default_for_every_param() -> None:
    DAG("manual_only", params={"table": Param(type="string")})  # triggered runs must give it
    with pytest.raises(DagDefinitionError, match="param 'table' has no default, but the DAG has a schedule") as info:
        DAG(
            "scheduled",
            schedule=timedelta(days=1),
            start_date=datetime(2026, 1, 1),
            params={"table": Param(type="string")},
        )
    assert info.value.fileloc == __file__


def test_dag_params_mix_plain_values_and_params() -> None:
    d = DAG("mixed", params={"n": 1, "env": Param("dev", enum=["dev", "prod"])})
    assert isinstance(d.params, ParamsDict) and dict(d.params) == {"n": 1, "env": "dev"}
    assert d.params.get_param("env").schema == {"enum": ["dev", "prod"]}


def test_dag_decorator_arguments_keep_declared_schemas() -> None:
    @dag(params={"n": Param(3, type="integer", minimum=1)})
    def counted(n: int = 5, label: object = Param("x", type="string")) -> None:
        pass

    built = counted()
    assert dict(built.params) == {"n": 5, "label": "x"}
    assert built.params.get_param("n").schema == {"type": "integer", "minimum": 1}
    assert built.params.get_param("label").schema == {"type": "string"}
    with pytest.raises(DagDefinitionError, match="DAG 'counted': param 'n': 0 is less than the minimum 1") as info:
        counted(n=0)
    assert info.value.fileloc == __file__


def test_plain_params_do_not_import_jsonschema() -> None:
    """jsonschema is imported on the first schema to check: DAGs with plain-value params never load it."""
    code = (
        "import sys\n"
        "from headrace import DAG\n"
        "DAG('plain', params={'n': 1, 'tags': ['a']})\n"
        "assert 'jsonschema' not in sys.modules, 'imported for plain params'\n"
        "from headrace import Param\n"
        "Param(1, type='integer').resolve(2)\n"
        "assert 'jsonschema' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
