"""What a caption (or an answer) is rewarded for: the reward kinds, their mix and the shaping terms."""

from __future__ import annotations

from dataclasses import dataclass, field

from configs.bounds import Section, bounded, one_of, require
from configs.engines import OpenAIEndpointConfig

REWARD_KINDS = ("verifiable", "mcq", "judge")
JUDGE_TARGETS = ("answer", "caption")


@dataclass
class McqRewardConfig(Section):
    """CapRL's multiple-choice reward: questions about the caption's image, answered from the caption."""

    section = "reward.mcq"

    # Questions asked per caption, drawn (seeded) from its record's question set.
    questions_per_caption: int = bounded(3, ge=1)
    # The option every question gains (after its own, shuffled ones), for a caption that does not say.
    cannot_answer: str = bounded("It cannot be answered from the caption.", nonempty=True)


@dataclass
class JudgeRewardConfig(Section):
    """Perception-R1's judge: an LLM grades a response against a reference, "Score: N" (0-10)."""

    section = "reward.judge"

    # "answer": the reasoner's answers to the prompt's question, against the record's answer;
    # "caption": the caption itself, against the record's reference facts (its `reference`).
    target: str = one_of(JUDGE_TARGETS, "answer")
    # The judge: an OpenAI-compatible endpoint (base_url, model, api_key_env); empty base_url =
    # the pool's own reasoner model.
    openai: OpenAIEndpointConfig = field(default_factory=OpenAIEndpointConfig)
    # 0 = greedy.
    temperature: float = bounded(0.0, ge=0)
    # Room for the reply: a judge may reason before its verdict (the bundled one, judging
    # captions, walks the reference's objects and then the caption's invented ones first: up to
    # about 85 tokens when all four cells are wrong); generation stops at the end of the reply.
    max_new_tokens: int = bounded(96, ge=1)

    def check(self) -> None:
        require(
            not self.openai.base_url or bool(self.openai.model),
            "reward.judge.openai.base_url needs reward.judge.openai.model",
        )


@dataclass
class ShapingConfig(Section):
    """Terms added to every caption's reward; all off by default (docs/rewards-and-recipes.md)."""

    section = "reward.shaping"

    # CapRL's length budget: each caption token beyond `length_budget` costs
    # length_penalty / length_budget (a caption twice the budget loses length_penalty). 0 = off.
    length_budget: int = bounded(0, ge=0)
    length_penalty: float = bounded(0.0, ge=0)
    # Perception-R1's repetition penalty: the share of the caption's word n-grams that repeat an
    # earlier one, times repetition_penalty. n = 0 is off.
    repetition_ngram: int = bounded(0, ge=0)
    repetition_penalty: float = bounded(0.0, ge=0)
    # A caption that does not match this regular expression (as a whole) loses format_penalty. "" = off.
    # Matched with the `regex` package under a time bound (serve/rewards.py): a caption on which
    # the pattern backtracks past it counts as out of format.
    format_pattern: str = ""
    format_penalty: float = bounded(0.0, ge=0)

    def check(self) -> None:
        if self.format_pattern:
            # Compiled by the engine that will match it (the `regex` package, not `re`).
            import regex

            try:
                regex.compile(self.format_pattern, regex.DOTALL)
            except regex.error as err:
                raise ValueError(f"reward.shaping.format_pattern is not a regular expression: {err}") from None


@dataclass
class RewardConfig(Section):
    """What a caption is rewarded for (docs/rewards-and-recipes.md): computed by the reasoner pool."""

    section = "reward"

    # "verifiable": the reasoner's answer to the prompt's question, graded against its answer
    # (RACRO); "mcq": its answers to multiple-choice questions about the image (CapRL);
    # "judge": an LLM's grade of the answer (or of the caption) against a reference (Perception-R1).
    kind: str = one_of(REWARD_KINDS, "verifiable")
    # Several kinds mixed: each kind's weight, e.g. {verifiable: 0.5, mcq: 0.5}; empty = `kind` alone.
    weights: dict[str, float] = bounded(default_factory=dict, ge=0)
    mcq: McqRewardConfig = field(default_factory=McqRewardConfig)
    judge: JudgeRewardConfig = field(default_factory=JudgeRewardConfig)
    shaping: ShapingConfig = field(default_factory=ShapingConfig)

    def check(self) -> None:
        unknown = [k for k in self.weights if k not in REWARD_KINDS]
        require(not unknown, f"reward.weights: unknown kind(s) {unknown} (kinds: {REWARD_KINDS})")
        require(not self.weights or sum(self.weights.values()) > 0, "reward.weights must have a positive sum")

    def mix(self) -> dict[str, float]:
        """Each kind in the reward and its weight, the weights scaled to sum to 1 (so a reward
        before shaping stays in [0, 1], as the wire requires)."""
        if not self.weights:
            return {self.kind: 1.0}
        total = sum(self.weights.values())
        return {k: w / total for k, w in self.weights.items() if w > 0}
