"""The web server: ``create_app`` assembles the REST API and the web UI; ``serve`` / ``start_in_thread`` run it.

This module is the only one that imports both ``headrace.api`` and
``headrace.ui``: the API knows nothing of the UI (an import-linter contract),
and the UI uses only the API's authentication pieces (``headrace.api.auth``,
``headrace.api.users``).

The listening socket is bound here before uvicorn starts, so the caller knows
the real port at once (``port=0`` picks a free one; tests use that) and a
port already in use is a clear ``ConfigError`` instead of a log line.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry

from headrace.api.app import create_api_app
from headrace.config import Settings
from headrace.db.engine import Database
from headrace.exceptions import ConfigError
from headrace.ui.render import STATIC_DIR, error_page
from headrace.ui.routes import ROUTERS as UI_ROUTERS


def create_app(settings: Settings, db: Database, *, metrics_registry: CollectorRegistry | None = None) -> FastAPI:
    """The whole server for ``settings`` on ``db`` (the schema must be migrated).

    The REST API, ``/health`` and ``/metrics`` (``headrace.api.app.create_api_app``),
    the UI's pages and data, and its static files under ``/static``. A browser
    navigating to a page sees errors as the UI's HTML error page.
    ``metrics_registry``: the scheduler's Prometheus registry when the scheduler
    runs in this process (``standalone``); ``/metrics`` then shows it too.
    """
    app = create_api_app(settings, db, metrics_registry=metrics_registry, error_page=error_page)
    for router in UI_ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``; raises ``ConfigError`` if the address is taken or invalid."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror}; set api.port (HEADRACE__API__PORT)", key="api.port"
        ) from None
    sock.listen(128)
    sock.set_inheritable(False)
    return sock


@dataclass
class RunningServer:
    """A server started by :func:`start_in_thread`."""

    url: str
    """``http://host:port`` it answers on."""
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self, timeout: float = 5.0) -> None:
        """Ask uvicorn to exit and wait up to ``timeout`` seconds for it."""
        self.server.should_exit = True
        self.thread.join(timeout)


def _server(settings: Settings, db: Database, metrics_registry: CollectorRegistry | None = None) -> uvicorn.Server:
    config = uvicorn.Config(
        create_app(settings, db, metrics_registry=metrics_registry),
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
    )
    return uvicorn.Server(config)


def url_of(sock: socket.socket, settings: Settings) -> str:
    """The URL to print for a server on ``sock`` (``api.base_url`` if set)."""
    base = settings.get_str("api", "base_url")
    if base:
        return base.rstrip("/")
    host, port = sock.getsockname()[:2]
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else (f"[{host}]" if ":" in host else host)
    return f"http://{shown}:{port}"


def serve(settings: Settings, db: Database, *, host: str | None = None, port: int | None = None) -> None:
    """Serve in the foreground until SIGINT/SIGTERM (uvicorn's handlers)."""
    sock = bind(host or settings.get_str("api", "host"), int(settings.get("api", "port") if port is None else port))
    _server(settings, db).run(sockets=[sock])


def start_in_thread(
    settings: Settings,
    db: Database,
    *,
    host: str | None = None,
    port: int | None = None,
    metrics_registry: CollectorRegistry | None = None,
) -> RunningServer:
    """Start the server in a daemon thread and return once it is bound (requests queue until it runs).

    ``metrics_registry``: the in-process scheduler's registry, shown on ``/metrics`` too.
    """
    sock = bind(host or settings.get_str("api", "host"), int(settings.get("api", "port") if port is None else port))
    server = _server(settings, db, metrics_registry)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="headrace-api", daemon=True)
    thread.start()
    return RunningServer(url=url_of(sock, settings), server=server, thread=thread)


__all__ = ["RunningServer", "bind", "create_app", "serve", "start_in_thread", "url_of"]
