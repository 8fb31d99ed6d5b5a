"""The bundled task: scenes, dataset files, tokenizer, tiny checkpoints and the build cache."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoTokenizer,
    GenerationConfig,
    Qwen2_5_VLForConditionalGeneration,
)

from records.vqa import VQARecord, load_image, read_records
from task.bundle import COMPLETE_MARKER, ensure_bundled_task
from task.dataset import MC_QUESTIONS, multiple_choice_questions, write_bundled_dataset
from task.scenes import (
    CELL_NAMES,
    COLOUR_RGB,
    COLOURS,
    SHAPES,
    SceneObject,
    describe,
    make_question,
    parse_caption,
    random_scene,
    render_scene,
)
from task.tokenizer import DIGITS, SINGLE_TOKEN_WORDS, SPECIAL_TOKENS, build_tokenizer
from tests.tiny_task import TINY_WARM_START
from wire.scoring import MCQuestion

SMALL = {"num_train": 24, "num_eval": 8, "warm_start": TINY_WARM_START}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory):
    return ensure_bundled_task(tmp_path_factory.mktemp("cache"), seed=0, **SMALL)


@pytest.fixture(scope="module")
def tokenizer(bundle):
    return AutoTokenizer.from_pretrained(bundle.captioner)


# --- scenes ---------------------------------------------------------------------------------


def test_random_scene_has_one_to_four_objects_in_distinct_cells():
    rng = random.Random(0)
    counts = set()
    for _ in range(300):
        scene = random_scene(rng)
        cells = [obj.cell for obj in scene]
        assert len(set(cells)) == len(cells)
        counts.add(len(scene))
    assert counts == {1, 2, 3, 4}


def test_render_scene_paints_each_cell_in_its_colour():
    scene = (
        SceneObject(0, "red", "circle"),
        SceneObject(1, "green", "square"),
        SceneObject(3, "blue", "triangle"),
    )
    image = render_scene(scene)
    assert image.mode == "RGB" and image.size == (56, 56)
    # Cell centres: 28 px cells, so (14, 14), (42, 14), (14, 42), (42, 42); the triangle covers
    # its centre too (apex at the top middle, base along the bottom).
    assert image.getpixel((14, 14)) == COLOUR_RGB["red"]
    assert image.getpixel((42, 14)) == COLOUR_RGB["green"]
    assert image.getpixel((14, 42)) == (255, 255, 255)
    assert image.getpixel((42, 42)) == COLOUR_RGB["blue"]
    assert len(set(COLOUR_RGB.values())) == len(COLOURS)


def test_describe_lists_objects_in_cell_order_and_honours_keep():
    scene = (SceneObject(3, "blue", "square"), SceneObject(0, "red", "circle"))
    assert describe(scene) == "top left: a red circle. bottom right: a blue square."
    assert describe(scene, keep=[scene[0]]) == "bottom right: a blue square."
    assert describe(scene, keep=[]) == ""


def _count_for(question: str, scene: tuple[SceneObject, ...]) -> int:
    """Recount from the question's words, independently of make_question's own branches."""
    words = question.rstrip("?").split()
    colours = [w for w in words if w in COLOURS]
    shapes = [w[:-1] for w in words if w.endswith("s") and w[:-1] in SHAPES]
    return sum((not colours or obj.colour == colours[0]) and (not shapes or obj.shape == shapes[0]) for obj in scene)


def test_make_question_answers_are_the_true_counts():
    rng = random.Random(1)
    kinds = set()
    for _ in range(400):
        scene = random_scene(rng)
        question, answer = make_question(rng, scene)
        assert answer.isdigit()
        assert int(answer) == _count_for(question, scene), question
        assert int(answer) >= 1  # dataset questions are about something in the scene
        kinds.add(question.split()[2])
    assert {"objects", "red", "circles"} <= kinds


# --- dataset --------------------------------------------------------------------------------


def _split_bytes(files_dir: Path, split: str) -> list[bytes]:
    records = read_records(files_dir / f"{split}.jsonl")
    return [(files_dir / record.image).read_bytes() for record in records]


def test_bundled_dataset_is_deterministic_and_eval_scenes_are_unseen(tmp_path: Path):
    first = write_bundled_dataset(tmp_path / "a", num_train=40, num_eval=10, seed=3)
    again = write_bundled_dataset(tmp_path / "b", num_train=40, num_eval=10, seed=3)
    other = write_bundled_dataset(tmp_path / "c", num_train=40, num_eval=10, seed=4)
    assert first.train.read_text() == again.train.read_text()
    assert first.eval.read_text() == again.eval.read_text()
    assert _split_bytes(first.train.parent, "train") == _split_bytes(again.train.parent, "train")
    assert first.train.read_text() != other.train.read_text()
    # Identical scenes render to identical PNG bytes, so no eval image may equal a train image.
    train_images = set(_split_bytes(first.train.parent, "train"))
    assert not train_images & set(_split_bytes(first.train.parent, "eval"))
    train_ids = {r.id for r in read_records(first.train)}
    assert train_ids.isdisjoint({r.id for r in read_records(first.eval)})


def test_records_round_trip_and_images_load(tmp_path: Path):
    files = write_bundled_dataset(tmp_path, num_train=6, num_eval=2, seed=0)
    records = read_records(files.train)
    assert len(records) == 6 and len(read_records(files.eval)) == 2
    rows = [json.loads(line) for line in files.train.read_text().splitlines()]
    assert [json.loads(json.dumps(asdict(record))) for record in records] == rows
    # Each image has its multiple-choice question set (reward.kind=mcq), its right options what the
    # image shows (the reference describes every object).
    for record in records:
        scene = parse_caption(record.reference)
        assert 1 <= len(record.questions) <= MC_QUESTIONS
        assert all(q.options[q.answer] == _shown(q.question, scene) for q in record.questions), record
    image = load_image(records[0], files.train.parent)
    assert image.mode == "RGB" and image.size == (56, 56)


def _shown(question: str, scene: tuple[SceneObject, ...]) -> str:
    """The answer to a multiple-choice question, read from its words, independently of the dataset's code."""
    if question == "How many objects are there?":
        return str(len(scene))
    (cell,) = [index for index, name in enumerate(CELL_NAMES) if question.endswith(f" {name}?")]
    (obj,) = [obj for obj in scene if obj.cell == cell]
    return obj.colour if question.startswith("What colour ") else obj.shape


