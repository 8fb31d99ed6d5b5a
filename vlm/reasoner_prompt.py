"""The reasoner's prompt: caption + question, reason step by step, answer in \\boxed{}.

Kept short on purpose: the bundled reasoner is a tiny model with a tiny context budget.
"""

from __future__ import annotations

from typing import Any

from transformers import PreTrainedTokenizerBase

from vlm.boxed import boxed_parts

REASONER_INSTRUCTION = "Think step by step, then give the final answer in \\boxed{}."


def reasoner_messages(caption: str, question: str) -> list[dict[str, Any]]:
    """One user turn: the caption stands in for the image the reasoner cannot see.

    The question comes first so the reasoner reads the description already knowing what to
    look for: a causal model can then weigh each described object as it reads it. With the
    question last, the tiny bundled reasoner never learned to match it against the objects.
    """
    text = f"Question: {question}\nImage description: {caption}\n{REASONER_INSTRUCTION}"
    return [{"role": "user", "content": text}]


def two_stage_messages(caption: str, question: str, tentative_answer: str) -> list[dict[str, Any]]:
    """The method's inference prompt: the reasoner also reads the captioner's own answer, as a hint
    that may be wrong, and answers for itself.

    Only the tentative answer's boxed value is handed on ("\\boxed{3}"; nothing when it boxed
    none), not its steps: a captioner's answer walks the objects in the very steps of the
    reasoner's reply, and the tiny bundled reasoner copied those steps' counts, wrong ones
    included (build format 17: 22 replies of 512 lost against caption-only, 4 gained). The hint
    comes before the description, so the prompt ends as the caption-only one does.
    """
    parts = boxed_parts(tentative_answer)
    hint = f"\\boxed{{{parts[-1]}}}" if parts else ""
    text = (
        f"Question: {question}\nA first answer, which may be wrong: {hint}\n"
        f"Image description: {caption}\n{REASONER_INSTRUCTION}"
    )
    return [{"role": "user", "content": text}]


def encode_chat(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, Any]]) -> list[int]:
    """Token ids of the chat-formatted conversation, ending with the assistant turn's opening."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    # The chat template already wrote every special token; add none of the tokenizer's own.
    return tokenizer.encode(text, add_special_tokens=False)


def encode_reasoner_prompt(tokenizer: PreTrainedTokenizerBase, caption: str, question: str) -> list[int]:
    """Token ids of the scoring prompt for one caption and question."""
    return encode_chat(tokenizer, reasoner_messages(caption, question))
