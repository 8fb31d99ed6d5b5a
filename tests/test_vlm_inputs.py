"""Captioner inputs: processor loading (both sides of the CPU fallback), prompts, batching, generate."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

import vlm.processor as processor_module
from serve.reasoner_prompt import encode_reasoner_prompt, reasoner_messages
from task.bundle import ensure_bundled_task
from task.scenes import SceneObject, render_scene
from tests.tiny_task import TINY_WARM_START
from vlm.caption_prompt import (
    CAPTION_SYSTEM_PROMPT,
    batch_caption_inputs,
    caption_messages,
    encode_caption_prompt,
    mm_token_type_ids,
    vision_inputs,
)
from vlm.processor import (
    ImageOnlyQwen2_5_VLProcessor,
    load_captioner_processor,
    load_tokenizer,
    torchvision_available,
)

# 56x56 image, 14 px patches: (56/14)^2 = 16 patches; merged 2x2 into 16/4 = 4 vision tokens.
PATCHES = (56 // 14) ** 2
IMAGE_TOKENS = PATCHES // (2 * 2)
# Each patch row holds 3 channels x 2 temporal frames x 14 x 14 pixels.
PATCH_DIM = 3 * 2 * 14 * 14
G = 4


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory):
    return ensure_bundled_task(tmp_path_factory.mktemp("cache"), seed=0, num_train=8, num_eval=4, warm_start=TINY_WARM_START)


@pytest.fixture(scope="module")
def processor(bundle):
    return load_captioner_processor(bundle.captioner)


@pytest.fixture(scope="module")
def captioner(bundle):
    return Qwen2_5_VLForConditionalGeneration.from_pretrained(bundle.captioner).eval()


def _images():
    first = render_scene((SceneObject(0, "red", "circle"), SceneObject(3, "blue", "square")))
    second = render_scene((SceneObject(1, "yellow", "triangle"),))
    return first, second


def _two_prompts(processor):
    first, second = _images()
    return [
        encode_caption_prompt(processor, "How many red circles are there?", first),
        encode_caption_prompt(processor, "How many yellow triangles are there in the picture?", second),
    ]


def test_cpu_fallback_processor_keeps_images(bundle, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(processor_module, "torchvision_available", lambda: False)
    processor = load_captioner_processor(bundle.captioner)
    assert isinstance(processor, ImageOnlyQwen2_5_VLProcessor)
    text = processor.apply_chat_template(caption_messages("How many?"), tokenize=False, add_generation_prompt=True)
    out = processor(text=[text], images=[_images()[0]], return_tensors="pt")
    assert set(out) >= {"input_ids", "attention_mask", "pixel_values", "image_grid_thw", "mm_token_type_ids"}
    image_id = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert int((out["input_ids"] == image_id).sum()) == IMAGE_TOKENS
    assert out["pixel_values"].shape == (PATCHES, PATCH_DIM)
    assert out["image_grid_thw"].tolist() == [[1, 4, 4]]


def test_fallback_registers_for_checkpoints_that_name_no_processor(bundle, tmp_path, monkeypatch):
    """A checkpoint naming no processor class is resolved by config type: ours, once registered."""
    monkeypatch.setattr(processor_module, "torchvision_available", lambda: False)
    plain = tmp_path / "captioner"
    shutil.copytree(bundle.captioner, plain)
    config_path = plain / "preprocessor_config.json"
    config = json.loads(config_path.read_text())
    del config["processor_class"]
    config_path.write_text(json.dumps(config))
    load_captioner_processor(bundle.captioner)
    assert isinstance(AutoProcessor.from_pretrained(plain), ImageOnlyQwen2_5_VLProcessor)


@pytest.mark.skipif(not torchvision_available(), reason="the stock Qwen2.5-VL processor needs torchvision")
def test_torchvision_processor_matches_fallback(bundle):
    stock = load_captioner_processor(bundle.captioner)
    assert not isinstance(stock, ImageOnlyQwen2_5_VLProcessor)
    fallback = ImageOnlyQwen2_5_VLProcessor.from_pretrained(bundle.captioner)
    image = _images()[0]
    a, b = encode_caption_prompt(stock, "How many?", image), encode_caption_prompt(fallback, "How many?", image)
    assert a.input_ids.tolist() == b.input_ids.tolist()
    assert torch.allclose(a.pixel_values, b.pixel_values, atol=1e-2)


def test_caption_prompt_matches_processor_conventions(processor):
    image = _images()[0]
    prompt = encode_caption_prompt(processor, "How many red circles are there?", image)
    assert prompt.input_ids.dtype.name == "int32" and prompt.input_ids.ndim == 1
    assert int((prompt.input_ids == prompt.image_token_id).sum()) == IMAGE_TOKENS
    assert prompt.image_grid_thw.shape == (1, 3)
    pixel_values, grid = vision_inputs(processor, image)
    assert torch.equal(pixel_values, prompt.pixel_values) and torch.equal(grid, prompt.image_grid_thw)
    text = processor.apply_chat_template(caption_messages("How many?"), tokenize=False, add_generation_prompt=True)
    reference = processor(text=[text, text], images=[image, image], return_tensors="pt")
    ours = mm_token_type_ids(reference["input_ids"], prompt.image_token_id)
    assert torch.equal(ours, reference["mm_token_type_ids"])
    assert ours.dtype == reference["mm_token_type_ids"].dtype


def test_caption_messages_put_image_then_question():
    messages = caption_messages("How many red circles are there?")
    assert messages[0] == {"role": "system", "content": CAPTION_SYSTEM_PROMPT}
    parts = messages[1]["content"]
    assert parts[0] == {"type": "image"}
    assert "How many red circles are there?" in parts[1]["text"] and "not answer" in parts[1]["text"]


def test_batch_is_left_padded(processor):
    prompts = _two_prompts(processor)
    pad_id = processor.tokenizer.pad_token_id
    batch = batch_caption_inputs(prompts, pad_id)
    short, long = sorted(len(p.input_ids) for p in prompts)
    assert short < long
    assert batch["input_ids"].shape == (2, long)
    row = 0 if len(prompts[0].input_ids) == short else 1
    assert batch["input_ids"][row, : long - short].eq(pad_id).all()
    assert batch["attention_mask"].sum(1).tolist() == [len(p.input_ids) for p in prompts]
    assert batch["input_ids"][row, long - short :].tolist() == prompts[row].input_ids.tolist()
    assert batch["pixel_values"].shape == (2 * PATCHES, PATCH_DIM)
    assert batch["image_grid_thw"].tolist() == [[1, 4, 4], [1, 4, 4]]
    assert batch["mm_token_type_ids"].sum(1).tolist() == [IMAGE_TOKENS, IMAGE_TOKENS]


def test_generate_runs_with_group_sampling(processor, captioner):
    batch = batch_caption_inputs(_two_prompts(processor), processor.tokenizer.pad_token_id)
    torch.manual_seed(0)
    out = captioner.generate(
        **batch, do_sample=True, top_k=0, top_p=1.0, num_return_sequences=G, max_new_tokens=16
    )
    assert out.shape[0] == 2 * G
    assert batch["input_ids"].shape[1] < out.shape[1] <= batch["input_ids"].shape[1] + 16


def _completion_logprobs(model, prompt, completion: torch.Tensor, suppressed: list[int]) -> torch.Tensor:
    """Teacher-forced logprobs of `completion` after one unpadded prompt, from the image alone."""
    ids = torch.cat([torch.from_numpy(prompt.input_ids).long(), completion]).unsqueeze(0)
    with torch.no_grad():
        logits = model(
            input_ids=ids,
            pixel_values=prompt.pixel_values,
            image_grid_thw=prompt.image_grid_thw,
            mm_token_type_ids=mm_token_type_ids(ids, prompt.image_token_id),
        ).logits[0, len(prompt.input_ids) - 1 : -1]
    logits[:, suppressed] = float("-inf")
    return logits.log_softmax(-1).gather(-1, completion.unsqueeze(-1)).squeeze(-1)


def test_each_sample_of_a_group_sees_its_own_image(processor, captioner):
    """generate's scores equal an unpadded teacher-forced forward of each sample with its image.

    This covers left padding, the expansion of pixel_values for num_return_sequences and the
    3D positions at once; the same forward with the other prompt's image must disagree.
    """
    prompts = _two_prompts(processor)
    tokenizer = processor.tokenizer
    # A sampled image placeholder inside a completion would have no image features behind it.
    suppressed = [prompts[0].image_token_id, tokenizer.convert_tokens_to_ids("<|video_pad|>")]
    batch = batch_caption_inputs(prompts, tokenizer.pad_token_id)
    torch.manual_seed(0)
    out = captioner.generate(
        **batch, do_sample=True, top_k=0, top_p=1.0, temperature=1.0, num_return_sequences=G,
        max_new_tokens=12, suppress_tokens=suppressed, output_scores=True, return_dict_in_generate=True,
    )
    completions = out.sequences[:, batch["input_ids"].shape[1] :]
    sampled = torch.stack(out.scores, 1).log_softmax(-1).gather(-1, completions.unsqueeze(-1)).squeeze(-1)
    swapped_gap = 0.0
    for row in range(2 * G):
        ends = (completions[row] == tokenizer.eos_token_id).nonzero()
        length = int(ends[0, 0]) + 1 if len(ends) else completions.shape[1]
        own, other = prompts[row // G], prompts[1 - row // G]
        expected = _completion_logprobs(captioner, own, completions[row, :length], suppressed)
        assert torch.allclose(sampled[row, :length], expected, atol=1e-4), row
        other_image = type(own)(own.input_ids, other.pixel_values, other.image_grid_thw, own.image_token_id)
        wrong = _completion_logprobs(captioner, other_image, completions[row, :length], suppressed)
        swapped_gap = max(swapped_gap, float((sampled[row, :length] - wrong).abs().max()))
    assert swapped_gap > 1e-3


def test_reasoner_prompt(bundle):
    tokenizer = load_tokenizer(bundle.reasoner)
    caption, question = "top left: a red circle.", "How many red objects are there?"
    text = reasoner_messages(caption, question)[0]["content"]
    assert caption in text and question in text and "\\boxed{}" in text and "step by step" in text
    ids = encode_reasoner_prompt(tokenizer, caption, question)
    assert ids[-3:] == tokenizer.encode("<|im_start|>assistant\n", add_special_tokens=False)
    decoded = tokenizer.decode(ids)
    assert caption in decoded and question in decoded


def test_fallback_processor_saves_under_the_stock_name(bundle, tmp_path, monkeypatch):
    monkeypatch.setattr(processor_module, "torchvision_available", lambda: False)
    load_captioner_processor(bundle.captioner).save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "processor_config.json").read_text())
    assert saved["processor_class"] == "Qwen2_5_VLProcessor"
    assert isinstance(load_captioner_processor(tmp_path), ImageOnlyQwen2_5_VLProcessor)
