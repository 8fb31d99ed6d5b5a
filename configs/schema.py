"""Typed configuration schema: one dataclass per role, composed into the run's config.

The defaults here are the bundled default run (`python launch.py`): a warm-started tiny
captioner trained on the synthetic shapes task on a 2-core CPU, its reward rising within
minutes (why these values: docs/bundled-task.md; what else was tried: docs/design-notes.md). They are
written nowhere else. A YAML file (`--config FILE`, e.g. the paper settings in this folder) and
command-line dotlist overrides are merged over them; an unknown key fails at once
(`configs.load`). Every field has a one-line docstring (the comment above it); its bounds are
declared beside it (`configs.bounds`). The sections live in their own modules:

    configs/task.py        task (and task.warm_start), models
    configs/engines.py     rollout.sampling, vllm and OpenAI endpoint settings
    configs/placement.py   a role's placement
    configs/rollout.py     rollout
    configs/serve.py       serve (serve.api, serve.autoscaling)
    configs/reward.py      reward (mcq, judge, shaping)
    configs/learner.py     learner (replay, correction, weight_sync)
    configs/evaluation.py  eval; the benchmark keys only `launch.py eval` reads
    configs/tracking.py    logging (experiment trackers)
    configs/commands.py    the sections only `launch.py bench` and `soak` read, and each
                           command's config

The reference of every key is docs/configuration.md (`python -m configs.reference`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from configs.bounds import Section, one_of, require
from configs.engines import ENGINES, REASONER_ENGINES, OpenAIEndpointConfig, SamplingConfig, VllmConfig
from configs.evaluation import EvalConfig
from configs.learner import (
    CORRECTION_KINDS,
    WEIGHT_SYNC_BACKENDS,
    CorrectionConfig,
    LearnerConfig,
    ReplayConfig,
    WeightSyncConfig,
)
from configs.placement import PlacementConfig
from configs.reward import JUDGE_TARGETS, REWARD_KINDS, JudgeRewardConfig, McqRewardConfig, RewardConfig, ShapingConfig
from configs.rollout import RolloutConfig
from configs.serve import ApiConfig, AutoscalingConfig, ServeConfig
from configs.task import ModelsConfig, TaskConfig, WarmStartConfig
from configs.tracking import LoggingConfig

__all__ = [
    "ENGINES",
    "REASONER_ENGINES",
    "WEIGHT_SYNC_BACKENDS",
    "CORRECTION_KINDS",
    "REWARD_KINDS",
    "JUDGE_TARGETS",
    "POLICY_ROLES",
    "WarmStartConfig",
    "TaskConfig",
    "ModelsConfig",
    "SamplingConfig",
    "VllmConfig",
    "PlacementConfig",
    "RolloutConfig",
    "OpenAIEndpointConfig",
    "AutoscalingConfig",
    "ApiConfig",
    "ServeConfig",
    "McqRewardConfig",
    "JudgeRewardConfig",
    "ShapingConfig",
    "RewardConfig",
    "ReplayConfig",
    "CorrectionConfig",
    "WeightSyncConfig",
    "LearnerConfig",
    "EvalConfig",
    "CurveConfig",
    "RayConfig",
    "PolicyConfig",
    "LoggingConfig",
    "TrainConfig",
]


@dataclass
class CurveConfig(Section):
    """ZeroMQ CURVE (encryption, and only known actors admitted) on the replay and weight sockets."""

    section = "curve"

    # A directory made by `python launch.py keys out=DIR` and readable on every node; empty = off
    # (loopback needs none). It holds the secret keys: keep it out of the repository and configs.
    keys_dir: str = ""


@dataclass
class RayConfig(Section):
    """Where the roles run."""

    section = "ray"

    # Empty starts a local Ray; "auto" or "host:port" joins an existing cluster.
    address: str = ""
    # Logical CPUs of a local Ray (empty = detected).
    num_cpus: int | None = None
    # Seconds the roles' processes may take to be placed on nodes and start (models loaded)
    # before the run stops, naming the role still waiting and what it asked for.
    start_timeout_s: float = 900.0


POLICY_ROLES = ("captioner", "reasoner")


@dataclass
class PolicyConfig(Section):
    """Which model learns (docs/rewards-and-recipes.md); the other is frozen and served by the pool."""

    section = "policy"

    # "captioner": the captioner learns from the frozen reasoner's grades (RACRO, CapRL).
    # "reasoner": the reasoner learns to answer from the frozen captioner's captions, the pool
    # serving the captioner and grading the answers (PRA-GRPO's second stage).
    role: str = one_of(POLICY_ROLES, "captioner")
    # `python launch.py alternate`: the roles trained in turn, each stage starting from the
    # latest checkpoint of both models (the exported one of the stage before), e.g.
    # [captioner, reasoner]. Each stage runs learner.total_steps steps.
    stages: list[str] = one_of(POLICY_ROLES, default_factory=lambda: ["captioner", "reasoner"], nonempty=True)


@dataclass
class TrainConfig(Section):
    """A whole run."""

    # Where the run writes metrics, TensorBoard logs, checkpoints and the exported captioner.
    # Empty = runs/<timestamp>.
    run_dir: str = ""
    # A run directory to continue from its latest checkpoint (`python launch.py resume=RUN_DIR`):
    # its config.yaml is the config, and the command line may change keys of it.
    resume: str = ""
    # The run's seed: every random choice of the run (prompt order, caption sampling in every
    # actor, reasoner sampling, the learner, the evaluation) is derived from it (configs/seeds.py).
    seed: int = 0
    task: TaskConfig = field(default_factory=TaskConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    curve: CurveConfig = field(default_factory=CurveConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def check(self) -> None:
        if self.task.kind == "files":
            # Your data, so your checkpoints: never a silent fall back to the bundled tiny models.
            for role in ("captioner", "reasoner"):
                require(
                    bool(getattr(self.models, role)),
                    f"models.{role} is empty: task.kind=files needs your checkpoint (the bundled tiny models "
                    "come only with task.kind=bundled)",
                )
            require(
                not self.eval.at_end or bool(self.task.eval_file),
                "task.eval_file is required when task.kind=files and eval.at_end",
            )
        if self.policy.role == "reasoner":
            mix = self.reward.mix()
            require("mcq" not in mix, "reward.kind=mcq rewards captions: it needs policy.role=captioner")
            require(
                "judge" not in mix or self.reward.judge.target == "answer",
                "policy.role=reasoner: the judge grades the reasoner's answers (reward.judge.target=answer)",
            )
        broadcast = self.learner.weight_sync.backend != "zmq"
        require(
            not broadcast or self.rollout.engine == "vllm",
            f"learner.weight_sync.backend={self.learner.weight_sync.backend} broadcasts into vLLM engines: "
            "it needs rollout.engine=vllm",
        )
        require(
            self.learner.weight_sync.backend != "nccl" or (self.learner.num_gpus > 0 and self.rollout.num_gpus > 0),
            "learner.weight_sync.backend=nccl broadcasts between GPUs: it needs learner.num_gpus and "
            "rollout.num_gpus > 0",
        )
