"""``headrace migrate airflow``: rewrite Airflow 2.x / 3.x DAG files to headrace's imports and Airflow 3's names.

The rewrite works on LibCST's concrete syntax tree, so everything it does
not change — comments, blank lines, quotes, formatting — stays as written.
What it changes:

* ``from airflow… import X`` → ``from headrace… import X`` for every name of
  :data:`~headrace.compat.airflow_names.MODULES` that headrace implements
  (``DummyOperator`` becomes ``EmptyOperator``, every use in the file too);
  names headrace lacks stay on an ``airflow`` import and are reported;
* Airflow 2 spellings that Airflow 3 removed (as Airflow's upgrade checks,
  the ruff rules AIR301/AIR302, describe them): ``schedule_interval=`` and
  ``timetable=`` → ``schedule=``, ``concurrency=`` → ``max_active_tasks=`` in
  ``DAG(...)`` / ``@dag(...)``; ``provide_context=`` dropped;
  ``days_ago(n)`` → the datetime it computed (midnight UTC, ``n`` days ago);
* template context keys in strings that hold Jinja (``{{ … }}``,
  ``{% … %}``) and context lookups (``context["…"]``, ``context.get("…")``):
  ``execution_date`` → ``logical_date``, ``next_execution_date`` →
  ``data_interval_end``, ``next_ds`` / ``next_ds_nodash`` →
  ``data_interval_end | ds`` / ``| ds_nodash``.

Every construct it cannot translate is a :class:`Finding` (file, line,
reason): a callable's parameter named after a removed context key
(``def f(execution_date)``), ``.execution_date`` read from a DAG run or task
instance in Python, a name or module headrace does not implement (a provider, asset
``Metadata`` …); sensor imports (``airflow.sensors.*``,
``airflow.providers.standard.sensors.*``) become ``headrace.sensors``, a context key with no Airflow 3 equivalent (``prev_ds``,
``tomorrow_ds`` …), a removed feature (``sla``, ``sla_miss_callback``,
SubDAGs), ``import airflow…`` module imports. A migrated file migrates to
itself (the rewrite is idempotent).
"""

from __future__ import annotations

import difflib
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import libcst as cst
from libcst.codemod import CodemodContext
from libcst.codemod.visitors import AddImportsVisitor
from libcst.metadata import MetadataWrapper, PositionProvider

from headrace.compat.airflow_names import MODULES, NotSupported, resolve_target, unsupported_module_feature


@dataclass(frozen=True)
class Finding:
    """One construct the migration could not translate."""

    path: str
    """The file, as given (relative to the folder migrated)."""
    line: int
    """1-based line in the original file."""
    reason: str
    """What it is and why it stays (one line)."""

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


@dataclass
class FileMigration:
    """The outcome for one file: its text before and after, and what could not be translated."""

    path: Path
    """The file read."""
    name: str
    """Its path relative to the folder migrated (for diffs and findings)."""
    original: str
    migrated: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """Whether the migration changed the file."""
        return self.original != self.migrated

    def diff(self) -> str:
        """A unified diff (``a/<name>`` → ``b/<name>``); empty when unchanged."""
        return "".join(
            difflib.unified_diff(
                self.original.splitlines(keepends=True),
                self.migrated.splitlines(keepends=True),
                fromfile=f"a/{self.name}",
                tofile=f"b/{self.name}",
            )
        )


# --- template context keys (Airflow 2 → Airflow 3) -------------------------------------------------

CONTEXT_RENAMES: dict[str, str] = {
    "execution_date": "logical_date",
    "next_execution_date": "data_interval_end",
}
"""Context keys Airflow 3 removed that have a same-valued replacement."""

TEMPLATE_FILTER_RENAMES: dict[str, str] = {
    "next_ds": "data_interval_end | ds",
    "next_ds_nodash": "data_interval_end | ds_nodash",
}
"""Context keys Airflow 3 removed whose value a template gets with a filter."""

