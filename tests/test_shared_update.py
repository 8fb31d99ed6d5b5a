"""A weight update handed to a vLLM engine's process through shared memory (actors/shared_update.py)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from actors.shared_update import ALIGNMENT, SharedUpdate, offsets, read_shared_update, shared_update
from actors.weight_tensors import named_tensors
from wire.buffers import MalformedMessage
from wire.weights import RawTensor, WeightUpdate


def _update() -> WeightUpdate:
    # Sizes that are not multiples of the alignment, and an empty tensor between them.
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.zeros((0,), dtype=np.float32)
    c = np.arange(5, dtype=np.float16)
    return WeightUpdate(
        7,
        (
            RawTensor("a", "float32", (2, 3), memoryview(a.tobytes())),
            RawTensor("b", "float32", (0,), b.tobytes()),
            RawTensor("c", "float16", (5,), c.tobytes()),
        ),
    )


def test_offsets_start_each_tensor_on_the_next_aligned_byte():
    # 24 bytes end at 24, so the next starts at 64; an empty one takes no room; 10 more end at 74.
    assert offsets([24, 0, 10]) == ([0, 64, 64], 74)
    assert offsets([]) == ([], 0)
    assert all(start % ALIGNMENT == 0 for start in offsets([1, 2, 3])[0])


def test_an_update_read_back_from_shared_memory_is_the_update_written():
    update = _update()
    with shared_update(update) as shared:
        assert os.path.getsize(shared.path) == offsets([24, 0, 10])[1]
        read = read_shared_update(shared)
        tensors = dict(named_tensors(read))
    assert not os.path.exists(shared.path)  # removed after the block
    assert read.version == 7 and [t.name for t in read.tensors] == ["a", "b", "c"]
    assert tensors["a"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert tensors["b"].shape == (0,)
    assert tensors["c"].tolist() == [0, 1, 2, 3, 4]


def test_the_loaders_tensors_are_views_of_the_mapped_file_not_copies():
    with shared_update(_update()) as shared:
        read = read_shared_update(shared)
        # The tensor's memory is the mapping's: writing through the file's own mapping is not
        # possible (read-only), so compare addresses instead.
        first = read.tensors[0].data
        assert isinstance(first, memoryview) and first.readonly
        base = np.frombuffer(read.tensors[2].data, dtype=np.uint8)
        assert np.shares_memory(base, np.frombuffer(first.obj, dtype=np.uint8))


def test_a_file_of_the_wrong_size_or_a_bad_header_is_refused_by_name():
    with shared_update(_update()) as shared:
        with open(shared.path, "ab") as file:
            file.write(b"x")
        with pytest.raises(ValueError, match="expected 74"):
            read_shared_update(shared)
        with pytest.raises(MalformedMessage, match="WeightUpdate"):
            read_shared_update(SharedUpdate(shared.path, b"\x01\x02"))
