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
