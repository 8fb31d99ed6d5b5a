"""Evaluation: the training run's held-out evaluation, and the benchmark settings only
`launch.py eval data=PATH` reads (kept out of a training run's config)."""

from __future__ import annotations

from dataclasses import dataclass, field

from configs.bounds import Section, bounded, one_of, require

EVAL_MODES = ("direct", "caption", "two_stage")


@dataclass
class EvalConfig(Section):
    """Evaluation of a run's captioner on held-out prompts: while training, at its end, and by
    `launch.py eval --run DIR` or `--checkpoint DIR`. It runs the roles' own engines as Ray actors
    placed as the roles are (the captioner by rollout.engine/num_gpus, the reasoner by
    serve.engine/num_gpus): vLLM on GPUs in a GPU config."""

    section = "eval"

    # Evaluate the initial and the trained captioner when a training run ends.
    at_end: bool = True
    # While training: the weights published at every this many learner steps (and the initial
    # and final ones) are evaluated on a fixed held-out subset by an evaluator with engines of its
    # own, beside training (0 = off). 25: a default run (200 steps) gets 9 points. The evaluator's
    # captioner and reasoner are placed as an actor and a replica are, so a GPU each on a GPU
    # config: off in configs/paper_*.yaml, whose node has none to spare.
    every_steps: int = bounded(25, ge=0)
    # That subset: the eval split's first prompts, captions sampled per prompt.
    subset_prompts: int = bounded(64, ge=1)
    subset_samples: int = bounded(2, ge=1)
    # Captions sampled per held-out prompt (rollout sampling settings), one answer each.
    samples_per_prompt: int = bounded(4, ge=1)
    # 0 = every prompt of the eval split.
    max_prompts: int = bounded(0, ge=0)
    prompts_per_batch: int = bounded(16, ge=1)


@dataclass
class BenchmarkEvalConfig(EvalConfig):
    """`launch.py eval data=PATH out=DIR`: a benchmark in the paper's three modes; the keys above
    apply to it too (samples per prompt, prompts, batches)."""

    # `launch.py eval data=PATH out=DIR`: a benchmark file (MathVista .json, VLMEvalKit .tsv)
    # and the folder its results go to (docs/your-data-and-evaluation.md).
    data: str = ""
    out: str = ""
    # The paper's three modes: the captioner answering itself ("direct"), caption -> reasoner
    # ("caption"), and caption + the captioner's tentative answer -> reasoner ("two_stage").
    modes: list[str] = one_of(EVAL_MODES, default_factory=lambda: list(EVAL_MODES), nonempty=True)
    # Captioner checkpoint for data=: "" = models.captioner (or the bundled one).
    captioner: str = ""
    # Reasoners that answer from the same captions, by name, e.g. eval.reasoners.big=/ckpt/72B;
    # empty = models.reasoner (or the bundled one) as "reasoner".
    reasoners: dict[str, str] = field(default_factory=dict)
    # Where captioner outputs are cached by (captioner, prompt, seed); "" = task.cache_dir/captions.
    caption_cache: str = ""
    # Tokens the captioner may write per caption or answer on a benchmark; 0 = rollout.sampling.max_new_tokens.
    max_new_tokens: int = bounded(0, ge=0)

    def check(self) -> None:
        super().check()
        require(
            all(bool(path) for path in self.reasoners.values()), "eval.reasoners: every reasoner needs a checkpoint"
        )
