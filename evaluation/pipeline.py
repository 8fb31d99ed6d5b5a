"""Evaluate a captioner before and after training on the held-out prompts; save the table and plot."""

from __future__ import annotations

from pathlib import Path

from actors.engine import SamplingSettings
from configs.schema import TrainConfig
from configs.seeds import derived_seed
from evaluation.heldout import EvalResult, EvalSettings, EvalWorkers, evaluate_captioner
from evaluation.plot import plot_run
from evaluation.report import format_table, save_results
from evaluation.workers import start_caption_worker, start_reasoner_worker
from records.vqa import read_records
from vlm.processor import load_captioner_processor
from vlm.sampling import SamplingSpec, caption_sampling_spec


def eval_settings(config: TrainConfig, sampling: SamplingSpec) -> EvalSettings:
    """Captions sampled as the rollout actors sample them (under `sampling`), answered as the reasoner pool answers."""
    return EvalSettings(
        max_prompts=config.eval.max_prompts,
        prompts_per_batch=config.eval.prompts_per_batch,
        caption_sampling=SamplingSettings(
            sampling, n=config.eval.samples_per_prompt, max_new_tokens=config.rollout.sampling.max_new_tokens
        ),
    )


def evaluate_before_after(
    config: TrainConfig, initial: str, trained: str, frozen: str, eval_file: str, out_dir: Path
) -> list[EvalResult]:
    """Held-out accuracy of the initial and the trained policy (config.policy.role), the other
    model being `frozen`; writes eval.json, eval.md and, when `out_dir` is a run, its reward plot
    with both accuracies marked. Needs Ray running."""
    policies = [("initial", initial), ("trained", trained)]
    if config.policy.role == "reasoner":
        results = evaluate_pipelines(
            config, [(label, frozen, reasoner) for label, reasoner in policies], eval_file, "reasoner"
        )
    else:
        results = evaluate_captioners(config, policies, frozen, eval_file)
    table = save_results(results, out_dir)
    print(format_table(results))
    print(f"(saved to {table})")
    plot_run(out_dir, results)
    return results


def evaluate_captioners(
    config: TrainConfig, captioners: list[tuple[str, str]], reasoner_checkpoint: str, eval_file: str
) -> list[EvalResult]:
    """Held-out accuracy of each (label, captioner checkpoint) in turn, with one reasoner."""
    return evaluate_pipelines(
        config, [(label, captioner, reasoner_checkpoint) for label, captioner in captioners], eval_file
    )


def evaluate_pipelines(
    config: TrainConfig, pipelines: list[tuple[str, str, str]], eval_file: str, evaluated: str = "captioner"
) -> list[EvalResult]:
    """Held-out accuracy of each (label, captioner, reasoner) pipeline in turn, each result naming
    the checkpoint of its `evaluated` role. Needs Ray running.

    Every pipeline's engines start afresh from the same streams of the run's seed, so they are
    compared on equal terms. The first captioner's tokenizer names the suppressed ids: the
    captioners must share it.
    """
    tokenizer = load_captioner_processor(pipelines[0][1]).tokenizer
    settings = eval_settings(config, caption_sampling_spec(config.rollout.sampling, tokenizer))
    records = read_records(Path(eval_file))
    results = []
    for label, captioner_checkpoint, reasoner_checkpoint in pipelines:
        reasoner = start_reasoner_worker(
            config.serve, reasoner_checkpoint, derived_seed(config.seed, "eval", "reasoner")
        )
        captioner = start_caption_worker(
            config.rollout, captioner_checkpoint, eval_file, derived_seed(config.seed, "eval", "captioner")
        )
        try:
            checkpoint = captioner_checkpoint if evaluated == "captioner" else reasoner_checkpoint
            results.append(evaluate_captioner(label, checkpoint, EvalWorkers(captioner, reasoner), records, settings))
        finally:  # their engines' memory (a GPU's, on GPU configs) goes back now
            captioner.close()
            reasoner.close()
    return results
