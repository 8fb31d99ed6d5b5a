"""A role's placement config as the Ray options of each of its processes."""

from __future__ import annotations

from configs.schema import PlacementConfig


def ray_options(num_cpus: float, num_gpus: float, placement: PlacementConfig, node_id: str = "") -> dict:
    """Options for `ray.remote(...).options` (and Serve's `ray_actor_options`). `node_id`
    (a planned node, for roles with `per_node`) pins the process there while that node is alive;
    should it die, Ray may restart the process on another node carrying the labels."""
    options: dict = {"num_cpus": num_cpus, "num_gpus": num_gpus}
    if placement.resources:
        options["resources"] = dict(placement.resources)
    if placement.node_labels:
        options["label_selector"] = dict(placement.node_labels)
    if node_id:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id, soft=True)
    return options
