"""Start the rollout actors as Ray actors."""

from __future__ import annotations

import ray

from actors.rollout import RolloutActor, RolloutSetup
from configs.schema import RolloutConfig
from wire.weights import WeightSource


def start_rollout_actors(
    config: RolloutConfig,
    captioner: str,
    records_file: str,
    replay_endpoints: tuple[str, ...],
    weight_source: WeightSource,
    reasoner_app: str,
    gate,
    env: dict[str, str],
) -> list:
    remote = ray.remote(RolloutActor).options(
        num_cpus=config.num_cpus, num_gpus=config.num_gpus, runtime_env={"env_vars": env}
    )
    return [
        remote.remote(
            config,
            RolloutSetup(
                actor_id=i,
                num_actors=config.num_actors,
                captioner=captioner,
                records_file=records_file,
                replay_endpoints=replay_endpoints,
                weight_source=weight_source,
                reasoner_app=reasoner_app,
            ),
            gate,
        )
        for i in range(config.num_actors)
    ]
