"""What a caller sends the reasoner pool to be scored, and what it gets back (Serve handle or HTTP JSON)."""

from __future__ import annotations

from dataclasses import dataclass

# The longest gold answer the grader reads, in characters. A gold answer is a value, an
# expression, an option or a short phrase; 1000 characters is past any such (and over three
# times the 300 of the answers graded against it), while parsing one of 20,000 ran the grading
# deadline out on every answer. Longer ones are refused when the data is prepared (records/,
# `launch.py check-data` lists them), never graded.
MAX_GOLD_ANSWER_CHARS = 1000


@dataclass(frozen=True)
class MCQuestion:
    """A multiple-choice question about an image: its options and the index of the right one."""

    question: str
    options: tuple[str, ...]
    answer: int

    def __post_init__(self) -> None:
        if len(self.options) < 2 or not 0 <= self.answer < len(self.options):
            raise ValueError(f"a multiple-choice question needs >= 2 options and a right one among them: {self}")


MULTIPLE_CHOICE_INSTRUCTION = "Answer with the option's letter."


def multiple_choice_text(question: str, letters: str, choices: tuple[str, ...] | list[str]) -> str:
    """A question with its options listed under it, one "(A) text" a line: the one form both the
    multiple-choice reward and the benchmarks ask in, so a reasoner learns a single format."""
    listed = "\n".join(f"({letter}) {choice}" for letter, choice in zip(letters, choices))
    return f"{question}\n{listed}\n{MULTIPLE_CHOICE_INSTRUCTION}"


@dataclass(frozen=True)
class ScoreRequest:
    """Score one caption group: answer `question` from each caption, grade against `gold_answer`
    (and, for the multiple-choice reward, the image's `mc_questions`)."""

    question: str
    gold_answer: str
    captions: tuple[str, ...]
    mc_questions: tuple[MCQuestion, ...] = ()
    # Each caption's length in the captioner's tokens (for the length budget); () = unknown.
    caption_tokens: tuple[int, ...] = ()
    # Seeds the draw and shuffle of the multiple-choice questions (the group's stream position).
    seed: int = 0
    # Reference facts about the image, for a judge grading captions.
    reference: str = ""

    def __post_init__(self) -> None:
        if not self.captions:
            raise ValueError("ScoreRequest needs at least one caption")
        if self.caption_tokens and len(self.caption_tokens) != len(self.captions):
            raise ValueError("ScoreRequest: caption_tokens must give one length per caption")


@dataclass(frozen=True)
class AnswerScoreRequest:
    """Score one answer group (policy.role=reasoner): grade each of the policy reasoner's
    `answers` to `question`, read from one frozen caption, against `gold_answer`."""

    question: str
    gold_answer: str
    answers: tuple[str, ...]
    # Each answer's length in the reasoner's tokens (for the length budget); () = unknown.
    answer_tokens: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.answers:
            raise ValueError("AnswerScoreRequest needs at least one answer")
        if self.answer_tokens and len(self.answer_tokens) != len(self.answers):
            raise ValueError("AnswerScoreRequest: answer_tokens must give one length per answer")


@dataclass(frozen=True)
class ScoreResult:
    rewards: tuple[float, ...]  # per caption (or answer): its reward, in [0, 1] less any shaping
    answers: tuple[tuple[str, ...], ...]  # per caption: the k reasoner answers (per answer: the judge's verdicts)
    latency_s: float  # time from the batch's start to its end, on the replica
    # Answers graded wrong unparsed because they would cost too much to grade (serve/grading.py).
    answers_refused: int = 0
    # Captions that were empty (nothing but whitespace): no reasoner call, reward 0 less the shaping terms.
    empty_captions: int = 0
    # Judge replies out of format (serve/judge.py): scored 0.
    judge_unparsed: int = 0
    # Captions (or answers) whose format-pattern match ran past its time bound: out of format.
    format_timeouts: int = 0


def score_request_from_json(body: object) -> ScoreRequest:
    """Build a ScoreRequest from an HTTP JSON body, naming the first bad field."""
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object with question, answer and captions")
    question, answer, captions = body.get("question"), body.get("answer"), body.get("captions")
    if not isinstance(question, str) or not question:
        raise ValueError("field 'question' must be a non-empty string")
    if not isinstance(answer, str):
        raise ValueError("field 'answer' must be a string")
    if not isinstance(captions, list) or not captions or not all(isinstance(c, str) for c in captions):
        raise ValueError("field 'captions' must be a non-empty list of strings")
    tokens, seed = body.get("caption_tokens", []), body.get("seed", 0)
    if (
        not isinstance(tokens, list)
        or not all(isinstance(t, int) and t >= 0 for t in tokens)
        or tokens
        and len(tokens) != len(captions)
    ):
        raise ValueError("field 'caption_tokens' must be a list of one token count per caption")
    if not isinstance(seed, int):
        raise ValueError("field 'seed' must be an integer")
    reference = body.get("reference", "")
    if not isinstance(reference, str):
        raise ValueError("field 'reference' must be a string")
    return ScoreRequest(
        question,
        answer,
        tuple(captions),
        _questions_from_json(body.get("questions", [])),
        tuple(tokens),
        seed,
        reference,
    )


def _questions_from_json(questions: object) -> tuple[MCQuestion, ...]:
    """The optional multiple-choice questions: [{"question", "options": [...], "answer": index}]."""
    shape = (
        "field 'questions' must be a list of "
        "{question: string, options: list of strings, answer: index of the right option}"
    )
    if not isinstance(questions, list):
        raise ValueError(shape)
    parsed = []
    for q in questions:
        if not (
            isinstance(q, dict)
            and isinstance(q.get("question"), str)
            and isinstance(q.get("options"), list)
            and all(isinstance(o, str) for o in q["options"])
            and isinstance(q.get("answer"), int)
        ):
            raise ValueError(shape)
        parsed.append(MCQuestion(q["question"], tuple(q["options"]), q["answer"]))  # checks the answer's index
    return tuple(parsed)
