"""Teacher-forced logprobs of sampled completions under the current policy."""

from __future__ import annotations

import torch

from learner.batching import PolicyBatch
from learner.shared_vision import forward_inputs
from vlm.sampling import SamplingSpec, processed_logits


def sequence_logprobs(model: torch.nn.Module, batch: PolicyBatch, spec: SamplingSpec) -> torch.Tensor:
    """Logprob of each completion token, `[S, T]`, under the distribution `spec` samples from
    (temperature, suppressed ids, top-k, top-p), as generation processed the logits.

    Processing exactly as generation did makes these comparable with the behaviour logprobs,
    which describe the distribution the actor sampled from.
    """
    logits = model(**forward_inputs(model, batch)).logits  # [S, L + T, V]
    steps = batch.completion_ids.shape[1]
    # The token at position p is predicted by the logits at p - 1.
    predicting = logits[:, batch.prompt_len - 1 : batch.prompt_len - 1 + steps].float()  # [S, T, V]
    # The sampled tokens stay in the kept set: the actor kept them, and our logits differ from its
    # by float noise only (see `processed_logits`). Padding stays too, so that -inf * 0 gives no NaN.
    logp = processed_logits(predicting, spec, keep=batch.completion_ids).log_softmax(dim=-1)  # [S, T, V]
    return logp.gather(-1, batch.completion_ids.unsqueeze(-1)).squeeze(-1) * batch.completion_mask
