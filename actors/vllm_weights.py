"""In-place weight loading inside vLLM's workers (`worker_extension_cls`), on CPU and GPU alike.

The engine runs in its own process; `collective_rpc` carries only plain data across (a tensor
argument above vLLM's zero-copy threshold arrives broken), so an update crosses as the same
frames the learner publishes (`actors.weight_update`: a msgpack header and raw buffers) and is
decoded, and checked, in the worker. Loading goes through the model runner's layer-wise reload,
which maps Hugging Face names to vLLM's, re-packs the layers the CPU backend repacks, and clears
the worker's encoder cache. A plain `model.load_weights` silently does nothing useful on CPU.
"""

from __future__ import annotations

from actors.weight_update import decode_weight_update


class WeightReloadExtension:
    """Mixed into vLLM's worker: its methods are callable through `collective_rpc`."""

    def reload_weight_frames(self, frames: list[bytes]) -> int:
        """Load an encoded `WeightUpdate` in place; returns how many tensors it held."""
        update = decode_weight_update(frames)
        self.model_runner.reload_weights(weights_iterator=update.tensors.items())
        return len(update.tensors)
