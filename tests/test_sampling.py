"""The sampling distribution on hand-worked numbers (vlm/sampling.py).

Most cases use logits log([1, 2, 3, 4]): their softmax is [0.1, 0.2, 0.3, 0.4] (the weights over
their sum, 10), so every kept set's renormalised probabilities are easy fractions.
"""

import math

import pytest
import torch

from vlm.sampling import SamplingSpec, processed_logits

NEG_INF = float("-inf")
LOGITS = torch.tensor([1.0, 2.0, 3.0, 4.0]).log()  # softmax [0.1, 0.2, 0.3, 0.4]


def spec(
    temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, suppressed: tuple[int, ...] = ()
) -> SamplingSpec:
    return SamplingSpec(temperature=temperature, top_k=top_k, top_p=top_p, suppressed_token_ids=suppressed)


def logprobs(logits: torch.Tensor, sampling: SamplingSpec, keep: torch.Tensor | None = None) -> torch.Tensor:
    return processed_logits(logits, sampling, keep).log_softmax(dim=-1)


def expected(probabilities: list[float]) -> torch.Tensor:
    """log of the given probabilities, -inf where 0."""
    return torch.tensor([math.log(p) if p > 0 else NEG_INF for p in probabilities])


def test_all_off_is_the_plain_softmax():
    torch.testing.assert_close(logprobs(LOGITS, spec()), expected([0.1, 0.2, 0.3, 0.4]))


def test_temperature_divides_the_logits():
    # log([1, 4, 16]) / 2 = log([1, 2, 4]): probabilities [1, 2, 4] / 7.
    logits = torch.tensor([1.0, 4.0, 16.0]).log()
    torch.testing.assert_close(processed_logits(logits, spec(temperature=2.0)), logits / 2)
    torch.testing.assert_close(logprobs(logits, spec(temperature=2.0)), expected([1 / 7, 2 / 7, 4 / 7]))


def test_suppressed_ids_get_no_probability():
    # Token 1 (weight 2) masked: the rest renormalise over weights 1 + 3 + 4 = 8.
    torch.testing.assert_close(logprobs(LOGITS, spec(suppressed=(1,))), expected([1 / 8, 0, 3 / 8, 4 / 8]))


def test_top_k_keeps_the_k_most_likely():
    # k=2 keeps 0.3 and 0.4: renormalised over 0.7, 3/7 and 4/7.
    torch.testing.assert_close(logprobs(LOGITS, spec(top_k=2)), expected([0, 0, 3 / 7, 4 / 7]))


def test_top_k_keeps_every_token_tied_with_the_kth():
    # k=1 on [1, 2, 2, 0]: the largest value, 2, is held by two tokens; both stay (as vLLM's
    # sort path and transformers' `scores < kth` keep them), each with e^2 / (2 e^2) = 1/2.
    logits = torch.tensor([1.0, 2.0, 2.0, 0.0])
    torch.testing.assert_close(logprobs(logits, spec(top_k=1)), expected([0, 0.5, 0.5, 0]))


def test_top_k_at_or_above_the_vocabulary_is_off():
    torch.testing.assert_close(logprobs(LOGITS, spec(top_k=4)), expected([0.1, 0.2, 0.3, 0.4]))
    torch.testing.assert_close(logprobs(LOGITS, spec(top_k=9)), expected([0.1, 0.2, 0.3, 0.4]))


def test_top_p_keeps_the_nucleus():
    # Ascending [0.1, 0.2, 0.3, 0.4], cumulative [0.1, 0.3, 0.6, 1.0]; p=0.65 drops those with
    # cumulative <= 1 - 0.65 = 0.35: tokens 0 and 1. Token 2 stays: the mass above it (0.4) is
    # still below p. Kept 0.3 and 0.4, renormalised 3/7 and 4/7.
    torch.testing.assert_close(logprobs(LOGITS, spec(top_p=0.65)), expected([0, 0, 3 / 7, 4 / 7]))
    # p=0.75: threshold 0.25 drops only token 0 (0.1); token 1's cumulative 0.3 > 0.25 stays.
    # Kept 0.2 + 0.3 + 0.4 = 0.9: 2/9, 3/9, 4/9.
    torch.testing.assert_close(logprobs(LOGITS, spec(top_p=0.75)), expected([0, 2 / 9, 3 / 9, 4 / 9]))


def test_top_p_always_keeps_the_most_likely_token():
    # p=1e-8: 1 - 1e-8 rounds to 1.0 in float32 (its spacing just below 1 is 2^-24 = 6e-8), so
    # every cumulative probability is <= the threshold, the last (1) included: without the rule
    # no token would stay. The most likely one does, with all the probability.
    torch.testing.assert_close(logprobs(LOGITS, spec(top_p=1e-8)), expected([0, 0, 0, 1]))


