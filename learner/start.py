"""Start the learner ranks: one Ray actor per DeepSpeed process."""

from __future__ import annotations

from dataclasses import dataclass

import ray

from configs.placement import ray_options
from configs.schema import LearnerConfig
from configs.seeds import derived_seed
from coordination.handles import EvalSchedule, GateHandle, LearnerHandle
from coordination.resume import LearnerReady
from learner.admission import GroupBounds
from learner.role import LearnerRank, LearnerSetup
from vlm.sampling import SamplingSpec


@dataclass(frozen=True)
class StartingLearner:
    """Learner ranks still setting up (DeepSpeed, the model): the caller starts other roles meanwhile."""

    ranks: list[LearnerHandle]
    setups: list  # the ranks' setup calls (ObjectRefs)

    def ready(self) -> tuple[list[LearnerHandle], LearnerReady]:
        """Wait for the setup; returns the ranks, and rank 0's replay endpoint, weight source and,
        for a resumed run, where it continues."""
        return self.ranks, ray.get(self.setups)[0]


def start_learner(
    config: LearnerConfig,
    policy: str,
    run_dir: str,
    sampling: SamplingSpec,
    num_actors: int,
    gate: GateHandle | None,
    env: dict[str, str],
    seed: int,
    resume: bool = False,
    curve_keys_dir: str = "",
    nodes: tuple[str, ...] = (),
    role: str = "captioner",
    bounds: GroupBounds | None = None,
    evaluation: EvalSchedule | None = None,
) -> StartingLearner:
    """Create the ranks and start their setup; `.ready()` waits for it. `policy`: the checkpoint
    of the model in `role` (policy.role). `nodes`: each rank's planned node
    (learner.placement.per_node), else Ray places them. `bounds`: what the run's groups must be
    (learner/admission.py `run_bounds`)."""
    remote = ray.remote(LearnerRank)

    def options(rank: int) -> dict:
        placed = ray_options(config.num_cpus, config.num_gpus, config.placement, nodes[rank] if nodes else "")
        # max_concurrency 2: the driver reads progress while `train` runs.
        return {**placed, "max_concurrency": 2, "runtime_env": {"env_vars": env}}

    def setup(rank: int) -> LearnerSetup:
        return LearnerSetup(
            policy=policy,
            run_dir=run_dir,
            rank=rank,
            world_size=config.num_ranks,
            seed=derived_seed(seed, "learner", rank),
            sampling=sampling,
            weight_receivers=num_actors,
            resume=resume,
            curve_keys_dir=curve_keys_dir,
            role=role,
            bounds=bounds,
            evaluation=evaluation,
        )

    ranks = [
        LearnerHandle(remote.options(**options(r)).remote(config, setup(r), gate)) for r in range(config.num_ranks)
    ]
    # Rank 0 may land on any node: it names the rendezvous address, then all ranks join at once
    # (Ray hands them the address when rank 0 has named it; nothing here waits).
    rendezvous = ranks[0].node_address_ref()
    return StartingLearner(ranks, [rank.setup_ref(rendezvous) for rank in ranks])