CONTEXT_REMOVED: dict[str, str] = {
    "prev_ds": "use prev_data_interval_start_success or the previous run's data interval",
    "prev_ds_nodash": "use prev_data_interval_start_success or the previous run's data interval",
    "prev_execution_date": "use prev_data_interval_start_success or the previous run's data interval",
    "prev_execution_date_success": "use prev_data_interval_start_success",
    "tomorrow_ds": "use macros.ds_add(ds, 1)",
    "tomorrow_ds_nodash": "use macros.ds_add(ds, 1) with ds_format",
    "yesterday_ds": "use macros.ds_add(ds, -1)",
    "yesterday_ds_nodash": "use macros.ds_add(ds, -1) with ds_format",
}
"""Context keys Airflow 3 removed without a one-for-one replacement: reported, not rewritten."""

_JINJA_BLOCK = re.compile(r"(\{\{.*?\}\}|\{%.*?%\})", re.DOTALL)
_DAG_KEYWORD_RENAMES = {"schedule_interval": "schedule", "timetable": "schedule", "concurrency": "max_active_tasks"}
_REMOVED_KEYWORDS = {
    "sla": "SLAs were removed in Airflow 3 (use deadline alerts: DAG(deadline=...))",
    "sla_miss_callback": "SLAs were removed in Airflow 3 (use deadline alerts: DAG(deadline=...))",
}


def _rewrite_jinja(text: str) -> tuple[str, list[str]]:
    """``text`` with the removed context keys renamed inside its Jinja blocks, and the keys it had to leave."""
    left: list[str] = []

    def block(match: re.Match[str]) -> str:
        code = match.group(0)
        opener, body, closer = code[:2], code[2:-2], code[-2:]
        for old, new in CONTEXT_RENAMES.items():
            body = re.sub(rf"(?<![\w]){old}(?!\w)", new, body)
        for old, new in TEMPLATE_FILTER_RENAMES.items():
            if re.fullmatch(rf"\s*{old}\s*", body):
                body = re.sub(old, new, body)
            else:
                body = re.sub(rf"(?<![\w.]){old}(?!\w)", f"({new})", body)
        for old in CONTEXT_REMOVED:
            if re.search(rf"(?<![\w.]){old}(?!\w)", body):
                left.append(old)
        return opener + body + closer

    return _JINJA_BLOCK.sub(block, text), left


# --- the transformer ---------------------------------------------------------------------------------


def _dotted(node: cst.BaseExpression) -> str:
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        return f"{_dotted(node.value)}.{node.attr.value}"
    return ""


def _alias_name(alias: cst.ImportAlias) -> str:
    return _dotted(alias.name)


def _alias_asname(alias: cst.ImportAlias) -> str | None:
    if alias.asname is None:
        return None
    target = alias.asname.name
    return target.value if isinstance(target, cst.Name) else None


