"""The supervisor's side of remote logs: start shipping a claimed try's log, finish it when the try is recorded.

See :mod:`headrace.logs.remote` for what is shipped and when. Nothing here can fail a try: a store that
cannot be opened (a bad setting, a missing connection) or reached is said in the try's log and on the
supervisor's stderr, and the log stays on local disk.
"""

from __future__ import annotations

import logging

from headrace.config import Settings
from headrace.exceptions import ConfigError
from headrace.logs.remote import FINAL_UPLOAD_TIMEOUT, LogShipper, log_key
from headrace.storage.stores import Stores
from headrace.supervisor.claim import _Try

log = logging.getLogger("headrace.supervisor")


def start_shipping(settings: Settings, stores: Stores, current: _Try) -> LogShipper | None:
    """Start shipping ``current``'s log at ``logging.remote_log_interval``; None when remote logging is off
    or its store cannot be opened (said in the try's log)."""
    if not stores.logs_url or current.log is None:
        return None
    try:
        store = stores.logs()
    except ConfigError as exc:
        current.say(f"this log is not shipped: {exc}", "WARNING")
        return None
    if store is None:
        return None
    target = current.target
    shipper = LogShipper(
        store,
        current.log_path,
        log_key(target.dag_id, target.run_id, target.task_id, current.request.try_number, target.map_index),
        settings.get_float("logging", "remote_log_interval"),
        current.say,
        resumed=current.resumed,
        opened_size=current.log.opened_size,
    )
    shipper.start()
    return shipper


def finish_shipping(settings: Settings, current: _Try, shipper: LogShipper | None) -> None:
    """Wait for the cleared XComs' objects to be deleted; upload the closed log a last time; remove the local file after that upload if
    ``logging.delete_local_logs`` is set; if it failed, say the log stays on this host (never raises)."""
    if current.purging is not None:
        current.purging.join(FINAL_UPLOAD_TIMEOUT)  # the cleared XComs' objects: bounded by the store's timeouts
    if shipper is None:
        return
    try:
        if shipper.finish(FINAL_UPLOAD_TIMEOUT):
            if settings.get_bool("logging", "delete_local_logs"):
                current.log_path.unlink(missing_ok=True)
            return
        current.say(
            f"this log could not be shipped to {shipper.url} within {FINAL_UPLOAD_TIMEOUT:g} s; "
            "it stays on this host's disk",
            "WARNING",
        )
    except Exception:  # noqa: BLE001 - the outcome is recorded already; a log problem must not turn into an error
        log.exception("finishing the shipping of %s failed", current.log_path)


__all__ = ["finish_shipping", "start_shipping"]