def test_multiple_choice_questions_ask_the_total_then_what_is_in_occupied_cells():
    one = (SceneObject(2, "green", "triangle"),)
    # One object: its total, and its cell's colour and shape, are all there is to ask.
    assert multiple_choice_questions(random.Random(0), one, MC_QUESTIONS) == (
        MCQuestion("How many objects are there?", ("1", "2", "3", "4"), 0),
        MCQuestion("What colour is the object in the bottom left?", ("red", "green", "blue", "yellow"), 1),
        MCQuestion("What shape is the object in the bottom left?", ("circle", "square", "triangle"), 2),
    )
    three = (SceneObject(0, "red", "circle"), SceneObject(1, "blue", "square"), SceneObject(3, "yellow", "circle"))
    for seed in range(20):
        questions = multiple_choice_questions(random.Random(seed), three, MC_QUESTIONS)
        # The total ("3", the third option), then three different questions among the six about its cells.
        assert questions[0] == MCQuestion("How many objects are there?", ("1", "2", "3", "4"), 2)
        assert len({q.question for q in questions}) == 4
        assert all(
            " bottom left?" not in q.question and q.options[q.answer] == _shown(q.question, three) for q in questions
        )


# A blind guesser's strategies: the option index it picks from the options alone, None if it cannot.
Strategy = Callable[[MCQuestion], int | None]


def _always(text: str) -> Strategy:
    return lambda question: question.options.index(text) if text in question.options else None


def _smallest_non_zero(question: MCQuestion) -> int | None:
    numbers = [
        (int(option), index) for index, option in enumerate(question.options) if option.isdigit() and int(option) > 0
    ]
    return min(numbers)[1] if numbers else None


def _blind_guess(strategy: Strategy, questions: Sequence[MCQuestion]) -> tuple[float, float, int]:
    """(share right, chance: mean 1/len(options), how many) over the questions the strategy answers."""
    answered = [(question, strategy(question)) for question in questions if strategy(question) is not None]
    right = sum(question.answer == pick for question, pick in answered) / len(answered)
    chance = sum(1 / len(question.options) for question, _ in answered) / len(answered)
    return right, chance, len(answered)


def test_no_option_can_be_guessed_blind_better_than_chance(tmp_path: Path):
    files = write_bundled_dataset(tmp_path, num_train=400, num_eval=1, seed=0)
    # The training split: it is what the reward asks. (The eval split leaves out the training split's
    # scenes, so its small scenes run short once training has drawn them all.)
    questions = [question for record in read_records(files.train) for question in record.questions]
    texts = sorted({option for question in questions for option in question.options})
    strategies = {f"always {text!r}": _always(text) for text in texts}
    strategies |= {"smallest non-zero number": _smallest_non_zero, "first option": lambda question: 0}
    for name, strategy in strategies.items():
        right, chance, answered = _blind_guess(strategy, questions)
        # Noise: 3 standard errors of a binomial share at the chance rate over that many questions.
        noise = 3 * math.sqrt(chance * (1 - chance) / answered)
        # At least ~400 questions of each kind (one total per record), so the margin stays under 0.07.
        assert answered >= 390 and right <= chance + noise, (name, right, chance, answered)


