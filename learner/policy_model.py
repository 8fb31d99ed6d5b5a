"""Loading the policy the learner trains: the captioner (vision-language) or the reasoner (text)."""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoTokenizer

from vlm.processor import load_captioner_processor


def load_policy_processor(role: str, checkpoint: str):
    """(processor, tokenizer) of the policy: the captioner's processor rebuilds its images; a
    text policy has none (None)."""
    if role == "reasoner":
        return None, AutoTokenizer.from_pretrained(checkpoint)
    processor = load_captioner_processor(checkpoint)
    return processor, processor.tokenizer


def load_policy_model(role: str, checkpoint: str, dtype: str, freeze_vision: bool) -> torch.nn.Module:
    """The policy in train mode; the captioner's vision tower frozen when `freeze_vision`."""
    torch_dtype = torch.bfloat16 if dtype == "bf16" else torch.float32
    if role == "reasoner":
        return AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch_dtype).train()
    model = AutoModelForImageTextToText.from_pretrained(checkpoint, dtype=torch_dtype)
    if freeze_vision:
        model.model.visual.requires_grad_(False)
    return model.train()
