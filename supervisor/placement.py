"""Where a run's roles go on the Ray cluster, checked before anything starts.

Ray keeps a process it cannot place waiting without a word. So the driver first places every
role's processes on the cluster's nodes itself (their labels, custom resources, CPUs and GPUs,
the roles' per-node limits): a placement the cluster cannot satisfy stops the run at once,
naming the role, what it asked for and why each node cannot take it. Roles with a per-node
limit are then pinned to the planned nodes (Ray has no per-node limit for plain actors); the
others are left to Ray's scheduler under the same labels and resources. Then the driver waits
for the processes to start within `ray.start_timeout_s`, naming any role still waiting.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from configs.schema import PlacementConfig, TrainConfig

log = logging.getLogger(__name__)
_EPS = 1e-9


class PlacementError(RuntimeError):
    """The cluster cannot place (or did not start) a role's processes; the message names the role."""


@dataclass(frozen=True)
class ClusterNode:
    node_id: str
    address: str
    resources: dict[str, float]  # the node's totals
    labels: dict[str, str]


@dataclass(frozen=True)
class RoleDemand:
    """`count` processes of one role, each taking `each`, on nodes carrying `labels`."""

    role: str  # e.g. "rollout actor"
    section: str  # its config section, named in errors
    count: int
    each: dict[str, float]
    labels: dict[str, str]
    per_node: int  # 0 = no limit

    def describe(self) -> str:
        taking = ", ".join(f"{k} {v:g}" for k, v in self.each.items()) or "nothing"
        where = f" on nodes labelled {_labels_text(self.labels)}" if self.labels else ""
        limit = f", at most {self.per_node} per node" if self.per_node else ""
        return f"{self.count} {self.role}(s), each taking {taking}{where}{limit}"


def _labels_text(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in labels.items())


def _demand(role: str, section: str, count: int, cpus: float, gpus: float, placement: PlacementConfig) -> RoleDemand:
    each = {"CPU": cpus, "GPU": gpus, **placement.resources}
    return RoleDemand(
        role, section, count, {k: v for k, v in each.items() if v > 0}, dict(placement.node_labels), placement.per_node
    )


def role_demands(config: TrainConfig, training: bool = True) -> list[RoleDemand]:
    """What the run's roles ask of the cluster, in the order they start (`training` False: the
    live service alone, `launch.py serve`)."""
    learner, serve, rollout = config.learner, config.serve, config.rollout
    scaling = serve.autoscaling
    replicas = scaling.min_replicas if scaling.max_replicas else serve.num_replicas
    demands = [_demand("reasoner replica", "serve", replicas, serve.num_cpus, serve.num_gpus, serve.placement)]
    live = serve.live or not training
    frozen_captioner = training and config.policy.role == "reasoner"
    if frozen_captioner or (live and serve.api.two_stage_model):
        # One captioner engine behind the two-stage model (or writing the policy reasoner's
        # prompts), placed as a rollout actor is.
        demands.append(
            _demand(
                "captioner service", "rollout", 1, rollout.num_cpus, rollout.num_gpus, _unplanned(rollout.placement)
            )
        )
    if not training:
        return demands
    ranks = _demand("learner rank", "learner", learner.num_ranks, learner.num_cpus, learner.num_gpus, learner.placement)
    actors = _demand(
        "rollout actor", "rollout", rollout.num_actors, rollout.num_cpus, rollout.num_gpus, rollout.placement
    )
    evaluator = []
    evaluates = config.task.kind == "bundled" or bool(config.task.eval_file)  # a held-out split to evaluate on
    if (
        config.eval.every_steps and config.policy.role == "captioner" and evaluates
    ):  # evaluation while training: engines of its own
        evaluator = [
            _demand(
                "evaluation captioner", "rollout", 1, rollout.num_cpus, rollout.num_gpus, _unplanned(rollout.placement)
            ),
            _demand("evaluation reasoner", "serve", 1, serve.num_cpus, serve.num_gpus, _unplanned(serve.placement)),
        ]
    return [ranks, *demands, actors, *evaluator]


def _unplanned(placement: PlacementConfig) -> PlacementConfig:
    """A role's labels and resources without its per-node plan: one more engine placed as the role's are."""
    return PlacementConfig(placement.node_labels, placement.resources)


def plan_placement(demands: list[RoleDemand], nodes: list[ClusterNode]) -> dict[str, tuple[str, ...]]:
    """Each role's node ids, one per process: first fit over `nodes` in order, each process
    taking its resources from what earlier ones left. Raises PlacementError for the first role
    that does not fit."""
    left = {n.node_id: dict(n.resources) for n in nodes}
    plan: dict[str, tuple[str, ...]] = {}
    for demand in demands:
        here: Counter[str] = Counter()
        for _ in range(demand.count):
            node = next((n for n in nodes if not _why_not(demand, n, left[n.node_id], here[n.node_id])), None)
            if node is None:
                raise PlacementError(_unplaceable(demand, sum(here.values()), nodes, left, here))
            for name, amount in demand.each.items():
                left[node.node_id][name] -= amount
            here[node.node_id] += 1
        plan[demand.role] = tuple(node_id for node_id, n in here.items() for _ in range(n))
    return plan


