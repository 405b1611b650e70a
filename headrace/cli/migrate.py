"""``headrace migrate airflow PATH [--write | --out DIR]``: bring Airflow DAG files over.

Shows a unified diff by default and changes nothing; ``--write`` rewrites
the files in place, ``--out DIR`` writes a migrated copy of PATH to DIR.
Every construct that could not be translated is listed on stderr as
``file:line: reason``. Exit code 0 (also with such findings; they are
the list of what to port by hand), 1 on bad usage or a missing PATH.
See :mod:`headrace.compat.migrate` for what is rewritten.
"""

from __future__ import annotations

from pathlib import Path

import typer

from headrace.cli.common import err_console
from headrace.exceptions import InvalidRequest

app = typer.Typer(help="Rewrite DAG files written for another orchestrator to headrace.", no_args_is_help=True)


@app.command("airflow")
def airflow(
    path: Path = typer.Argument(..., help="An Airflow DAG file or a folder of them (searched recursively)."),
    write: bool = typer.Option(False, "--write", help="Rewrite the files in place."),
    out: Path | None = typer.Option(None, "--out", help="Write a migrated copy of PATH into this folder."),
) -> None:
    """Rewrite Airflow 2.x/3.x DAG files to headrace's imports and Airflow 3's names; show a diff by default.

    Keeps comments and formatting (LibCST); running it again changes nothing.
    Constructs it cannot translate (a provider or feature headrace lacks, a
    removed Airflow 2 feature) are listed as file:line: reason.
    """
    from headrace.compat.migrate import migrate_path, write_results

    if write and out is not None:
        raise InvalidRequest("give --write (in place) or --out DIR (a copy), not both")
    if not path.exists():
        raise InvalidRequest(f"{path} does not exist")
    root = path.resolve()
    if out is not None:
        target = out.resolve()
        if root.is_dir() and (target == root or target.is_relative_to(root)):
            raise InvalidRequest(f"--out {out} is inside {path}: choose a folder outside it (or use --write)")
    results = migrate_path(root)
    changed = [r for r in results if r.changed]
    findings = [f for r in results for f in r.findings]
    if write or out is not None:
        written = write_results(root, results, None if write else out.resolve() if out else None)
        where = "in place" if write else f"into {out}"
        typer.echo(f"migrated {len(changed)} of {len(results)} files; wrote {len(written)} files {where}")
    else:
        for result in changed:
            typer.echo(result.diff(), nl=False)
    for finding in findings:
        err_console.print(f"{finding}", markup=False, soft_wrap=True)
    noun = "construct" if len(findings) == 1 else "constructs"
    err_console.print(
        f"{len(changed)} of {len(results)} files changed; {len(findings)} {noun} not translated",
        markup=False,
        soft_wrap=True,
    )
