"""Test-session settings applied before anything imports Prefect.

Prefect runs against a throw-away home (its SQLite database and settings) and never
against a server the developer may have configured; analytics are off (no network here).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

_prefect_home = tempfile.mkdtemp(prefix="ivig-audit-prefect-")
atexit.register(shutil.rmtree, _prefect_home, ignore_errors=True)
os.environ["PREFECT_HOME"] = _prefect_home
os.environ.pop("PREFECT_API_URL", None)
os.environ.pop("PREFECT_PROFILES_PATH", None)
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.pop("IVIG_AUDIT_PSEUDONYM_KEY", None)


def pytest_unconfigure() -> None:
    """Stop Prefect's embedded server while output is still open (its atexit hook logs to a closed stream)."""
    import sys

    if "prefect.server.api.server" not in sys.modules:
        return
    from prefect.logging.handlers import APILogWorker
    from prefect.server.api.server import SubprocessASGIServer

    APILogWorker.drain_all(timeout=5)  # send buffered run logs while the server still listens
    for server in list(SubprocessASGIServer._instances.values()):
        server.stop()
