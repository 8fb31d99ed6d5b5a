"""Where a run's metrics go besides metrics.jsonl and TensorBoard (always written)."""

from __future__ import annotations

from dataclasses import dataclass

from configs.bounds import Section, bounded


@dataclass
class LoggingConfig(Section):
    """Experiment trackers: Weights & Biases beside TensorBoard (README, "What a run does and writes")."""

    section = "logging"

    # Also log every step's metrics, the run's config and its reward plot to Weights & Biases
    # (`pip install -e ".[wandb]"`), the run named for its directory. Its files go under
    # RUN_DIR/wandb/; WANDB_MODE=offline keeps them there with no network (`wandb sync` uploads
    # them later); the API key comes from the environment (WANDB_API_KEY), never from a config.
    wandb: bool = False
    # The Weights & Biases project the run goes to.
    wandb_project: str = bounded("caption-reward-rl", nonempty=True)
