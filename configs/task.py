"""The prompts and the checkpoints: the bundled synthetic task (its build and warm start), or
your data files with your models."""

from __future__ import annotations

from dataclasses import dataclass, field

from configs.bounds import Section, bounded, one_of, require


@dataclass
class WarmStartConfig(Section):
    """Supervised warm start of the bundled tiny models, run once when the bundled task is built."""

    section = "task.warm_start"

    # Random scenes (never an eval scene) the warm start trains on. With 4096 the captioner
    # learned its scenes by heart: far better on them than on unseen ones.
    num_scenes: int = bounded(16384, gt=0)
    # The captioner's captions name the objects in cell order and, after each, go on to the
    # next with this probability (else stop), whatever the question asks.
    go_on_prob: float = bounded(0.4, ge=0, le=1)
    batch_size: int = bounded(32, gt=0)
    # Steps teaching the vision tower to point each cell's token at the words for its content and place.
    vision_steps: int = bounded(300, ge=0)
    vision_lr: float = 3e-3
    # The captioner first learns to read on complete captions, until its captions of held-out
    # scenes name objects this precisely (checked every `check_every` steps), for at most
    # `reading_steps`; then it learns to stop early, for `stopping_steps`.
    captioner_min_precision: float = bounded(0.9, ge=0, le=1)
    check_every: int = bounded(400, ge=0)
    reading_steps: int = bounded(1600, ge=0)
    stopping_steps: int = bounded(300, ge=0)
    captioner_lr: float = 2e-3
    # The share of the captioner's reading and stopping examples that ask it to answer for itself
    # (the direct mode, the two-stage tentative answer); reading also goes on until it answers
    # held-out questions this often.
    answer_share: float = bounded(0.25, ge=0, lt=1)
    captioner_min_direct_accuracy: float = bounded(0.5, ge=0, le=1)
    # The reasoner trains until it answers right from complete captions of held-out scenes this
    # often, and judges held-out answers and captions, answers multiple choice and the inference
    # modes' prompts this often (checked every `check_every` steps), for at most `reasoner_steps`.
    # It learns to copy and count objects only after ~1000 steps; with four skills to learn,
    # 5000 steps left counting at 0.75 and multiple choice at 0.63 (build format 12).
    reasoner_min_accuracy: float = bounded(0.95, ge=0, le=1)
    reasoner_steps: int = bounded(10000, ge=0)
    reasoner_lr: float = 1e-3
    # A copy of the reasoner is kept from the first check where it answers at least this often
    # (task.bundled_reasoner=partial): a weaker reasoner, for runs that train the reasoner.
    partial_reasoner_accuracy: float = bounded(0.5, ge=0, le=1)


@dataclass
class TaskConfig(Section):
    """The prompts: the bundled synthetic task, or your data files (docs/your-data-and-evaluation.md)."""

    section = "task"

    # "bundled" builds the synthetic task on first use; "files" reads train_file/eval_file.
    kind: str = one_of(("bundled", "files"), "bundled")
    # Training data when kind=files: our JSONL (id, image, question, answer), or ViRL39K's
    # parquet (the release or the mirrored copy). Prepared once before the run (docs/your-data-and-evaluation.md).
    train_file: str = ""
    # Held-out data when kind=files, in the same layouts.
    eval_file: str = ""
    # Training rows whose source is one of these are left out, e.g. [DeepScaleR] as RACRO trains.
    exclude_sources: list[str] = field(default_factory=list)
    # Only training rows of these categories are used; empty = every category.
    categories: list[str] = field(default_factory=list)
    # Rows whose image declares more pixels are left out (decoding one takes seconds and GBs;
    # Qwen2.5-VL's resizing caps what the model sees at 12.8M pixels anyway).
    max_image_pixels: int = bounded(6000 * 6000, ge=1)
    # Where the bundled task (dataset and tiny checkpoints) is built and cached.
    cache_dir: str = "~/.cache/caption-reward-rl"
    # Seed of the bundled task's data and tiny checkpoints.
    seed: int = 0
    # Bundled task sizes.
    num_train: int = bounded(2048, gt=0)
    num_eval: int = bounded(256, gt=0)
    warm_start: WarmStartConfig = field(default_factory=WarmStartConfig)
    # Which bundled reasoner a run uses where models.reasoner is empty: "trained" (its whole warm
    # start) or "partial" (a copy from early in it: a weaker reasoner, for policy.role=reasoner).
    bundled_reasoner: str = one_of(("trained", "partial"), "trained")

    def check(self) -> None:
        require(self.kind == "bundled" or bool(self.train_file), "task.train_file is required when task.kind=files")


@dataclass
class ModelsConfig(Section):
    """Checkpoints (Hugging Face folders). Empty = the bundled tiny models."""

    section = "models"

    # Qwen2.5-VL captioner checkpoint (the policy unless policy.role=reasoner).
    captioner: str = ""
    # Text-only reasoner checkpoint (frozen unless policy.role=reasoner).
    reasoner: str = ""
