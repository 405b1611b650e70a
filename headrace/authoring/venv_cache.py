"""Virtual environments for ``PythonVirtualenvOperator``: built once per requirements and reused.

A :class:`VenvSpec` (requirements, Python version, system site packages, pip options) names a
venv by its hash: ``<venv_cache_path>/venv-<hash>``. :func:`prepare_venv` builds it on first use
and reuses it afterwards; two tries that need it at once take a lock file (``venv-<hash>.lock``,
``flock``) so one builds and the other waits and reuses. A venv is complete only once its marker
file (``install_complete_marker.json``) is written: a build that was killed half-way leaves no
marker and is rebuilt by the next try. Without a cache path, :func:`temporary_venv` builds one in a
temporary directory for one try (Airflow's behaviour without ``venv_cache_path``).

The venv is made with the interpreter's ``venv`` module (no pip inside it) and the requirements are
installed by this environment's pip into it (``pip --python``), so a venv without requirements costs
no install at all. A failed install raises :class:`VirtualenvError` whose first line carries pip's
``ERROR:`` lines.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from headrace.exceptions import HeadraceError

MARKER = "install_complete_marker.json"
"""Written into a venv once it is fully built (its content: the spec)."""


class VirtualenvError(HeadraceError):
    """Raised when a task's virtual environment cannot be built (no such Python, pip failed)."""


@dataclass(frozen=True)
class VenvSpec:
    """What a venv is built from; equal specs share one cached venv."""

    requirements: tuple[str, ...] = ()
    """pip requirement lines, e.g. ``("requests==2.32.3",)``."""
    python_version: str | None = None
    """``"3.11"``: the venv uses ``python3.11`` from ``PATH``; None: this process's interpreter."""
    system_site_packages: bool = True
    """The venv sees the base interpreter's site packages (``venv --system-site-packages``)."""
    pip_install_options: tuple[str, ...] = ()
    """Extra ``pip install`` arguments, e.g. ``("--no-index", "--find-links", "/wheels")``."""
    index_urls: tuple[str, ...] = ()
    """Package indexes: the first is ``--index-url``, the others ``--extra-index-url``."""

    def key(self) -> str:
        """The hash naming the venv (16 hex digits of SHA-256 over the spec as JSON)."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def find_python(python_version: str | None) -> str:
    """The interpreter for ``python_version`` (``python3.11`` on ``PATH``), or this one for None.

    Raises ``VirtualenvError`` naming the version when no such interpreter is installed.
    """
    if python_version is None:
        return sys.executable
    version = str(python_version)
    if not re.fullmatch(r"\d+(\.\d+)?", version):
        raise VirtualenvError(f"python_version must look like '3' or '3.11', got {version!r}")
    found = shutil.which(f"python{version}")
    if found is None:
        raise VirtualenvError(f"python_version {version!r}: no interpreter python{version} is installed on PATH")
    return found


def venv_python(venv: Path) -> Path:
    """The interpreter inside venv directory ``venv``."""
    return venv / "bin" / "python"


def _pip_errors(output: str) -> str:
    errors = [line.strip() for line in output.splitlines() if line.strip().startswith("ERROR:")]
    if errors:
        return " ".join(errors)
    tail = [line.strip() for line in output.splitlines() if line.strip()]
    return tail[-1] if tail else "(no output)"


def build_venv(target: Path, spec: VenvSpec) -> None:
    """Create a venv at ``target`` and install ``spec.requirements`` into it; output goes to stdout (the log).

    Raises ``VirtualenvError`` when the interpreter is missing, ``venv`` fails or pip fails.
    """
    python = find_python(spec.python_version)
    command = [python, "-m", "venv", "--without-pip"]
    if spec.system_site_packages:
        command.append("--system-site-packages")
    made = subprocess.run([*command, str(target)], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        raise VirtualenvError(f"could not create a virtualenv with {python}: {_pip_errors(made.stderr + made.stdout)}")
    if not spec.requirements:
        return
    requirements = target / "requirements.txt"
    requirements.write_text("\n".join(spec.requirements) + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(venv_python(target)), "install"]
    pip += ["--disable-pip-version-check", "--no-input"]
    for i, url in enumerate(spec.index_urls):
        pip += ["--index-url" if i == 0 else "--extra-index-url", url]
    pip += [*spec.pip_install_options, "-r", str(requirements)]
    print(f"Installing {list(spec.requirements)} into {target}", flush=True)
    installed = subprocess.run(pip, capture_output=True, text=True, check=False)
    sys.stdout.write(installed.stdout + installed.stderr)
    sys.stdout.flush()
    if installed.returncode != 0:
        raise VirtualenvError(
            f"pip could not install {list(spec.requirements)} (exit code {installed.returncode}): "
            f"{_pip_errors(installed.stderr + installed.stdout)}"
        )


def prepare_venv(cache_path: str | os.PathLike[str], spec: VenvSpec) -> tuple[Path, bool]:
    """The cached venv for ``spec`` under ``cache_path``, built if missing; returns ``(venv dir, built now)``.

    Safe when several processes ask at once (one builds while the others wait on the lock). A failed
    build leaves nothing behind and raises ``VirtualenvError``.
    """
    root = Path(cache_path)
    root.mkdir(parents=True, exist_ok=True)
    key = spec.key()
    target = root / f"venv-{key}"
    marker = target / MARKER
    with open(root / f"venv-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if marker.exists():
                if json.loads(marker.read_text()) == json.loads(json.dumps(asdict(spec))):
                    print(f"Reusing cached virtualenv {target}", flush=True)
                    return target, False
                raise VirtualenvError(f"cached virtualenv {target} was built from another spec (hash collision)")
            if target.exists():  # a build that did not finish (its try was killed): start again
                shutil.rmtree(target)
            try:
                build_venv(target, spec)
            except BaseException:
                shutil.rmtree(target, ignore_errors=True)
                raise
            marker.write_text(json.dumps(asdict(spec), sort_keys=True))
            return target, True
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextmanager
def temporary_venv(spec: VenvSpec) -> Iterator[Path]:
    """A venv for ``spec`` in a temporary directory, removed when the block ends."""
    with tempfile.TemporaryDirectory(prefix="headrace-venv-") as tmp:
        target = Path(tmp) / "venv"
        build_venv(target, spec)
        yield target


def as_lines(requirements: str | Sequence[str] | None) -> tuple[str, ...]:
    """Requirements given as one string (one per line) or a list, as a tuple of non-empty lines."""
    if requirements is None:
        return ()
    items = requirements.splitlines() if isinstance(requirements, str) else list(requirements)
    return tuple(line.strip() for line in items if str(line).strip() and not str(line).strip().startswith("#"))


__all__ = [
    "MARKER",
    "VenvSpec",
    "VirtualenvError",
    "as_lines",
    "build_venv",
    "find_python",
    "prepare_venv",
    "temporary_venv",
    "venv_python",
]