def test_top_p_sees_the_tempered_distribution():
    # log([1, 4, 16]) at temperature 2 is [1, 2, 4] / 7 = [0.143, 0.286, 0.571]; cumulative
    # [0.143, 0.429, 1]; p=0.6 drops cumulative <= 0.4, token 0 only: 2/6 and 4/6 remain.
    # Untempered ([1, 4, 16] / 21, cumulative [0.048, 0.238, 1]) it would drop token 1 too.
    logits = torch.tensor([1.0, 4.0, 16.0]).log()
    torch.testing.assert_close(logprobs(logits, spec(temperature=2.0, top_p=0.6)), expected([0, 1 / 3, 2 / 3]))
    torch.testing.assert_close(logprobs(logits, spec(top_p=0.6)), expected([0, 0, 1]))


def test_top_p_runs_on_what_top_k_kept():
    # k=3 keeps [0.2, 0.3, 0.4], renormalised [2/9, 3/9, 4/9], cumulative [0.222, 0.556, 1].
    # p=0.75 then drops cumulative <= 0.25: token 1. Kept 3/7 and 4/7. Either alone keeps
    # tokens 1-3 (top-p over the full distribution: token 1's cumulative 0.3 > 0.25).
    torch.testing.assert_close(logprobs(LOGITS, spec(top_k=3, top_p=0.75)), expected([0, 0, 3 / 7, 4 / 7]))
    torch.testing.assert_close(logprobs(LOGITS, spec(top_k=3)), expected([0, 2 / 9, 3 / 9, 4 / 9]))


def test_suppression_comes_before_top_k():
    # The most likely token (3) suppressed, then k=2 keeps the two largest of the rest: weights
    # 2 and 3, renormalised 2/5 and 3/5. Suppressing after top-k would leave token 2 alone.
    torch.testing.assert_close(logprobs(LOGITS, spec(top_k=2, suppressed=(3,))), expected([0, 2 / 5, 3 / 5, 0]))


def test_kept_tokens_normalise_to_one():
    kept = logprobs(LOGITS, spec(top_k=3, top_p=0.75)).exp()
    torch.testing.assert_close(kept.sum(), torch.tensor(1.0))


def test_keep_rescues_a_sampled_token_from_top_k_and_top_p_only():
    # k=2 keeps tokens 2 and 3; token 1 must stay as well: weights 2, 3, 4 over 9.
    torch.testing.assert_close(
        logprobs(LOGITS, spec(top_k=2), keep=torch.tensor(1)), expected([0, 2 / 9, 3 / 9, 4 / 9])
    )
    # A suppressed token is never rescued (it cannot have been sampled).
    got = logprobs(LOGITS, spec(top_k=2, suppressed=(1,)), keep=torch.tensor(1))
    torch.testing.assert_close(got, expected([0, 0, 3 / 7, 4 / 7]))


def test_rows_are_processed_independently():
    # [2, 3, V] logits, a different keep per row: each row as it would be alone.
    rows = torch.stack([LOGITS, LOGITS.flip(0), torch.tensor([1.0, 2.0, 2.0, 0.0])] * 2).reshape(2, 3, 4)
    keep = torch.tensor([[0, 3, 1], [1, 2, 3]])
    sampling = spec(temperature=0.5, top_k=3, top_p=0.8, suppressed=(2,))
    batched = processed_logits(rows, sampling, keep)
    for i in range(2):
        for j in range(3):
            torch.testing.assert_close(batched[i, j], processed_logits(rows[i, j], sampling, keep[i, j]))


def test_gradient_flows_through_kept_logits_only():
    # k=2 keeps tokens 2 and 3 (probabilities 3/7, 4/7). d log p_3 / d x_j = [j == 3] - p_j:
    # [0, 0, -3/7, 3/7]; the dropped tokens have p_j = 0, so no gradient.
    logits = LOGITS.clone().requires_grad_(True)
    logprobs(logits, spec(top_k=2))[3].backward()
    torch.testing.assert_close(logits.grad, torch.tensor([0.0, 0.0, -3 / 7, 3 / 7]))


def test_logits_are_not_modified_in_place():
    logits = LOGITS.clone()
    processed_logits(logits, spec(temperature=2.0, top_k=2, top_p=0.5, suppressed=(0,)))
    assert torch.equal(logits, LOGITS)


@pytest.mark.parametrize("settings", [dict(temperature=0.0), dict(top_k=-1), dict(top_p=0.0), dict(top_p=1.5)], ids=str)
def test_spec_rejects_out_of_range_settings(settings):
    with pytest.raises(ValueError, match="sampling spec"):
        spec(**settings)
