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
