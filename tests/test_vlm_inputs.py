"""Captioner inputs: processor loading (both sides of the CPU fallback), prompts, batching, generate."""

from __future__ import annotations

import base64
import functools
import http.server
import json
import shutil
import sys
import threading
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

import vlm.processor as processor_module
from records.vqa import VQARecord, load_image
from task.scenes import SceneObject, render_scene
from vlm.caption_prompt import (
    CAPTION_SYSTEM_PROMPT,
    batch_caption_inputs,
    caption_messages,
    encode_caption_prompt,
    mm_token_type_ids,
    vision_inputs,
)
from vlm.image_fetch import fetch_image, smart_resize
from vlm.processor import (
    ImageOnlyQwen2_5_VLProcessor,
    load_captioner_processor,
    load_tokenizer,
    torchvision_available,
)
from vlm.reasoner_prompt import encode_reasoner_prompt, reasoner_messages

# 56x56 image, 14 px patches: (56/14)^2 = 16 patches; merged 2x2 into 16/4 = 4 vision tokens.
PATCHES = (56 // 14) ** 2
IMAGE_TOKENS = PATCHES // (2 * 2)
# Each patch row holds 3 channels x 2 temporal frames x 14 x 14 pixels.
PATCH_DIM = 3 * 2 * 14 * 14
G = 4


@pytest.fixture(scope="module")
def processor(tiny_bundle):
    return load_captioner_processor(tiny_bundle.captioner)


@pytest.fixture(scope="module")
def captioner(tiny_bundle):
    return Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_bundle.captioner).eval()


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


def test_cpu_fallback_processor_keeps_images(tiny_bundle, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(processor_module, "torchvision_available", lambda: False)
    processor = load_captioner_processor(tiny_bundle.captioner)
    assert isinstance(processor, ImageOnlyQwen2_5_VLProcessor)
    text = processor.apply_chat_template(caption_messages("How many?"), tokenize=False, add_generation_prompt=True)
    out = processor(text=[text], images=[_images()[0]], return_tensors="pt")
    assert set(out) >= {"input_ids", "attention_mask", "pixel_values", "image_grid_thw", "mm_token_type_ids"}
    image_id = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert int((out["input_ids"] == image_id).sum()) == IMAGE_TOKENS
    assert out["pixel_values"].shape == (PATCHES, PATCH_DIM)
    assert out["image_grid_thw"].tolist() == [[1, 4, 4]]


def test_fallback_registers_for_checkpoints_that_name_no_processor(tiny_bundle, tmp_path, monkeypatch):
    """A checkpoint naming no processor class is resolved by config type: ours, once registered."""
    monkeypatch.setattr(processor_module, "torchvision_available", lambda: False)
    plain = tmp_path / "captioner"
    shutil.copytree(tiny_bundle.captioner, plain)
    config_path = plain / "preprocessor_config.json"
    config = json.loads(config_path.read_text())
    del config["processor_class"]
    config_path.write_text(json.dumps(config))
    load_captioner_processor(tiny_bundle.captioner)
    assert isinstance(AutoProcessor.from_pretrained(plain), ImageOnlyQwen2_5_VLProcessor)


@pytest.mark.skipif(not torchvision_available(), reason="the stock Qwen2.5-VL processor needs torchvision")
def test_torchvision_processor_matches_fallback(tiny_bundle):
    stock = load_captioner_processor(tiny_bundle.captioner)
    assert not isinstance(stock, ImageOnlyQwen2_5_VLProcessor)
    fallback = ImageOnlyQwen2_5_VLProcessor.from_pretrained(tiny_bundle.captioner)
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
    out = captioner.generate(**batch, do_sample=True, top_k=0, top_p=1.0, num_return_sequences=G, max_new_tokens=16)
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
        **batch,
        do_sample=True,
        top_k=0,
        top_p=1.0,
        temperature=1.0,
        num_return_sequences=G,
        max_new_tokens=12,
        suppress_tokens=suppressed,
        output_scores=True,
        return_dict_in_generate=True,
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


def test_reasoner_prompt(tiny_bundle):
    tokenizer = load_tokenizer(tiny_bundle.reasoner)
    caption, question = "top left: a red circle.", "How many red objects are there?"
    text = reasoner_messages(caption, question)[0]["content"]
    assert caption in text and question in text and "\\boxed{}" in text and "step by step" in text
    ids = encode_reasoner_prompt(tokenizer, caption, question)
    assert ids[-3:] == tokenizer.encode("<|im_start|>assistant\n", add_special_tokens=False)
    decoded = tokenizer.decode(ids)
    assert caption in decoded and question in decoded


def test_fallback_processor_saves_under_the_stock_name(tiny_bundle, tmp_path, monkeypatch):
    monkeypatch.setattr(processor_module, "torchvision_available", lambda: False)
    load_captioner_processor(tiny_bundle.captioner).save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "processor_config.json").read_text())
    assert saved["processor_class"] == "Qwen2_5_VLProcessor"
    assert isinstance(load_captioner_processor(tmp_path), ImageOnlyQwen2_5_VLProcessor)


