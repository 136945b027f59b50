"""Ray for the length of one search: joined by address, or started privately and stopped after.

A private instance listens on 127.0.0.1 only, has no dashboard unless asked (then on
127.0.0.1 too), sends no usage statistics and keeps its logs in ``RUN_DIR/ray``. Ray
puts Unix sockets under that directory and a socket path may hold at most 107 bytes,
so a run dir deeper than ``MAX_TEMP_DIR`` characters is reached through a short
symlink ``/tmp/evoquant-XXXX/ray``, removed when Ray stops; the logs stay in the run dir.
``ray.init`` replaces the process's SIGTERM handler with an exit; a handler of the
caller's own (the command line's) is put back, so a preempted run ends the same way
whatever the back-end.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from evoquant.errors import UserError
from evoquant.rundir import RAY_DIR

MAX_TEMP_DIR = 40
"""107 bytes less Ray's ``/session_<date>_<time>_<usec>_<pid>/sockets/plasma_store``."""
REACH_TIMEOUT_S = 5.0
LOOPBACK = {"127.0.0.1", "localhost", "::1"}

log = logging.getLogger(__name__)


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise UserError(
            f"Ray address {address!r} must be 'auto' or HOST:PORT (e.g. 10.0.0.1:6379)"
        )
    return host.strip("[]"), int(port)


def check_address(address: str) -> None:
    """Refuse an address nothing answers on now, before any work: ``ray.init`` would wait a minute."""
    if address == "auto":
        return
    host, port = _host_port(address)
    try:
        socket.create_connection((host, port), timeout=REACH_TIMEOUT_S).close()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise UserError(f"cannot reach a Ray cluster at {address}: {reason}") from None


def _is_loopback(address: str) -> bool:
    return address != "auto" and _host_port(address)[0] in LOOPBACK


@contextmanager
def temp_dir_for(run_dir: Path) -> Iterator[Path]:
    """Ray's temp dir while Ray runs: ``RUN_DIR/ray`` or a short symlink to it.

    After, only the logs stay: Ray's sockets and its ``session_latest`` link outlive
    their use, and a socket or a dangling link breaks a plain copy of the run dir.
    """
    logs = (run_dir / RAY_DIR).resolve()
    logs.mkdir(parents=True, exist_ok=True)
    short = None
    if len(str(logs)) > MAX_TEMP_DIR:
        short = Path(tempfile.mkdtemp(prefix="evoquant-", dir="/tmp"))
        (short / RAY_DIR).symlink_to(logs, target_is_directory=True)
    try:
        yield logs if short is None else short / RAY_DIR
    finally:
        if short is not None:
            shutil.rmtree(short)  # the symlink, not the logs it points to
        (logs / "session_latest").unlink(missing_ok=True)
        for sockets in logs.glob("session_*/sockets"):
            shutil.rmtree(sockets, ignore_errors=True)


def put_back_sigterm_handler(handler: object) -> None:
    """``handler`` again after ``ray.init`` replaced it, if it is a Python function;
    Ray's own exit stays otherwise (a plain default would skip Ray's shutdown)."""
    if callable(handler) and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


@contextmanager
def ray_session(
    address: str | None,
    run_dir: Path,
    dashboard: bool = False,
    num_cpus: int | None = None,
) -> Iterator[None]:
    """Connected to Ray inside; Ray shut down after, also on Ctrl-C or an error.

    ``num_cpus``: the CPUs a private instance offers (default: the machine's). A
    process already connected (a test, a notebook) keeps its session and its settings.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    local_only = address is None or _is_loopback(address)
    if local_only:
        # Ray otherwise swaps 127.0.0.1 for the machine's network address: with this,
        # the node's address, hence every listener, stays 127.0.0.1
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray
    from ray._private import ray_constants

    if local_only:  # the variable is read at import, which may have come first
        ray_constants.ENABLE_RAY_CLUSTER = False
    if ray.is_initialized():
        yield
        return
    with ExitStack() as stack:
        sigterm_handler = signal.getsignal(signal.SIGTERM)
        try:
            if address is None:
                temp = stack.enter_context(temp_dir_for(run_dir))
                context = ray.init(
                    address="local",
                    num_cpus=num_cpus,
                    _temp_dir=str(temp),
                    include_dashboard=dashboard,
                    dashboard_host="127.0.0.1",
                    log_to_driver=False,
                    logging_level=logging.ERROR,
                )
                log.info("started a local Ray instance; its logs are in %s", temp)
                if dashboard:
                    log.warning("Ray dashboard: http://%s", context.dashboard_url)
            else:
                ray.init(
                    address=address, log_to_driver=False, logging_level=logging.ERROR
                )
                log.info("joined the Ray cluster at %s", address)
        except (ConnectionError, RuntimeError) as error:
            raise UserError(
                f"cannot use Ray at {address or 'a new local instance'}: "
                f"{str(error).strip().splitlines()[0]}"
            ) from None
        put_back_sigterm_handler(sigterm_handler)
        try:
            yield
        finally:
            ray.shutdown()
