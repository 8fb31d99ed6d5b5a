"""Start the learner ranks (one Ray actor per DeepSpeed process) and the staleness gate."""

from __future__ import annotations

import ray

from configs.schema import LearnerConfig
from configs.seeds import derived_seed
from learner.gate import GateActor
from learner.role import LearnerRank, LearnerSetup
from vlm.sampling import SamplingSpec
from wire.weights import WeightSource


def start_gate(config: LearnerConfig):
    return ray.remote(GateActor).options(num_cpus=0).remote(config.groups_per_step, config.max_staleness)


def start_learner(
    config: LearnerConfig,
    captioner: str,
    run_dir: str,
    sampling: SamplingSpec,
    num_actors: int,
    gate,
    env: dict[str, str],
    seed: int,
) -> tuple[list, str, WeightSource]:
    """The ranks, set up and joined; returns them, the replay endpoint and the weight source."""
    # max_concurrency 2: the driver reads progress while `train` runs.
    remote = ray.remote(LearnerRank).options(
        num_cpus=config.num_cpus, num_gpus=config.num_gpus, max_concurrency=2, runtime_env={"env_vars": env}
    )
    ranks = [
        remote.remote(
            config,
            LearnerSetup(
                captioner=captioner,
                run_dir=run_dir,
                rank=r,
                world_size=config.num_ranks,
                seed=derived_seed(seed, "learner", r),
                sampling=sampling,
                weight_receivers=num_actors,
            ),
            gate,
        )
        for r in range(config.num_ranks)
    ]
    # Rank 0 may land on any node: it names the rendezvous address, then all ranks join at once.
    master_addr, master_port = ray.get(ranks[0].node_address.remote())
    endpoints = ray.get([rank.setup_rank.remote(master_addr, master_port) for rank in ranks])
    replay_endpoint, weight_source = endpoints[0]
    return ranks, replay_endpoint, weight_source
