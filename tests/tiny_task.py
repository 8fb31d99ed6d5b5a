"""A bundled task that builds in seconds: plumbing tests need its files and checkpoints, not its skill."""

from configs.schema import WarmStartConfig

TINY_WARM_START = WarmStartConfig(
    num_scenes=64, batch_size=4, vision_steps=2, reading_steps=2, stopping_steps=2, reasoner_steps=2, check_every=0
)

TINY_TASK_OVERRIDES = [
    "task.num_train=64",
    "task.num_eval=16",
    *(f"task.warm_start.{key}={value}" for key, value in vars(TINY_WARM_START).items()),
    # Plumbing runs evaluate nothing while training: its engines would only slow them
    # (tests/test_eval_while_training.py turns it on).
    "eval.every_steps=0",
]