def _why_not(demand: RoleDemand, node: ClusterNode, left: dict[str, float], placed_here: int) -> str:
    """Why `node` cannot take one more of `demand`'s processes ("" = it can)."""
    missing = {k: v for k, v in demand.labels.items() if node.labels.get(k) != v}
    if missing:
        return f"lacks the label {_labels_text(missing)}"
    if demand.per_node and placed_here >= demand.per_node:
        return f"already holds {placed_here} (per_node {demand.per_node})"
    short = [
        f"{name} {left.get(name, 0.0):g} left of {amount:g}"
        for name, amount in demand.each.items()
        if left.get(name, 0.0) + _EPS < amount
    ]
    return "has " + ", ".join(short) if short else ""


def _unplaceable(demand: RoleDemand, placed: int, nodes, left, here) -> str:
    reasons = "; ".join(f"{n.address}: {_why_not(demand, n, left[n.node_id], here[n.node_id])}" for n in nodes)
    return (
        f"{demand.section}: the cluster cannot place {demand.describe()}: room for {placed}. "
        f"Nodes after the roles placed before it: {reasons or 'none alive'}. Change {demand.section}.placement, "
        f"{demand.section}.num_cpus / num_gpus or the count, or start nodes that fit (docs/multi-node.md)."
    )


def cluster_nodes() -> list[ClusterNode]:
    """The cluster's live nodes, the head first, then by address."""
    import ray

    nodes = [
        ClusterNode(n["NodeID"], n["NodeManagerAddress"], dict(n["Resources"]), dict(n.get("Labels") or {}))
        for n in ray.nodes()
        if n["Alive"]
    ]
    return sorted(nodes, key=lambda n: ("node:__internal_head__" not in n.resources, n.address))


def check_placement(config: TrainConfig, training: bool = True) -> dict[str, tuple[str, ...]]:
    """Plan the roles on the connected cluster (raising PlacementError); returns the nodes of
    the roles to pin (those with a per-node limit)."""
    demands = role_demands(config, training)
    plan = plan_placement(demands, cluster_nodes())
    return {d.role: plan[d.role] for d in demands if d.per_node}


def wait_started(demand: RoleDemand, handles: list, timeout_s: float) -> None:
    """Wait until every one of `handles` (Ray actors of `demand`'s role) has been placed and
    constructed; PlacementError naming the role after `timeout_s`."""
    import ray

    ready = [handle.__ray_ready__.remote() for handle in handles]
    done, waiting = ray.wait(ready, num_returns=len(ready), timeout=timeout_s)
    ray.get(done)  # a constructor that failed raises here, as itself
    if waiting:
        raise PlacementError(
            f"{demand.section}: {len(waiting)} of {demand.describe()} not started within ray.start_timeout_s="
            f"{timeout_s:g} s: no node has had room for them (other work holds it), or they are still loading "
            "their model (raise ray.start_timeout_s)"
        )


def _node_address(_actor) -> str:
    import ray

    return ray.util.get_node_ip_address()


def node_addresses(handles: list) -> list[str]:
    """The node address each of `handles` (Ray actors) runs on."""
    import ray

    return ray.get([handle.__ray_call__.remote(_node_address) for handle in handles])


def serve_replicas(app_name: str, deployment: str) -> list:
    """Handles of the replicas of Serve deployment `deployment` in application `app_name` (found
    by the names Serve gives its replica actors)."""
    import ray

    prefix = f"SERVE_REPLICA::{app_name}#{deployment}#"
    return [
        ray.get_actor(actor["name"], namespace=actor["namespace"])
        for actor in ray.util.list_named_actors(all_namespaces=True)
        if actor["name"].startswith(prefix)
    ]


def record_placement(path: Path, learners: list, replicas: list, actors: list) -> dict[str, list[str]]:
    """Where each role's processes run (node addresses, by rank / replica / actor id), logged
    and written to `path` (the run's placement.json)."""
    where = {
        "learner rank": node_addresses(learners),
        "reasoner replica": sorted(node_addresses(replicas)),
        "rollout actor": node_addresses(actors),
    }
    path.write_text(json.dumps(where, indent=1) + "\n")
    log.info("placement: %s", "; ".join(f"{role}s on {', '.join(nodes)}" for role, nodes in where.items()))
    return where
