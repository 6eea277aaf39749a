"""Connecting to Ray, quietly, and leaving it as it was found.

``runner.ray.address``: None starts a local Ray for this run (``runner.ray.num_cpus`` CPUs, no
dashboard) and shuts it down at the end; ``"auto"`` or ``ray://host:port`` connects to a running
cluster, which is left running. A Ray already initialized in this process (a notebook, a test
session) is used as is and left running.

Ray's own chatter stays out of the user's stderr where Ray allows it: no worker logs forwarded to
the driver, the driver's Ray loggers at ERROR, Ray Data's progress bars and execution banners off.
Ray keeps its full logs in its session directory (``/tmp/ray/session_latest/logs``).
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any

#: Loggers Ray writes to the driver's stderr.
_RAY_LOGGERS = ("ray", "ray.data", "ray.train", "ray.tune", "ray.serve", "ray.llm")


def quiet_ray() -> None:
    """Ray's driver-side loggers at ERROR, Ray Data's progress bars and banners off."""
    # A block of whole personas is one task: fewer blocks than workers is expected, not a problem.
    warnings.filterwarnings("ignore", message="The maximum number of concurrent tasks", category=UserWarning)
    os.environ.setdefault("RAY_DATA_LOG_LEVEL", "ERROR")  # Ray Data re-applies its config from this
    for name in _RAY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    ctx.enable_operator_progress_bars = False


def start_ray(*, address: str | None, num_cpus: int | None, runtime_env: dict[str, Any] | None = None) -> bool:
    """Use the Ray this process is connected to, or start / connect one; True if this call did.

    Raises:
        simsurvey.errors.UserError: the cluster at ``address`` cannot be reached.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report from a survey run
    import ray

    from simsurvey.errors import UserError

    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.ERROR,
                                  "log_to_driver": False, "configure_logging": True}
        if runtime_env:
            kwargs["runtime_env"] = runtime_env
        try:
            if address is None:
                ray.init(num_cpus=num_cpus, **kwargs)
            else:
                ray.init(address=address, **kwargs)
        except (ConnectionError, ValueError, RuntimeError) as err:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise UserError(f"runner.ray.address: cannot connect to Ray at {address or 'a new local instance'}: "
                            f"{first[:300]}") from None
        started = True
    quiet_ray()
    return started


def stop_ray() -> None:
    """Shut down (or disconnect from) the Ray :func:`start_ray` started."""
    import ray

    ray.shutdown()