# qwen-vl-utils' resize rule (factor 28; default bounds min 4 * 28^2 = 3136, max 16384 * 28^2),
# worked by hand as (height, width) -> (height, width):
#   56 x 56: both sides already multiples of 28, area 3136 = min -> unchanged.
#   70 x 98: 70/28 = 2.5 and 98/28 = 3.5; Python's round takes halves to even -> 2 and 4,
#     so 56 x 112 (area 6272, inside the bounds).
#   100 x 30: 100/28 = 3.57 -> 4 -> 112; 30/28 = 1.07 -> 1 -> 28; area 3136 is not below min.
#   30 x 40: rounds to 28 x 28 = 784 < 3136, so grow = sqrt(3136 / 1200) = 1.6166, rounded up:
#     30 * 1.6166 = 48.5 -> ceil(48.5/28 = 1.73) = 2 -> 56; 40 * 1.6166 = 64.7 -> ceil(2.31) = 3 -> 84.
#   300 x 400, max 224 * 224 = 50176 (the tiny captioner's): rounds to 308 x 392 = 120736 > max,
#     so shrink = sqrt(120000 / 50176) = 1.5465, rounded down: 300/1.5465 = 194.0 -> floor(6.93)
#     = 6 -> 168; 400/1.5465 = 258.7 -> floor(9.24) = 9 -> 252 (area 42336 <= 50176).
HAND_WORKED_RESIZES = [
    ((56, 56), {}, (56, 56)),
    ((70, 98), {}, (56, 112)),
    ((100, 30), {}, (112, 28)),
    ((30, 40), {}, (56, 84)),
    ((300, 400), {"max_pixels": 224 * 224}, (168, 252)),
]