def test_missing_key_names_file_line_and_key(tmp_path: Path):
    path = tmp_path / "bad.jsonl"
    good = {"id": "a", "image": "a.png", "question": "q", "answer": "1"}
    path.write_text(json.dumps(good) + "\n" + json.dumps({k: v for k, v in good.items() if k != "answer"}) + "\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: missing key 'answer'"):
        read_records(path)


def test_corrupt_or_missing_image_names_record_and_path(tmp_path: Path):
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(ValueError, match=r"'r1'.*broken\.png"):
        load_image(VQARecord("r1", "broken.png", "q", "1"), tmp_path)
    with pytest.raises(ValueError, match=r"'r2'.*absent\.png"):
        load_image(VQARecord("r2", "absent.png", "q", "1"), tmp_path)


# --- tokenizer ------------------------------------------------------------------------------


def test_task_words_are_single_tokens(tokenizer):
    for word in SINGLE_TOKEN_WORDS:
        assert len(tokenizer.encode(word, add_special_tokens=False)) == 1, word
        assert len(tokenizer.encode(" " + word, add_special_tokens=False)) == 1, word
    for digit in DIGITS:
        assert len(tokenizer.encode(digit, add_special_tokens=False)) == 1
    for token in SPECIAL_TOKENS:
        assert len(tokenizer.encode(token, add_special_tokens=False)) == 1, token
    # In a real caption the words keep their one token each.
    assert len(tokenizer.encode(" a yellow triangle", add_special_tokens=False)) == 3


def test_tokenizer_special_tokens_and_chat_template(tokenizer):
    assert tokenizer.pad_token == "<|endoftext|>" and tokenizer.eos_token == "<|im_end|>"
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many?"}]}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert "<|vision_start|><|image_pad|><|vision_end|>How many?<|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")
    plain = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
    assert plain.endswith("<|im_start|>user\nhi<|im_end|>\n")


def test_tokenizer_is_deterministic():
    corpus = ["top left: a red circle.", "How many blue objects are there?"] * 20
    first, second = build_tokenizer(corpus), build_tokenizer(corpus)
    assert first.get_vocab() == second.get_vocab()


# --- checkpoints and cache ------------------------------------------------------------------


def test_bundle_is_cached_not_rebuilt(bundle):
    marker = bundle.root / COMPLETE_MARKER
    weights = bundle.captioner / "model.safetensors"
    before = (marker.stat().st_mtime_ns, weights.stat().st_mtime_ns)
    again = ensure_bundled_task(bundle.root.parent, seed=0, **SMALL)
    assert again == bundle
    assert (marker.stat().st_mtime_ns, weights.stat().st_mtime_ns) == before
    # Only the finished build is left in the cache folder: no staging leftovers.
    assert [p.name for p in bundle.root.parent.iterdir()] == ["seed0"]


def test_a_cache_built_with_other_settings_is_replaced(tmp_path: Path):
    first = ensure_bundled_task(tmp_path, seed=0, **SMALL)
    other = ensure_bundled_task(tmp_path, seed=0, **{**SMALL, "num_train": 12})
    assert other.root == first.root
    assert len(read_records(other.train_file)) == 12
    assert json.loads((other.root / COMPLETE_MARKER).read_text())["num_train"] == 12
    assert [p.name for p in tmp_path.iterdir()] == ["seed0"]


def test_captioner_checkpoint_loads_like_a_real_one(bundle, tokenizer):
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(bundle.captioner)
    auto = AutoModelForImageTextToText.from_pretrained(bundle.captioner)
    assert type(auto) is Qwen2_5_VLForConditionalGeneration
    text = model.config.text_config
    assert text.vocab_size == len(tokenizer)
    head_dim = text.hidden_size // text.num_attention_heads
    assert head_dim >= 32
    assert sum(text.rope_parameters["mrope_section"]) == head_dim // 2
    assert model.config.image_token_id == tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert model.config.vision_start_token_id == tokenizer.convert_tokens_to_ids("<|vision_start|>")
    generation = GenerationConfig.from_pretrained(bundle.captioner)
    sampling = (generation.do_sample, generation.top_k, generation.top_p, generation.temperature)
    assert sampling == (True, 0, 1.0, 1.0)
    assert generation.eos_token_id == tokenizer.eos_token_id
    assert generation.pad_token_id == tokenizer.pad_token_id


def test_reasoner_checkpoint_loads_and_generates(bundle, tokenizer):
    model = AutoModelForCausalLM.from_pretrained(bundle.reasoner)
    assert model.config.vocab_size == len(tokenizer)
    prompt = torch.tensor([tokenizer.encode("How many red circles are there?")])
    out = model.generate(prompt, do_sample=True, top_k=0, top_p=1.0, max_new_tokens=5, num_return_sequences=2)
    assert out.shape[0] == 2 and out.shape[1] <= prompt.shape[1] + 5
    # The partial reasoner (task.bundled_reasoner=partial) is a checkpoint of the same model.
    partial = AutoModelForCausalLM.from_pretrained(bundle.partial_reasoner)
    assert partial.state_dict().keys() == model.state_dict().keys()


