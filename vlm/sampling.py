"""The distribution caption tokens are sampled from: one spec, one function, for the engines and the learner.

GRPO's importance ratio compares each sampled token's behaviour logprob (what the actor's engine
reports) with the learner's teacher-forced logprob of the same token; both must describe the one
distribution the token was drawn from. The transformers engine samples through `processed_logits`
itself, vLLM is given the same settings and runs its own sampler (the same steps, checked against
its source below), and the learner computes its logprobs with `processed_logits`.

The steps, in vLLM's order (vllm/v1/sample/sampler.py, 0.32: `forward` applies the allowed-ids
mask in `apply_logits_processors`, then `sample` divides by the temperature and hands the logits
to `TopKTopPSampler`, whose `apply_top_k_top_p_pytorch` / `apply_top_k_only` in
ops/topk_topp_sampler.py does top-k, then top-p; "processed_logprobs" is the log-softmax of the
result). Masking before or after dividing by the temperature is the same: -inf / T = -inf.
transformers' warpers (TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper) run in the
same order with the same comparisons.

Where implementations can still disagree, only at a boundary tie:
- top-p's threshold 1 - top_p: vLLM takes it in float32 (p is a float32 tensor: 1 - 0.9 =
  0.10000002), transformers in double, compared as float32 (0.10000000); we follow vLLM. A token
  whose cumulative probability falls between the two is kept by one and dropped by the other.
- equal logits across the top-p cut: the (unstable) sort orders them, so which of them is dropped
  may differ between implementations; the same holds for the float32 cumulative sum's last bits.
- vLLM on GPUs does top-k/top-p in a Triton pivot-search kernel (ops/topk_topp_triton.py), not
  a sort: at a tie on the k-th value it keeps exactly k tokens (we, vLLM's CPU path and
  transformers keep every tied token), and it finds the top-p cut by a search to ~1e-9.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from configs.schema import SamplingConfig
from vlm.caption_prompt import suppressed_caption_token_ids


@dataclass(frozen=True)
class SamplingSpec:
    """How each caption token is drawn from the model's logits (steps in field order)."""

    # The logits are divided by it (> 0).
    temperature: float
    # Keep the k largest tempered logits, every token tied with the k-th kept too; 0 = off.
    top_k: int
    # Then keep the most likely tokens up to and including the one whose cumulative probability
    # (over what top-k kept) reaches top_p (nucleus); the most likely token always stays. 1.0 = off.
    top_p: float
    # Token ids never sampled: their logits are -inf before top-k and top-p see them.
    suppressed_token_ids: tuple[int, ...]

    def __post_init__(self) -> None:
        if not (self.temperature > 0 and self.top_k >= 0 and 0 < self.top_p <= 1):
            raise ValueError(f"sampling spec: need temperature > 0, top_k >= 0, 0 < top_p <= 1; got {self}")


def caption_sampling_spec(config: SamplingConfig, tokenizer: Any) -> SamplingSpec:
    """The captioner's sampling spec: the config's settings, and the vision placeholders suppressed."""
    return SamplingSpec(
        temperature=config.temperature,
        top_k=config.top_k,
        top_p=config.top_p,
        suppressed_token_ids=tuple(suppressed_caption_token_ids(tokenizer)),
    )


def processed_logits(logits: torch.Tensor, spec: SamplingSpec, keep: torch.Tensor | None = None) -> torch.Tensor:
    """The logits sampled from, `[..., V]` -> `[..., V]`: divided by the temperature, suppressed
    ids at -inf, then top-k, then top-p, every dropped token at -inf. Their softmax is the sampling
    distribution; their log-softmax the logprobs, normalised over the kept tokens.

    Leaves `logits` as they are; differentiable in the kept logits (which tokens are kept is a
    selection, with no gradient of its own). `keep` (int `[...]`, optional) names one token per
    row that top-k and top-p must not drop: the learner passes the tokens the actor sampled. Its
    logits differ from the engine's by float noise (~1e-6), enough to move a token sitting on the
    top-k or top-p boundary out of the kept set, which would give a sampled token logprob -inf.
    """
    # A new tensor, masked in place below: no second [..., V] copy (the learner's is [G, T, V]).
    processed = logits / spec.temperature
    if spec.suppressed_token_ids:
        suppressed = torch.tensor(spec.suppressed_token_ids, device=logits.device)
        processed.index_fill_(-1, suppressed, float("-inf"))
    top_k_on = 0 < spec.top_k < logits.shape[-1]
    if not top_k_on and spec.top_p >= 1.0:
        return processed
    scores = processed.detach()  # decides which tokens stay; no gradient flows through the choice
    drop = torch.zeros_like(scores, dtype=torch.bool)
    if top_k_on:
        drop = _below_top_k(scores, spec.top_k)
        scores = scores.masked_fill(drop, float("-inf"))  # top-p sees only what top-k kept
    if spec.top_p < 1.0:
        drop = drop | _outside_top_p(scores, spec.top_p)
    if keep is not None:
        drop = drop.scatter(-1, keep.unsqueeze(-1).long(), False)
    return processed.masked_fill_(drop, float("-inf"))


def _below_top_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    """True where a logit is below the k-th largest of its row (a tie with the k-th stays)."""
    kth = scores.topk(k, dim=-1).values[..., -1:]  # [..., 1]
    return scores < kth


def _outside_top_p(scores: torch.Tensor, top_p: float) -> torch.Tensor:
    """True where nucleus sampling drops a token: in ascending order of logit, those whose
    cumulative probability is <= 1 - top_p, never the most likely one (vLLM's and transformers'
    rule). Equivalently, a token stays iff the probability of the tokens above it is < top_p."""
    ascending, order = scores.sort(dim=-1)
    cumulative = ascending.softmax(dim=-1).cumsum(dim=-1)
    threshold = float(1 - torch.tensor(top_p, dtype=torch.float32))  # in float32, as vLLM computes it
    drop_sorted = cumulative <= threshold
    drop_sorted[..., -1] = False
    return drop_sorted.scatter(-1, order, drop_sorted)