@pytest.mark.parametrize(("size", "bounds", "expected"), HAND_WORKED_RESIZES)
def test_fallback_resizes_by_qwen_vl_utils_rule(size, bounds, expected, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(processor_module, "torchvision_available", lambda: False)
    height, width = size
    assert smart_resize(height, width, **bounds) == expected
    resized = fetch_image(Image.new("RGB", (width, height), (40, 80, 120)), **bounds)
    assert (resized.height, resized.width) == expected and resized.mode == "RGB"


def test_fallback_refuses_what_qwen_vl_utils_refuses():
    with pytest.raises(ValueError, match="aspect ratio"):
        smart_resize(10, 2010)  # 201 : 1, above qwen-vl-utils' limit of 200
    with pytest.raises(ValueError, match="max_pixels"):
        smart_resize(56, 56, min_pixels=100, max_pixels=99)


@pytest.fixture
def local_http(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An HTTP server on 127.0.0.1 serving `tmp_path`, so URLs are tested without the network."""
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(name, "127.0.0.1")

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def _noise_png(folder: Path) -> Path:
    """A 98 x 70 (width x height) PNG of seeded noise: no side a multiple of 28, so it gets resized."""
    path = folder / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (70, 98, 3), dtype=np.uint8)).save(path)
    return path


def _every_source(path: Path, base_url: str) -> dict[str, object]:
    data_uri = "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()
    with Image.open(path) as opened:
        pil_image = opened.copy()
    return {
        "PIL image": pil_image,
        "path": str(path),
        "Path": path,
        "file URI": f"file://{path}",
        "data URI": data_uri,
        "http URL": f"{base_url}/{path.name}",
    }


def test_every_source_gives_the_same_pixels(tmp_path: Path, local_http: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(processor_module, "torchvision_available", lambda: False)
    path = _noise_png(tmp_path)
    # What qwen-vl-utils does to it: RGB, then `resize` to 56 x 112 (hand-worked above) with no
    # filter named, which is Pillow's bicubic.
    with Image.open(path) as original:
        expected = original.convert("RGB").resize((112, 56))
    for name, source in _every_source(path, local_http).items():
        image = fetch_image(source)
        assert image.mode == "RGB" and image.size == (112, 56), name
        assert image.tobytes() == expected.tobytes(), name


def test_fallback_puts_transparency_on_white_and_reports_bad_sources(
    tmp_path: Path, local_http: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(processor_module, "torchvision_available", lambda: False)
    rgba = Image.new("RGBA", (56, 56), (10, 20, 30, 255))
    rgba.paste((10, 20, 30, 0), (28, 0, 56, 56))  # right half fully transparent
    image = fetch_image(rgba)
    assert image.getpixel((0, 0)) == (10, 20, 30) and image.getpixel((55, 0)) == (255, 255, 255)
    with pytest.raises(OSError):
        fetch_image(f"{local_http}/absent.png")  # HTTP 404
    with pytest.raises(ValueError, match="base64"):
        fetch_image("data:image/png,not-base64")


def test_load_image_reads_paths_and_uris_and_names_the_record(
    tmp_path: Path, local_http: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(processor_module, "torchvision_available", lambda: False)
    path = _noise_png(tmp_path)
    sources = {name: s for name, s in _every_source(path, local_http).items() if isinstance(s, str)}
    sources["relative path"] = path.name  # the default: relative to the records file's folder
    images = {name: load_image(VQARecord(name, source, "q", "1"), tmp_path) for name, source in sources.items()}
    assert {image.size for image in images.values()} == {(112, 56)}
    assert len({image.tobytes() for image in images.values()}) == 1
    # The processor's own bounds can be passed on. With max 3136, 56 x 112 = 6272 is too large:
    # shrink = sqrt(70 * 98 / 3136) = 1.479; 70/1.479 = 47.3 -> 28, 98/1.479 = 66.3 -> 56.
    assert load_image(VQARecord("r", path.name, "q", "1"), tmp_path, max_pixels=3136).size == (56, 28)
    with pytest.raises(ValueError, match=r"'r3'.*absent\.png"):
        load_image(VQARecord("r3", f"{local_http}/absent.png", "q", "1"), tmp_path)
    with pytest.raises(ValueError, match="'r4'"):
        load_image(VQARecord("r4", "data:image/png;base64,AAAA", "q", "1"), tmp_path)


def test_with_torchvision_images_come_from_qwen_vl_utils(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Where torchvision imports, the real `qwen_vl_utils.fetch_image` is called (a fake here)."""
    calls, returned = [], Image.new("RGB", (28, 28))
    fake = types.ModuleType("qwen_vl_utils")
    fake.fetch_image = lambda ele: calls.append(ele) or returned
    monkeypatch.setitem(sys.modules, "qwen_vl_utils", fake)
    monkeypatch.setattr(processor_module, "torchvision_available", lambda: True)
    assert fetch_image(tmp_path / "a.png", min_pixels=3136, max_pixels=50176) is returned
    url = "https://example.invalid/a.png"  # never fetched: the fake answers
    assert load_image(VQARecord("r", url, "q", "1"), tmp_path) is returned
    assert calls == [
        {"image": str(tmp_path / "a.png"), "min_pixels": 3136, "max_pixels": 50176},
        {"image": url, "min_pixels": 4 * 28 * 28, "max_pixels": 16384 * 28 * 28},
    ]


@pytest.mark.skipif(not torchvision_available(), reason="qwen-vl-utils imports torchvision")
def test_qwen_vl_utils_and_fallback_agree(tmp_path: Path, local_http: str, monkeypatch: pytest.MonkeyPatch):
    import qwen_vl_utils

    path = _noise_png(tmp_path)
    for name, source in _every_source(path, local_http).items():
        real = qwen_vl_utils.fetch_image({"image": str(source) if isinstance(source, Path) else source})
        with monkeypatch.context() as patch:
            patch.setattr(processor_module, "torchvision_available", lambda: False)
            ours = fetch_image(source)
        assert real.size == ours.size and real.tobytes() == ours.tobytes(), name


@pytest.mark.parametrize("side", [12_000, 20_000])  # past Pillow's warning bound, and past its error bound
def test_an_image_declaring_too_many_pixels_is_refused_before_decoding(tmp_path: Path, side: int):
    from tests.test_messages import png_declaring

    (tmp_path / "bomb.png").write_bytes(png_declaring(side, side))
    with pytest.raises(ValueError, match=rf"record 'r': cannot read image .*bomb\.png: .*{side * side}"):
        load_image(VQARecord("r", "bomb.png", "q", "1"), tmp_path)
