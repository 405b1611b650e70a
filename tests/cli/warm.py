"""``headrace`` commands for tests without an interpreter start each: a warm process forks one child per command.

Starting ``python -m headrace`` costs 0.5–1.5 s of CPU (the interpreter, then SQLAlchemy, Typer, Rich, the
command's modules) before the command does anything; the CLI tests run some 150 commands. A
:class:`WarmCli` starts this file once per test process as a server that has imported the CLI and every
command's module. For each command it forks a child, which is then what ``python -m headrace <args>``
would be: its own process, with exactly the given environment, its cwd, ``/dev/null`` as stdin, stdout
and stderr in files (so the output of the processes the command starts is caught too), ``sys.argv`` and
the program name of ``python -m headrace``, and its exit code (or ``-signal``). Whatever a command does
to its process (``sys.path``, the secrets runtime, the allowed XCom classes, logging, signal handlers)
ends with the child, as it would with a real one.

What it does not show is the real entry point's start-up (``headrace/__main__.py``, the imports each
command makes): ``tests/cli/test_startup.py`` and the tests that take ``cli_subprocess`` run that.

The protocol (one JSON object a line): the client sends ``{"args", "env", "cwd", "out", "err"}``; the
server answers ``{"pid"}`` once the child exists, then ``{"code"}`` when it has ended.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SERVER = Path(__file__)


class WarmCli:
    """Client of one server process (started on first use, restarted if it died)."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        """Folder for the output files of the commands."""
        self._proc: subprocess.Popen[bytes] | None = None
        self._pending = bytearray()
        self._calls = 0

    def _server(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            # The server's own environment has no HEADRACE_* (each command gets its own) and no COLUMNS:
            # Rich reads COLUMNS when a console is made, at import, and would keep it for every command.
            env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE") and k != "COLUMNS"}
            self._proc = subprocess.Popen(
                [sys.executable, str(SERVER)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
            )
            self._pending.clear()
        return self._proc

    def run(self, args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
        """Run ``headrace *args`` with environment ``env``, as ``subprocess.run(..., capture_output=True,
        text=True)`` would; raises ``subprocess.TimeoutExpired`` (the child killed) after ``timeout`` s."""
        proc = self._server()
        assert proc.stdin is not None and proc.stdout is not None
        self._calls += 1
        out, err = self.scratch / f"{self._calls}.out", self.scratch / f"{self._calls}.err"
        request = {"args": args, "env": env, "cwd": os.getcwd(), "out": str(out), "err": str(err)}
        proc.stdin.write(json.dumps(request).encode() + b"\n")
        proc.stdin.flush()
        answers = proc.stdout.fileno()
        pid: int | None = None
        try:
            pid = int(_answer(answers, self._pending, 60)["pid"])
            code = int(_answer(answers, self._pending, timeout)["code"])
        except TimeoutError:
            if pid is None:
                self._abandon(None)
                raise
            os.kill(pid, signal.SIGKILL)
            _answer(answers, self._pending, 60)
            raise subprocess.TimeoutExpired(["headrace", *args], timeout, out.read_text(), err.read_text()) from None
        except BaseException:  # interrupted mid-command (pytest-timeout, Ctrl-C): as subprocess.run, kill it
            self._abandon(pid)
            raise
        result = subprocess.CompletedProcess(["headrace", *args], code, out.read_text(), err.read_text())
        out.unlink()
        err.unlink()
        return result

    def _abandon(self, pid: int | None) -> None:
        """Kill the command ``pid`` (if any) and the server, whose answers are no longer in step with us;
        the next command starts a new server."""
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def close(self) -> None:
        """Stop the server (it exits at the end of its input)."""
        if self._proc is not None and self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None


def _answer(fd: int, pending: bytearray, timeout: float) -> dict[str, Any]:
    """The server's next line on ``fd`` as JSON (``pending``: bytes read past the last line); raises
    TimeoutError after ``timeout`` s, EOFError if the server died."""
    deadline = time.monotonic() + timeout
    while b"\n" not in pending:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                raise EOFError("the warm headrace server died")
            pending += chunk
    line, _, rest = bytes(pending).partition(b"\n")
    pending[:] = rest
    answer: dict[str, Any] = json.loads(line)
    return answer


# --- the server ---------------------------------------------------------------------------------------------


def _child(request: dict[str, Any], replies: int) -> None:
    """In the forked child: become ``python -m headrace <args>`` and exit with its code (never returns)."""
    code = 1
    try:
        os.close(replies)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        for fd, path in ((1, request["out"]), (2, request["err"])):
            target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(target, fd)
            os.close(target)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        signal.signal(signal.SIGINT, signal.default_int_handler)  # the server ignores Ctrl-C; a command does not
        import headrace  # noqa: PLC0415 (imported by _warm_up: free)
        from headrace.cli.main import main  # noqa: PLC0415

        # As ``python -m headrace`` has them, so that Click names the program the same way in its messages.
        sys.argv = [str(Path(headrace.__file__).parent / "__main__.py"), *request["args"]]
        sys.modules["__main__"].__package__ = "headrace"

        try:
            main()
            code = 0
        except SystemExit as exc:  # what the interpreter does with the code of a SystemExit
            if exc.code is None:
                code = 0
            elif isinstance(exc.code, int):
                code = exc.code
            else:
                print(exc.code, file=sys.stderr)
                code = 1
    except BaseException:  # noqa: BLE001 (as an uncaught exception ends an interpreter: the traceback, code 1)
        import traceback  # noqa: PLC0415

        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code & 0xFF)


def _warm_up() -> None:
    """Import the CLI and every command's module, so that children start warm."""
    import importlib  # noqa: PLC0415

    from headrace.cli.main import COMMANDS  # noqa: PLC0415

    for target in COMMANDS.values():
        importlib.import_module(target[0].split(":")[0])
    import headrace.db.engine  # noqa: F401, PLC0415
    import headrace.db.migrate  # noqa: F401, PLC0415


def _loop() -> None:
    """Read requests on stdin until its end; fork a child for each and answer on (what was) stdout."""
    replies_fd = os.dup(1)
    os.dup2(2, 1)  # anything the server itself prints goes to stderr, not into the answers
    replies = os.fdopen(replies_fd, "w", buffering=1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C on pytest: the client closes stdin
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(request, replies_fd)
        replies.write(json.dumps({"pid": pid}) + "\n")
        _, status = os.waitpid(pid, 0)
        replies.write(json.dumps({"code": os.waitstatus_to_exitcode(status)}) + "\n")


if __name__ == "__main__":
    _warm_up()
    _loop()
