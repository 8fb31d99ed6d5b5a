"""Teacher-forced logprobs of sampled completions under the current policy."""

from __future__ import annotations

import torch

from learner.batching import PolicyBatch


def sequence_logprobs(
    model: torch.nn.Module, batch: PolicyBatch, temperature: float, suppressed_ids: list[int]
) -> torch.Tensor:
    """Logprob of each completion token, `[G, T]`, under softmax(logits / temperature) with
    `suppressed_ids` masked out.

    Tempering and masking exactly as generation did makes these comparable with the behaviour
    logprobs, which describe the distribution the actor sampled from.
    """
    logits = model(**batch.model_inputs()).logits  # [G, L + T, V]
    steps = batch.completion_ids.shape[1]
    # The token at position p is predicted by the logits at p - 1.
    predicting = logits[:, batch.prompt_len - 1 : batch.prompt_len - 1 + steps].float() / temperature
    predicting[..., suppressed_ids] = float("-inf")
    logp = predicting.log_softmax(dim=-1)  # [G, T, V]
    return logp.gather(-1, batch.completion_ids.unsqueeze(-1)).squeeze(-1) * batch.completion_mask
