"""The GRPO learner's section: its update, replay queue, off-policy correction and weight sync."""

from __future__ import annotations

from dataclasses import dataclass, field

from configs.bounds import Section, bounded, one_of, require
from configs.placement import PlacementConfig

WEIGHT_SYNC_BACKENDS = ("zmq", "gloo", "nccl")
CORRECTION_KINDS = ("none", "tis", "mask", "decoupled")


@dataclass
class ReplayConfig(Section):
    """The learner's replay queue: a ZeroMQ PULL socket the actors connect to."""

    section = "learner.replay"

    # Bind address; loopback by default. Set to an interface address (or 0.0.0.0) for multi-node.
    host: str = "127.0.0.1"
    # A host beyond loopback without curve.keys_dir refuses to start unless this is true.
    allow_insecure: bool = False
    # 0 picks a free port. Only learner rank 0 binds; it hands the other ranks their share.
    port: int = 0
    # Scored groups held in memory; beyond it the socket stops reading and actors block.
    capacity_groups: int = bounded(32, ge=1)
    # And their encoded bytes (large images make a group large): whichever bound is reached first.
    capacity_bytes: int = bounded(256 * 2**20, ge=1)
    # A frame larger than this is refused by ZeroMQ before it is buffered (the sender is
    # disconnected, and a real actor reconnects); no group of a real run comes near it.
    max_frame_bytes: int = bounded(64 * 2**20, ge=2**16)


@dataclass
class CorrectionConfig(Section):
    """How a token sampled by an older policy counts in the update (learner/corrections.py).

    pi_b: the policy that sampled the token; pi_prox: the learner's weights before the step.
    none: PPO clip of pi / pi_b. The others clip pi / pi_prox, which is 1 with one optimizer step
    per learner step (so that clip never binds), and weight each token by
    tis: min(pi_prox / pi_b, tis_cap); mask: 1 if mask_low <= pi_prox / pi_b <= mask_high, else 0;
    decoupled (AReaL): pi_prox / pi_b, or 0 above decoupled_cap. A token weighted 0 gets no KL
    gradient either. A token's loss is then at most tis_cap |A|, |A|, decoupled_cap |A|.
    """

    section = "learner.correction"

    kind: str = one_of(CORRECTION_KINDS, "none")
    # Under kind none, for negative advantages a token's loss is at most -A * dual_clip, so a
    # stale token with a huge ratio cannot dominate a batch; under the other kinds pi / pi_prox
    # is 1 and it never binds (their weights bound the loss). 0 = off, else > 1 + learner.clip_high.
    dual_clip: float = 3.0
    tis_cap: float = bounded(2.0, ge=1)
    mask_low: float = bounded(0.5, ge=0, le=1)
    mask_high: float = bounded(2.0, ge=1)
    decoupled_cap: float = bounded(5.0, ge=1)


@dataclass
class WeightSyncConfig(Section):
    """How new policy versions reach the actors."""

    section = "learner.weight_sync"

    # "zmq": raw tensor buffers over a ZeroMQ PUB socket, to any engine; the learner never waits.
    # "nccl" (GPUs) / "gloo" (CPUs): broadcast from learner rank 0 straight into every vLLM
    # engine's workers (rollout.engine=vllm); each publish waits until all engines have loaded it.
    backend: str = one_of(WEIGHT_SYNC_BACKENDS, "zmq")
    # Where rank 0 binds its socket (and, for broadcasts, hosts the group): a cluster-reachable
    # address for multi-node runs.
    host: str = "127.0.0.1"
    port: int = 0
    # A host beyond loopback without curve.keys_dir refuses to start unless this is true.
    allow_insecure: bool = False
    # Publish after every k-th learner step.
    every_steps: int = bounded(1, ge=1)
    # Broadcasts: seconds to wait for the actors to join, and to acknowledge each update.
    timeout_s: float = bounded(300.0, gt=0)


@dataclass
class LearnerConfig(Section):
    """GRPO learner under DeepSpeed."""

    section = "learner"

    # Data-parallel ranks (Ray actors, one DeepSpeed process each).
    num_ranks: int = bounded(1, ge=1)
    total_steps: int = bounded(200, ge=1)
    # Caption groups per learner step (split evenly across ranks).
    groups_per_step: int = 8
    # Caption groups in one forward and backward pass (a micro-batch): more uses more memory
    # (activations grow with it) and fewer, larger passes; the gradient is the same.
    groups_per_micro_batch: int = bounded(1, ge=1)
    lr: float = bounded(3e-4, gt=0)
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    # PPO clip range of the importance ratio (against pi_b or pi_prox: see CorrectionConfig).
    clip_low: float = bounded(0.2, gt=0, lt=1)
    clip_high: float = bounded(0.2, gt=0)
    # Coefficient of the low-variance KL to the frozen initial policy; 0 builds no reference.
    kl_coef: float = bounded(0.0, ge=0)
    # eta: max versions between a sample's generation and its use; 0 = synchronous on-policy.
    max_staleness: int = bounded(2, ge=0)
    # Drop groups whose rewards are all equal (zero advantage, no signal).
    drop_uniform_groups: bool = False
    # Divide advantages by the group's reward std (GRPO) or only centre them.
    scale_advantages: bool = True
    freeze_vision: bool = True
    zero_stage: int = one_of((0, 1, 2, 3), 1)
    # "fp32" | "bf16"
    dtype: str = one_of(("fp32", "bf16"), "fp32")
    # Save a DeepSpeed checkpoint every k steps (0 = only at the end).
    checkpoint_every: int = bounded(0, ge=0)
    # Write every k-th step's caption groups (prompt, captions, rewards, answers, versions) to
    # rollouts.jsonl in the run directory (0 = never).
    rollout_log_every: int = bounded(1, ge=0)
    num_cpus: float = 0.5
    num_gpus: float = 0.0
    torch_threads: int = 1
    # Which nodes the ranks run on; per_node = ranks per node.
    placement: PlacementConfig = field(default_factory=PlacementConfig)
    # Seconds to wait for a batch before reporting a stall.
    batch_timeout_s: float = 300.0
    correction: CorrectionConfig = field(default_factory=CorrectionConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    weight_sync: WeightSyncConfig = field(default_factory=WeightSyncConfig)

    def check(self) -> None:
        require(
            self.groups_per_step % self.num_ranks == 0,
            "learner.groups_per_step must be a multiple of learner.num_ranks",
        )
        dual = self.correction.dual_clip
        require(
            dual == 0 or dual > 1 + self.clip_high,
            "learner.correction.dual_clip must be 0 (off) or > 1 + learner.clip_high",
        )