def test_same_seed_same_bundle(tmp_path: Path, bundle):
    """The whole build, warm start included, is a function of the seed."""

    def weights(path: Path) -> dict[str, torch.Tensor]:
        return AutoModelForImageTextToText.from_pretrained(path).state_dict()

    again = ensure_bundled_task(tmp_path / "again", seed=0, **SMALL)
    other = ensure_bundled_task(tmp_path / "other", seed=1, **SMALL)
    original = weights(bundle.captioner)
    assert all(torch.equal(original[name], weights(again.captioner)[name]) for name in original)
    assert not all(torch.equal(original[name], weights(other.captioner)[name]) for name in original)
    reasoner = AutoModelForCausalLM.from_pretrained(again.reasoner)
    bundled = AutoModelForCausalLM.from_pretrained(bundle.reasoner)
    assert all(torch.equal(p, q) for p, q in zip(reasoner.parameters(), bundled.parameters()))
    assert again.train_file.read_text() == bundle.train_file.read_text()


# --- the build shipped with the code (task/shipped.py) ----------------------------------------


def test_the_shipped_build_is_the_default_settings_current_build():
    """A change to the build (BUILD_FORMAT) or to its default settings needs a new shipped build:
    `python launch.py build`, then `python -m task.shipped ship`."""
    from configs.schema import TaskConfig
    from task.bundle import build_recipe
    from task.shipped_store import shipped_root

    task = TaskConfig()
    recipe = build_recipe(task.seed, task.num_train, task.num_eval, task.warm_start)
    assert shipped_root(recipe) is not None, "the shipped build is not this code's default build: rebuild and ship it"


def test_a_cache_is_filled_from_a_shipped_build_of_its_recipe(bundle, tmp_path: Path, monkeypatch):
    """A build shipped for a recipe fills an empty cache of that recipe (its checkpoints copied,
    its dataset regenerated), and never a cache of another recipe; `rebuild` builds regardless."""
    from task import shipped_store as shipped
    from task.bundle import build_recipe

    monkeypatch.setattr(shipped, "SHIPPED", tmp_path / "shipped")
    recipe = build_recipe(0, **SMALL)
    root = shipped.ship(bundle.root, recipe)
    filled = ensure_bundled_task(tmp_path / "cache", seed=0, **SMALL)
    for name in shipped.MODELS:  # the shipped checkpoints, file for file
        for file in (root / name).iterdir():
            assert (filled.root / name / file.name).read_bytes() == file.read_bytes()
    assert json.loads((filled.root / "warm_start.json").read_text()) == json.loads(
        (bundle.root / "warm_start.json").read_text()
    )
    # The dataset is regenerated from the seed: the build's own records, byte for byte.
    assert filled.train_file.read_bytes() == bundle.train_file.read_bytes()
    assert filled.eval_file.read_bytes() == bundle.eval_file.read_bytes()
    assert json.loads((filled.root / COMPLETE_MARKER).read_text()) == recipe
    # Another recipe (here another seed) is built, not filled from it.
    assert shipped.shipped_root(build_recipe(1, **SMALL)) is None
    # `rebuild` (launch.py build) builds: spoilt shipped weights are not read.
    (root / "captioner" / "model.safetensors").write_bytes(b"not weights")
    rebuilt = ensure_bundled_task(tmp_path / "cache", seed=0, rebuild=True, **SMALL)
    assert Qwen2_5_VLForConditionalGeneration.from_pretrained(rebuilt.captioner).config.image_token_id is not None


def test_a_fresh_build_falls_short_only_beyond_three_standard_errors_of_the_shipped_quality():
    from task.bundle import _QUALITY_SCENES, quality_gaps

    assert _QUALITY_SCENES == 256  # the numbers below are worked for it
    # 0.9 over 256 scenes: standard error sqrt(0.9 * 0.1 / 256) = 0.01875, three of them 0.05625.
    shipped = {"counting": 0.9, "captioner": {"precision": 0.9}, "judging": None}
    assert quality_gaps({"counting": 0.85, "captioner": {"precision": 0.845}, "judging": None}, shipped) == []
    gaps = quality_gaps({"counting": 0.84, "captioner": {"precision": 0.9}}, shipped)
    assert gaps == ["counting: 0.840, the shipped build 0.900 (noise 0.056)"]
    # A figure the shipped build has and the fresh one lacks is a gap; one neither measured is none.
    assert quality_gaps({"counting": 0.9, "captioner": {}}, shipped) == [
        "captioner.precision: nan, the shipped build 0.900 (noise 0.056)"
    ]
