"""Start the rollout actors as Ray actors."""

from __future__ import annotations

import ray

from actors.rollout import RolloutActor, RolloutSetup
from configs.placement import ray_options
from configs.schema import RolloutConfig
from configs.seeds import derived_seed
from coordination.handles import GateHandle, RolloutHandle
from vlm.sampling import SamplingSpec
from wire.weights import WeightSource


def start_rollout_actors(
    config: RolloutConfig,
    policy: str,
    sampling: SamplingSpec,
    records_file: str,
    replay_endpoints: tuple[str, ...],
    weight_source: WeightSource,
    reasoner_app: str,
    gate: GateHandle | None,
    env: dict[str, str],
    seed: int,
    curve_keys_dir: str = "",
    nodes: tuple[str, ...] = (),
    role: str = "captioner",
) -> list[RolloutHandle]:
    """The actors, generating once `run()` is called; each with its own stream of the run's `seed`;
    `policy` is the checkpoint of the model in `role` (policy.role).
    `nodes`: each actor's planned node (rollout.placement.per_node), else Ray places them."""
    # A call in flight when an actor dies fails rather than rerunning: the driver restarts its
    # run from where the learner says it left off (supervisor/restarts.py).
    remote = ray.remote(RolloutActor)

    def options(i: int) -> dict:
        placed = ray_options(config.num_cpus, config.num_gpus, config.placement, nodes[i] if nodes else "")
        return {**placed, "runtime_env": {"env_vars": env}, "max_restarts": config.max_restarts, "max_task_retries": 0}

    def setup(i: int) -> RolloutSetup:
        return RolloutSetup(
            actor_id=i,
            num_actors=config.num_actors,
            policy=policy,
            sampling=sampling,
            records_file=records_file,
            replay_endpoints=replay_endpoints,
            weight_source=weight_source,
            reasoner_app=reasoner_app,
            seed=derived_seed(seed, "actor", i),
            curve_keys_dir=curve_keys_dir,
            role=role,
        )

    return [
        RolloutHandle(remote.options(**options(i)).remote(config, setup(i), gate)) for i in range(config.num_actors)
    ]