class _Rewriter(cst.CSTTransformer):
    """Rewrites one module; collects ``(line, reason)`` of what it leaves."""

    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self, datetime_module_imported: bool) -> None:
        super().__init__()
        self.problems: list[tuple[int, str]] = []
        self.renames: dict[str, str] = {}
        """Local names to rename in the file (``DummyOperator`` → ``EmptyOperator``)."""
        self.days_ago_names: set[str] = set()
        """Local names bound to ``airflow.utils.dates.days_ago``."""
        self.days_ago_kept = False
        """A ``days_ago`` call could not be rewritten: its import stays."""
        self.needs_datetime = False
        self.qualified_datetime = datetime_module_imported
        self._import_lines: list[tuple[cst.SimpleStatementLine, cst.ImportFrom, int]] = []

    def _line(self, node: cst.CSTNode) -> int:
        return int(self.get_metadata(PositionProvider, node).start.line)

    def _problem(self, node: cst.CSTNode, reason: str) -> None:
        self.problems.append((self._line(node), reason))

    # imports: `import airflow…` is reported; `from airflow… import …` is rewritten in leave_SimpleStatementLine

    def visit_Import(self, node: cst.Import) -> None:
        for alias in node.names:
            name = _alias_name(alias)
            if name == "airflow" or name.startswith("airflow."):
                self._problem(
                    node, f"`import {name}`: module imports are not rewritten; import the names (`from … import …`)"
                )

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if node.module is None or node.relative:
            return
        module = _dotted(node.module)
        if module != "airflow" and not module.startswith("airflow."):
            return
        if isinstance(node.names, cst.ImportStar):
            self._problem(node, f"`from {module} import *`: import the names one by one")
            return

    def leave_SimpleStatementLine(
        self, original_node: cst.SimpleStatementLine, updated_node: cst.SimpleStatementLine
    ) -> cst.BaseStatement | cst.FlattenSentinel[cst.BaseStatement] | cst.RemovalSentinel:
        froms = [s for s in updated_node.body if isinstance(s, cst.ImportFrom)]
        if not froms:
            return updated_node
        node = froms[0]
        if node.module is None or node.relative or isinstance(node.names, cst.ImportStar):
            return updated_node
        module = _dotted(node.module)
        if module != "airflow" and not module.startswith("airflow."):
            return updated_node
        line = self._line(original_node)
        if len(updated_node.body) != 1:
            self.problems.append(
                (line, f"`from {module} import …` shares its line with other statements: not rewritten")
            )
            return updated_node
        return self._rewrite_from(updated_node, node, module, line)

    def _rewrite_from(
        self, statement: cst.SimpleStatementLine, node: cst.ImportFrom, module: str, line: int
    ) -> cst.BaseStatement | cst.FlattenSentinel[cst.BaseStatement] | cst.RemovalSentinel:
        assert not isinstance(node.names, cst.ImportStar)
        targets = MODULES.get(module)
        if targets is None:
            feature = unsupported_module_feature(module) or f"the module {module}"
            self.problems.append((line, f"{module}: headrace does not support {feature} yet"))
            return statement
        grouped: dict[str, list[cst.ImportAlias]] = {}
        kept: list[cst.ImportAlias] = []
        for alias in node.names:
            name = _alias_name(alias)
            asname = _alias_asname(alias)
            if module == "airflow.utils.dates" and name == "days_ago" and not self.days_ago_kept:
                continue  # each call becomes a datetime (leave_Call); the import goes unless a call stays
            target = targets.get(name)
            if target is None:
                self.problems.append((line, f"{module}.{name}: headrace does not implement this name"))
                kept.append(alias)
                continue
            try:
                resolve_target(f"{module}.{name}", target)
            except NotSupported as exc:
                self.problems.append((line, str(exc)))
                kept.append(alias)
                continue
            if asname is None and target.attr != name:
                self.renames[name] = target.attr
            new_alias = cst.ImportAlias(
                name=cst.Name(target.attr),
                asname=None if asname is None or asname == target.attr else cst.AsName(name=cst.Name(asname)),
            )
            grouped.setdefault(target.module, []).append(new_alias)
        lines: list[cst.BaseStatement] = []
        for target_module, aliases in grouped.items():
            aliases = _dedupe(aliases)
            names = [a.with_changes(comma=cst.MaybeSentinel.DEFAULT) for a in aliases]
            new = cst.ImportFrom(module=cst.parse_expression(target_module), names=names)  # type: ignore[arg-type]
            lines.append(cst.SimpleStatementLine(body=[new]))
        if kept:
            names = [a.with_changes(comma=cst.MaybeSentinel.DEFAULT) for a in kept]
            lines.append(cst.SimpleStatementLine(body=[node.with_changes(names=names, rpar=None, lpar=None)]))
        if not lines:
            return cst.RemoveFromParent()
        lines[0] = lines[0].with_changes(leading_lines=statement.leading_lines)
        last = lines[-1]
        assert isinstance(last, cst.SimpleStatementLine)
        lines[-1] = last.with_changes(trailing_whitespace=statement.trailing_whitespace)
        return cst.FlattenSentinel(lines)

    # calls: DAG keywords, removed keywords, days_ago(n), context.get("…")

    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.BaseExpression:
        func = _dotted(updated_node.func)
        short = func.rsplit(".", 1)[-1]
        args = list(updated_node.args)
        changed = False
        if short in ("DAG", "dag"):
            present = {a.keyword.value for a in args if a.keyword is not None}
            for i, arg in enumerate(args):
                if arg.keyword is None or arg.keyword.value not in _DAG_KEYWORD_RENAMES:
                    continue
                new = _DAG_KEYWORD_RENAMES[arg.keyword.value]
                if new in present:
                    self._problem(original_node, f"both {arg.keyword.value}= and {new}= given: keep one")
                    continue
                args[i] = arg.with_changes(keyword=cst.Name(new))
                present.add(new)
                changed = True
        kept_args = []
        for arg in args:
            if arg.keyword is not None and arg.keyword.value == "provide_context":
                changed = True  # Airflow 2 removed it: the context is always given to callables that ask
                continue
            if arg.keyword is not None and arg.keyword.value in _REMOVED_KEYWORDS:
                self._problem(original_node, f"{arg.keyword.value}=: {_REMOVED_KEYWORDS[arg.keyword.value]}")
            kept_args.append(arg)
        if (
            kept_args
            and changed
            and kept_args[-1].comma is not cst.MaybeSentinel.DEFAULT
            and not _has_trailing_comma(list(updated_node.args))
        ):
            kept_args[-1] = kept_args[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
        if changed:
            updated_node = updated_node.with_changes(args=kept_args)
        if func in self.days_ago_names:
            return self._days_ago(original_node, updated_node)
        if short == "get" and isinstance(updated_node.func, cst.Attribute) and updated_node.args:
            first = updated_node.args[0]
            new_value = self._context_key(original_node, first.value)
            if new_value is not None:
                return updated_node.with_changes(args=[first.with_changes(value=new_value), *updated_node.args[1:]])
        return updated_node

    def _days_ago(self, original: cst.Call, call: cst.Call) -> cst.BaseExpression:
        if self.days_ago_kept:
            if not _simple_days_ago(call):
                self._problem(original, "days_ago() with more than a number of days: rewrite it as a datetime by hand")
            return call
        days = cst.Module(body=[]).code_for_node(call.args[0].value)
        self.needs_datetime = True
        if self.qualified_datetime:
            code = (
                "(datetime.datetime.now(datetime.UTC).replace(hour=0, minute=0, second=0, microsecond=0)"
                f" - datetime.timedelta(days={days}))"
            )
        else:
            code = f"(datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days={days}))"
        return cst.parse_expression(code)

    def _context_key(self, original: cst.CSTNode, value: cst.BaseExpression) -> cst.BaseExpression | None:
        if not isinstance(value, cst.SimpleString):
            return None
        key = value.evaluated_value
        if not isinstance(key, str):
            return None
        if key in CONTEXT_RENAMES:
            quote = value.value[len(value.prefix) :][0]
            return value.with_changes(value=f"{value.prefix}{quote}{CONTEXT_RENAMES[key]}{quote}")
        if key in CONTEXT_REMOVED or key in TEMPLATE_FILTER_RENAMES:
            hint = CONTEXT_REMOVED.get(key, f"use {TEMPLATE_FILTER_RENAMES.get(key)}")
            self._problem(original, f"context key {key!r} was removed in Airflow 3: {hint}")
        return None

    def leave_SubscriptElement(
        self, original_node: cst.SubscriptElement, updated_node: cst.SubscriptElement
    ) -> cst.SubscriptElement:
        if isinstance(updated_node.slice, cst.Index):
            new_value = self._context_key(original_node, updated_node.slice.value)
            if new_value is not None:
                return updated_node.with_changes(slice=updated_node.slice.with_changes(value=new_value))
        return updated_node

    def leave_SimpleString(self, original_node: cst.SimpleString, updated_node: cst.SimpleString) -> cst.SimpleString:
        if "{{" not in updated_node.value and "{%" not in updated_node.value:
            return updated_node
        if "b" in updated_node.prefix.lower():
            return updated_node
        new_text, left = _rewrite_jinja(updated_node.value)
        for key in left:
            self._problem(
                original_node, f"template context key {key!r} was removed in Airflow 3: {CONTEXT_REMOVED[key]}"
            )
        return updated_node.with_changes(value=new_text)

    def visit_Param(self, node: cst.Param) -> None:
        # A callable asking for a removed context key by name gets nothing in Airflow 3 (nor here): TypeError
        # without a default, the default otherwise. Renaming the parameter would need its uses renamed too.
        key = node.name.value
        if key in CONTEXT_RENAMES or key in TEMPLATE_FILTER_RENAMES or key in CONTEXT_REMOVED:
            hint = (
                f"name it {CONTEXT_RENAMES[key]}"
                if key in CONTEXT_RENAMES
                else CONTEXT_REMOVED.get(key, f"use {TEMPLATE_FILTER_RENAMES.get(key)}")
            )
            self._problem(node, f"parameter {key!r}: the context has no {key!r} in Airflow 3: {hint}")

    def visit_Attribute(self, node: cst.Attribute) -> None:
        if node.attr.value == "execution_date":
            self._problem(
                node, "`.execution_date` (of a DAG run or task instance) was removed in Airflow 3: use .logical_date"
            )

    def leave_Name(self, original_node: cst.Name, updated_node: cst.Name) -> cst.Name:
        new = self.renames.get(updated_node.value)
        return updated_node.with_changes(value=new) if new else updated_node


def _simple_days_ago(call: cst.Call) -> bool:
    return len(call.args) == 1 and call.args[0].keyword is None and not call.args[0].star


class _DaysAgoScan(cst.CSTVisitor):
    """Finds the local names of ``airflow.utils.dates.days_ago`` and whether every call passes only a day count."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()
        self.all_simple = True

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if node.module is None or node.relative or isinstance(node.names, cst.ImportStar):
            return
        if _dotted(node.module) == "airflow.utils.dates":
            for alias in node.names:
                if _alias_name(alias) == "days_ago":
                    self.names.add(_alias_asname(alias) or "days_ago")

    def visit_Call(self, node: cst.Call) -> None:
        if _dotted(node.func) in self.names and not _simple_days_ago(node):
            self.all_simple = False


def _has_trailing_comma(args: Sequence[cst.Arg]) -> bool:
    return bool(args) and isinstance(args[-1].comma, cst.Comma)


def _dedupe(aliases: list[cst.ImportAlias]) -> list[cst.ImportAlias]:
    seen: set[tuple[str, str | None]] = set()
    out = []
    for alias in aliases:
        key = (_alias_name(alias), _alias_asname(alias))
        if key not in seen:
            seen.add(key)
            out.append(alias)
    return out


def _imports_datetime_module(module: cst.Module) -> bool:
    for statement in module.body:
        if isinstance(statement, cst.SimpleStatementLine):
            for small in statement.body:
                if isinstance(small, cst.Import) and any(
                    _alias_name(a) == "datetime" and a.asname is None for a in small.names
                ):
                    return True
    return False


def _headrace_from(statement: cst.BaseStatement) -> tuple[str, cst.ImportFrom] | None:
    if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
        return None
    node = statement.body[0]
    if not isinstance(node, cst.ImportFrom) or node.module is None or node.relative:
        return None
    if isinstance(node.names, cst.ImportStar) or node.lpar is not None:
        return None
    module = _dotted(node.module)
    return (module, node) if module == "headrace" or module.startswith("headrace.") else None


def _merge_headrace_imports(module: cst.Module) -> cst.Module:
    """Adjacent ``from headrace.x import a`` / ``from headrace.x import b`` lines (no comment between) → one line."""
    body: list[cst.BaseStatement] = []
    for statement in module.body:
        current = _headrace_from(statement)
        last = body[-1] if body else None
        previous = _headrace_from(last) if last is not None else None
        if (
            current
            and previous
            and current[0] == previous[0]
            and isinstance(statement, cst.SimpleStatementLine)
            and isinstance(last, cst.SimpleStatementLine)
            and not statement.leading_lines
        ):
            prev_node, cur_node = previous[1], current[1]
            assert not isinstance(prev_node.names, cst.ImportStar) and not isinstance(cur_node.names, cst.ImportStar)
            names = [
                a.with_changes(comma=cst.MaybeSentinel.DEFAULT) for a in _dedupe([*prev_node.names, *cur_node.names])
            ]
            body[-1] = last.with_changes(
                body=[prev_node.with_changes(names=names)], trailing_whitespace=statement.trailing_whitespace
            )
            continue
        body.append(statement)
    return module.with_changes(body=body)


def migrate_source(source: str, name: str = "<string>") -> tuple[str, list[Finding]]:
    """Rewrite one DAG file's text; return the new text and what could not be translated.

    A file that is not valid Python is returned unchanged with one finding.
    """
    try:
        module = cst.parse_module(source)
    except cst.ParserSyntaxError as exc:
        return source, [Finding(name, exc.raw_line, f"not valid Python, left unchanged: {exc.message}")]
    rewriter = _Rewriter(_imports_datetime_module(module))
    scan = _DaysAgoScan()
    module.visit(scan)
    rewriter.days_ago_names = scan.names
    rewriter.days_ago_kept = not scan.all_simple  # the import stays for the calls left as they were
    wrapper = MetadataWrapper(module)
    new_module = wrapper.visit(rewriter)
    if rewriter.needs_datetime and not rewriter.qualified_datetime:
        context = CodemodContext()
        for needed in ("UTC", "datetime", "timedelta"):
            AddImportsVisitor.add_needed_import(context, "datetime", needed)
        new_module = AddImportsVisitor(context).transform_module(new_module)
    new_module = _merge_headrace_imports(new_module)
    findings = [Finding(name, line, reason) for line, reason in sorted(rewriter.problems)]
    return new_module.code, findings


def python_files(root: Path) -> Iterator[Path]:
    """``root`` itself if it is a file, else the ``.py`` files under it, sorted (``__pycache__`` skipped)."""
    if root.is_file():
        yield root
        return
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" not in path.parts:
            yield path


def _worth_parsing(text: str) -> bool:
    """The file mentions ``airflow``, or ``headrace`` and ``dag`` (any case): it may hold a DAG to check."""
    if "airflow" in text:
        return True
    lowered = text.lower()
    return "dag" in lowered and ("headrace" in lowered or "airflow" in lowered)


def migrate_path(root: Path) -> list[FileMigration]:
    """Migrate (in memory) the DAG file ``root`` or every ``.py`` file under the folder ``root``.

    Files that mention neither ``airflow`` nor both ``headrace`` and ``dag`` (any case, as the DAG
    processor's discovery) are returned unchanged without being parsed: an already migrated file is
    read again, so what it still holds (``{{ prev_ds }}``, an ``sla=``) is reported on every run.
    Raises ``FileNotFoundError`` if ``root`` does not exist.
    """
    if not root.exists():
        raise FileNotFoundError(f"{root} does not exist")
    results = []
    for path in python_files(root):
        name = path.name if root.is_file() else path.relative_to(root).as_posix()
        original = path.read_text(encoding="utf-8")
        if not _worth_parsing(original):
            results.append(FileMigration(path, name, original, original))
            continue
        migrated, findings = migrate_source(original, name)
        results.append(FileMigration(path, name, original, migrated, findings))
    return results


def write_results(root: Path, results: Sequence[FileMigration], out: Path | None) -> list[Path]:
    """Write the changed files: in place (``out`` None) or into a copy of ``root`` at ``out``; return the paths.

    With ``out``, everything under ``root`` is copied first (a folder; a file
    is copied into ``out``), then the migrated files overwrite their copies.
    """
    written = []
    if out is not None:
        if root.is_dir():
            shutil.copytree(root, out, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            out.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root, out / root.name)
    for result in results:
        if out is None:
            if not result.changed:
                continue
            target = result.path
        else:
            target = out / result.name
        target.write_text(result.migrated, encoding="utf-8")
        written.append(target)
    return written
