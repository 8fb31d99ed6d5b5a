"""A tiny byte-level BPE tokenizer in Qwen2 format, trained offline on the bundled task's text.

It is wrapped as a `Qwen2Tokenizer` with Qwen's special tokens and a Qwen2-VL style chat
template, so every later step (processor, chat template, saving, `from_pretrained`) takes the
same path as a real Qwen2.5-VL / Qwen2 checkpoint.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator

from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import Qwen2Tokenizer

from task.scenes import COLOURS, SHAPES, plural

SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
PAD_TOKEN = "<|endoftext|>"
EOS_TOKEN = "<|im_end|>"

# Words the task's answers hinge on: one token each, so a caption that names a colour or shape
# is a single sampling decision and the tiny models never have to spell them.
SINGLE_TOKEN_WORDS = (
    *COLOURS,
    *SHAPES,
    *(plural(shape) for shape in SHAPES),
    "objects",
    "how",
    "How",
    "many",
)
# Qwen's pre-tokeniser splits every digit off on its own (a space before it is a separate
# piece), so digits are single byte-level tokens by construction and never space-led.
DIGITS = tuple(str(digit) for digit in range(10))

# Same pre-tokenisation as Qwen2Tokenizer builds for itself, so trained merges apply as learned.
_QWEN2_SPLIT = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# Qwen2-VL chat format: content is a string or a list of image/text parts; an image part
# becomes the vision placeholder that the processor expands to one pad token per vision token.
# Unlike Qwen's own template it adds no default system turn: eleven tokens of "You are a
# helpful assistant." in every reasoner prompt were a sixth of the reasoner's warm-start compute.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}"
    "{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_QWEN2_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )


def _max_pair_count(corpus: list[str]) -> int:
    """How often the most frequent adjacent byte-level symbol pair occurs in the corpus.

    Every later (merged) pair occurrence sits on one such initial pair, so this bounds the
    count of any pair BPE will ever see in the corpus.
    """
    normalizer, pre_tokenizer = normalizers.NFC(), _pre_tokenizer()
    pieces: Counter[str] = Counter()
    for text in corpus:
        pieces.update(piece for piece, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    pairs: Counter[tuple[str, str]] = Counter()
    for piece, count in pieces.items():
        for pair in zip(piece, piece[1:]):
            pairs[pair] += count
    return max(pairs.values(), default=0)


def _weighted_corpus(corpus: list[str]) -> Iterator[str]:
    """The corpus, then every required word (bare and space-led) more often than any corpus pair.

    BPE merges the most frequent pair first. Repeating the required words more times than
    any pair occurs in the corpus puts all of their merges before any other, so they become
    single tokens whatever the corpus looks like (as long as the vocabulary has room).
    """
    yield from corpus
    repeats = _max_pair_count(corpus) + 1
    for word in SINGLE_TOKEN_WORDS:
        yield (word + "\n " + word + "\n") * repeats


def _train_bpe(corpus: list[str], vocab_size: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = _pre_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_weighted_corpus(corpus), trainer=trainer)
    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(merge.split(" ")) if isinstance(merge, str) else tuple(merge) for merge in model["merges"]]
    return dict(model["vocab"]), merges


def _check_single_tokens(tokenizer: Qwen2Tokenizer, vocab_size: int) -> None:
    texts = [*DIGITS, *SINGLE_TOKEN_WORDS, *(" " + word for word in SINGLE_TOKEN_WORDS)]
    for text in texts:
        ids = tokenizer.encode(text, add_special_tokens=False)
        if len(ids) != 1:
            raise ValueError(f"{text!r} is {len(ids)} tokens with vocab_size={vocab_size}; raise vocab_size")


def build_tokenizer(corpus: Iterable[str], vocab_size: int = 384) -> Qwen2Tokenizer:
    """Train a byte-level BPE on `corpus` and wrap it as a Qwen2 tokenizer with a chat template."""
    vocab, merges = _train_bpe(list(corpus), vocab_size)
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,  # tuple pairs: tokenizers 0.23 rejects "a b" strings here
        unk_token=None,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        extra_special_tokens=[token for token in SPECIAL_TOKENS if token not in (EOS_TOKEN, PAD_TOKEN)],
        chat_template=CHAT_TEMPLATE,
    )
    _check_single_tokens(tokenizer, vocab_size)
    return tokenizer
