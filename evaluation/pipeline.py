"""Evaluate a captioner before and after training on the held-out prompts; save the table and plot."""

from __future__ import annotations

from pathlib import Path

from actors.engine import SamplingSettings
from configs.schema import TrainConfig
from evaluation.heldout import EvalResult, EvalSettings, evaluate_captioner
from evaluation.plot import plot_run
from evaluation.report import format_table, save_results


def eval_settings(config: TrainConfig) -> EvalSettings:
    """Captions sampled as the rollout actors sample them, answered as the reasoner pool answers."""
    return EvalSettings(
        max_prompts=config.eval.max_prompts,
        prompts_per_batch=config.eval.prompts_per_batch,
        caption_sampling=SamplingSettings(n=config.eval.samples_per_prompt, **vars(config.rollout.sampling)),
        reasoner_temperature=config.serve.temperature,
        reasoner_max_new_tokens=config.serve.max_new_tokens,
        seed=config.seed,
    )


def evaluate_before_after(
    config: TrainConfig, initial: str, trained: str, reasoner_checkpoint: str, eval_file: str, out_dir: Path
) -> list[EvalResult]:
    """Held-out accuracy of the initial and the trained captioner; writes eval.json, eval.md and,
    when `out_dir` is a run, its reward plot with both accuracies marked."""
    from serve.hf_reasoner import TransformersReasoner

    settings = eval_settings(config)
    reasoner = TransformersReasoner(reasoner_checkpoint)
    results = [
        evaluate_captioner("initial", initial, reasoner, Path(eval_file), settings),
        evaluate_captioner("trained", trained, reasoner, Path(eval_file), settings),
    ]
    table = save_results(results, out_dir)
    print(format_table(results))
    print(f"(saved to {table})")
    plot_run(out_dir, results)
    return results
