from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    # Tiny models gain nothing from a second thread, and on a 2-core machine shared with other
    # busy processes two OpenMP threads made generate() 30-60x slower (spin-waiting).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory) -> Path:
    """One cache of the tiny bundled task (tests/tiny_task.py) for every run that only reads it:
    each build costs ~12 s. Tests of the cache itself and of `eval data=...`, which writes
    captions into its cache, keep their own."""
    return tmp_path_factory.mktemp("tiny-task")


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory):
    """The tiny task with 8 training and 4 held-out records, for tests that load its models
    and records directly."""
    from task.bundle import ensure_bundled_task
    from tests.tiny_task import TINY_WARM_START

    return ensure_bundled_task(
        tmp_path_factory.mktemp("tiny-bundle"), seed=0, num_train=8, num_eval=4, warm_start=TINY_WARM_START
    )


@pytest.fixture
def run_launch():
    """Start `python launch.py ARGS` (tests.launched); whatever it started is killed after the
    test, passed or failed, so no test slows the ones after it."""
    from tests.launched import Launched

    started: list[Launched] = []

    def start(args: list[str], env: dict[str, str] | None = None, prefix: tuple[str, ...] = ()) -> Launched:
        started.append(Launched(args, env, prefix))
        return started[-1]

    yield start
    for run in started:
        run.kill()
