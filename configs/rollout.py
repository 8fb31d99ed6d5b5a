"""The rollout actors' section."""

from __future__ import annotations

from dataclasses import dataclass, field

from configs.bounds import Section, bounded, one_of
from configs.engines import ENGINES, SamplingConfig, VllmConfig
from configs.placement import PlacementConfig


@dataclass
class RolloutConfig(Section):
    """Rollout actors: generate caption groups continuously and send them, scored, to the learner."""

    section = "rollout"

    # Number of rollout actors (Ray actors). One per device: on the bundled 2-core default, one
    # actor making 4 groups a call generated 1.5x the groups per CPU second of two making 2
    # (BENCHMARKS.md, "Pipeline"); on a cluster, one per inference GPU.
    num_actors: int = bounded(1, ge=1)
    # G: captions sampled per prompt (one GRPO group); at least 2, as GRPO compares samples within a group.
    group_size: int = bounded(8, ge=2)
    # Prompts one actor generates for in one engine call (fewer when the staleness gate admits fewer).
    prompts_per_call: int = bounded(4, ge=1)
    # Caption engine: "transformers" or "vllm" (CPU build or GPU).
    engine: str = one_of(ENGINES, "transformers")
    vllm: VllmConfig = field(default_factory=VllmConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    # Caption groups an actor may have out for scoring at once while it keeps generating.
    max_groups_scoring: int = bounded(4, ge=1)
    # Tries per group at the reasoner pool before the group is given up as lost (its admission
    # goes back to the staleness gate); the wait before try n+1 is score_retry_backoff_s * 2**n.
    score_attempts: int = bounded(5, ge=1)
    score_retry_backoff_s: float = bounded(0.5, ge=0)
    # Seconds one scoring try may take (a replica that hangs) before it counts as failed and is retried.
    score_timeout_s: float = bounded(300.0, gt=0)
    # Times Ray restarts each actor that died (its process crashed or its node went away); the restarted actor
    # takes the current weights and the prompts not yet delivered. With
    # a broadcast weight sync (gloo, nccl) an actor cannot rejoin the broadcast group, so a
    # death ends the run whatever this says.
    max_restarts: int = bounded(3, ge=0)
    # Logical CPUs reserved per actor; fractional so small machines can schedule every role.
    num_cpus: float = 0.25
    num_gpus: float = 0.0
    # torch intra-op threads per actor.
    torch_threads: int = 1
    # Which nodes the actors run on; per_node = actors per node.
    placement: PlacementConfig = field(default_factory=PlacementConfig)
