"""The one-line reason and exit code for an agent that would not start.

The CLI (``run --headless``, every command that opens the data directory) and the dashboard
(which shows the reason and exits with the code) both take them from here, so they say the
same thing for the same failure.
"""

from __future__ import annotations

from aegis_tui.config import Config
from aegis_tui.exit_codes import EXIT_BUSY, EXIT_FAIL, EXIT_USAGE
from aegis_tui.paths import DataPaths
from aegis_tui.policy.devices import DeviceUnavailable
from aegis_tui.policy.lm_teacher import TeacherLoadError
from aegis_tui.storage.database import DatabaseError
from aegis_tui.storage.lock import DataDirLocked
from aegis_tui.text import clean
from aegis_tui.training.example_log import ExampleLogError

# What opening the runtime raises for reasons a person can act on.
OPEN_ERRORS = (DataDirLocked, DeviceUnavailable, TeacherLoadError, DatabaseError,
               ExampleLogError, OSError)


def open_failure(exc: BaseException, config: Config, paths: DataPaths) -> tuple[str, int]:
    """The one-line reason and exit code for ``AgentRuntime.open`` raising ``exc``."""
    if isinstance(exc, DataDirLocked):
        return str(exc), EXIT_BUSY
    if isinstance(exc, DeviceUnavailable):
        return f"--device {config.device}: {exc}", EXIT_USAGE
    if isinstance(exc, TeacherLoadError):
        model = clean(config.teacher_model, 120)
        named = "" if model in str(exc) else f" ({model})"
        return (f"the teacher model{named} could not be loaded: {exc} (use --teacher rules, "
                "or --teacher auto to fall back automatically)"), EXIT_FAIL
    if isinstance(exc, DatabaseError | ExampleLogError):
        return str(exc), EXIT_FAIL
    if isinstance(exc, OSError):
        return f"cannot use data directory {paths.root}: {exc}", EXIT_FAIL
    return f"could not start the agent: {type(exc).__name__}: {exc}", EXIT_FAIL
