"""Which nodes a role's processes run on: its placement section, and the Ray options of each of
its processes."""

from __future__ import annotations

from dataclasses import dataclass, field

from configs.bounds import Section, bounded


@dataclass
class PlacementConfig(Section):
    """Which nodes of a Ray cluster one role's processes run on (docs/multi-node.md):
    rollout.placement, serve.placement, learner.placement."""

    section = "placement"

    # Node labels the role's nodes must carry (`ray start --labels=role=rollout`), e.g.
    # {role: rollout}; empty = any node.
    node_labels: dict[str, str] = field(default_factory=dict)
    # Custom resources each of the role's processes takes (`ray start --resources='{"rollout_slot": 2}'`).
    resources: dict[str, float] = bounded(default_factory=dict, ge=0)
    # At most this many of the role's processes on one node; 0 = no limit.
    per_node: int = bounded(0, ge=0)


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
