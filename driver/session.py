"""The Ray session of one command, its stop signals, and its exit code.

Every command and benchmark starts Ray through `ray_session` and turns what ended it into a
shell's exit code through `exit_code`: 0 done, 2 a usage, config, data or placement error (the
message names it), 130 Ctrl-C, 143 a `kill` (a cluster scheduler ending the job).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from configs.load import ConfigError
from configs.schema import TrainConfig
from driver.inputs import DataError
from supervisor.placement import PlacementError

log = logging.getLogger("launch")
# The stop signal received: SIGINT (Ctrl-C) or SIGTERM, which stops a run the same way. Kept as
# a flag as well as raised: Ray re-raises a plain KeyboardInterrupt from its calls, and one
# arriving inside a Ray call has been seen to vanish there (the run went on training); the
# progress loop checks the flag every second (`stop_requested`).
_stop_signal: int | None = None
# What each refusal is called in its one-line message.
_REFUSALS = ((ConfigError, "config error"), (DataError, "data error"), (PlacementError, "placement error"))


def worker_env() -> dict[str, str]:
    """Environment for every role's process."""
    env = {
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": "1",
        # Keep the progress bar readable: no per-process weight-loading bars or info chatter.
        "TRANSFORMERS_VERBOSITY": "error",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    }
    try:
        import torch

        if not torch.cuda.is_available():
            env["DS_ACCELERATOR"] = "cpu"
    except ImportError:
        pass
    return env


def _stop(signum, frame) -> None:
    global _stop_signal
    _stop_signal = signum
    raise KeyboardInterrupt


def stop_requested() -> bool:
    """Whether Ctrl-C or a `kill` has asked the command to stop."""
    return _stop_signal is not None


def stop_exit_code() -> int:
    """A shell's exit code for the stop signal received (130 for Ctrl-C, 143 for a `kill`)."""
    return 128 + (_stop_signal or signal.SIGINT)


@contextmanager
def ray_session(config: TrainConfig) -> Iterator[None]:
    """Ray for one command (ray.address, else a new local Ray of its own), with the roles'
    environment; Ctrl-C and `kill` raise KeyboardInterrupt inside; Serve and Ray are shut down
    however the command ends."""
    import ray

    env = worker_env()
    os.environ.update(env)
    if config.ray.address:
        ray.init(address=config.ray.address, runtime_env={"env_vars": env})
    else:
        # "local": never the cluster a past `ray start` left its address behind for (ray.init's
        # default joins that one).
        ray.init(address="local", num_cpus=config.ray.num_cpus, include_dashboard=False, runtime_env={"env_vars": env})
    # After ray.init, which installs a SIGTERM handler of its own that aborts the driver: a
    # `kill` of the driver then stops the run the way Ctrl-C does, leaving no role behind.
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        yield
    finally:
        from ray import serve

        if ray.is_initialized():
            serve.shutdown()
            ray.shutdown()


def exit_code(command: Callable[[], int]) -> int:
    """Run `command`; its own exit code, or the one for what stopped it (the module's docstring)."""
    try:
        return command()
    except KeyboardInterrupt:
        log.warning("%s: every role stopped", "terminated" if _stop_signal == signal.SIGTERM else "interrupted")
        return stop_exit_code()
    except tuple(kind for kind, _ in _REFUSALS) as err:
        name = next(name for kind, name in _REFUSALS if isinstance(err, kind))
        print(f"{name}: {err}", file=sys.stderr)
        return 2
