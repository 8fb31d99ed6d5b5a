"""Start the learner ranks (one Ray actor per DeepSpeed process) and the staleness gate."""

from __future__ import annotations

import ray

from configs.schema import LearnerConfig
from learner.distributed import RankInfo, free_port
from learner.gate import GateActor
from learner.role import LearnerRank, LearnerSetup


def start_gate(config: LearnerConfig):
    return ray.remote(GateActor).options(num_cpus=0).remote(config.groups_per_step, config.max_staleness)


def start_learner(
    config: LearnerConfig, captioner: str, run_dir: str, temperature: float, gate, env: dict[str, str]
) -> list:
    master_addr = ray.util.get_node_ip_address() if config.num_ranks > 1 else "127.0.0.1"
    master_port = free_port()
    # max_concurrency 2: the driver reads progress while `train` runs.
    remote = ray.remote(LearnerRank).options(
        num_cpus=config.num_cpus, num_gpus=config.num_gpus, max_concurrency=2, runtime_env={"env_vars": env}
    )
    return [
        remote.remote(
            config,
            LearnerSetup(
                captioner=captioner,
                run_dir=run_dir,
                rank=RankInfo(rank=r, world_size=config.num_ranks, master_addr=master_addr, master_port=master_port),
                temperature=temperature,
            ),
            gate,
        )
        for r in range(config.num_ranks)
    ]
