"""A checkpoint's random state round-trips through a file loaded with weights_only=True
(learner/checkpoint.py): a resume unpickles nothing and draws what the run would have drawn."""

from __future__ import annotations

import random

import numpy as np
import torch

from learner.checkpoint import _random_state, _set_random_state, load_random_state


def _draws() -> tuple:
    return random.random(), random.gauss(0, 1), float(np.random.rand()), float(np.random.randn()), float(torch.rand(1))


def test_the_random_state_restores_every_generator_from_a_weights_only_file(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    random.gauss(0, 1), np.random.randn()  # cached Gaussian halves are part of the state
    torch.save(_random_state(), tmp_path / "state.pt")
    expected = _draws()
    _set_random_state(load_random_state(tmp_path / "state.pt"))
    assert _draws() == expected


def test_a_state_file_with_pickled_objects_is_not_unpickled(tmp_path, caplog):
    class Payload:
        def __reduce__(self):
            return (print, ("unpickled!",))

    torch.save({"python": Payload()}, tmp_path / "torch-state.pt")
    assert load_random_state(tmp_path / "torch-state.pt") is None
    assert "holds objects beyond tensors and numbers" in caplog.text and "fresh random streams" in caplog.text
