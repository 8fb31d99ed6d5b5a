"""The driver's placement plan (supervisor/placement.py), worked by hand on made-up nodes; the
real cluster's side is tests/test_multinode.py."""

import pytest

from configs.load import load_config
from configs.placement import ray_options
from configs.schema import PlacementConfig
from supervisor.placement import ClusterNode, PlacementError, RoleDemand, plan_placement, role_demands

HEAD = ClusterNode("h", "10.0.0.1", {"CPU": 2.0, "node:__internal_head__": 1.0}, {"role": "head"})
ROLLOUT = ClusterNode("r", "10.0.0.2", {"CPU": 1.0, "GPU": 2.0}, {"role": "rollout"})
LEARNER = ClusterNode("l", "10.0.0.3", {"CPU": 4.0, "learner_slot": 2.0}, {"role": "learner"})
NODES = [HEAD, ROLLOUT, LEARNER]


def demand(role="rollout actor", count=1, each=None, labels=None, per_node=0) -> RoleDemand:
    return RoleDemand(role, "rollout", count, each or {"CPU": 0.25}, labels or {}, per_node)


def test_first_fit_fills_nodes_in_order_and_takes_resources_as_it_goes():
    # 3 processes of 1 CPU: the head's 2 CPUs take two, the rollout node's 1 CPU the third.
    assert plan_placement([demand(count=3, each={"CPU": 1.0})], NODES) == {"rollout actor": ("h", "h", "r")}
    # A role placed first leaves less for the next: 1.5 of the head's 2 CPUs go to the first.
    plan = plan_placement([demand("learner rank", 1, {"CPU": 1.5}), demand(count=2, each={"CPU": 0.5})], NODES)
    assert plan == {"learner rank": ("h",), "rollout actor": ("h", "r")}


def test_labels_resources_and_per_node_limit_where_processes_go():
    # Only the learner node has learner slots (2), and at most 1 rank per node: one fits, not two.
    assert plan_placement([demand("learner rank", 1, {"CPU": 1, "learner_slot": 1})], NODES) == {"learner rank": ("l",)}
    with pytest.raises(PlacementError, match="room for 1"):
        plan_placement([demand("learner rank", 2, {"CPU": 1, "learner_slot": 1}, per_node=1)], NODES)
    # GPUs: 2 on the rollout node, so 2 actors of 1 GPU fit there and a third nowhere.
    assert plan_placement([demand(count=2, each={"GPU": 1})], NODES) == {"rollout actor": ("r", "r")}
    with pytest.raises(PlacementError, match=r"10\.0\.0\.2: has GPU 0 left of 1"):
        plan_placement([demand(count=3, each={"GPU": 1})], NODES)


def test_an_unsatisfiable_placement_names_the_role_what_it_asked_and_each_nodes_reason():
    with pytest.raises(PlacementError) as raised:
        plan_placement([demand(count=2, each={"CPU": 0.5}, labels={"role": "rollout"}, per_node=1)], NODES)
    message = str(raised.value)
    assert message.startswith(
        "rollout: the cluster cannot place 2 rollout actor(s), each taking CPU 0.5 "
        "on nodes labelled role=rollout, at most 1 per node: room for 1."
    )
    assert "10.0.0.1: lacks the label role=rollout" in message
    assert "10.0.0.2: already holds 1 (per_node 1)" in message
    assert "10.0.0.3: lacks the label role=rollout" in message


def test_role_demands_follow_the_config():
    config = load_config(
        overrides=[
            "learner.num_ranks=2",
            "learner.num_cpus=0.25",
            "learner.placement.resources.learner_slot=1",
            "learner.placement.per_node=1",
            "serve.num_replicas=3",
            "serve.num_gpus=1",
            "rollout.num_actors=2",
            "rollout.placement.node_labels.role=rollout",
        ]
    )
    demands = {d.role: d for d in role_demands(config)}
    # In start order; evaluation while training (on by default) has engines of its own.
    assert list(demands) == [
        "learner rank",
        "reasoner replica",
        "rollout actor",
        "evaluation captioner",
        "evaluation reasoner",
    ]
    assert (
        demands["evaluation captioner"].labels == {"role": "rollout"} and demands["evaluation captioner"].per_node == 0
    )
    assert demands["evaluation reasoner"].each == {"CPU": 0.25, "GPU": 1.0}
    off = load_config(overrides=["eval.every_steps=0"])
    assert [d.role for d in role_demands(off)] == ["learner rank", "reasoner replica", "rollout actor"]
    assert demands["learner rank"] == RoleDemand(
        "learner rank", "learner", 2, {"CPU": 0.25, "learner_slot": 1.0}, {}, 1
    )
    assert demands["reasoner replica"].count == 3 and demands["reasoner replica"].each == {"CPU": 0.25, "GPU": 1.0}
    assert demands["rollout actor"].labels == {"role": "rollout"}
    # serve.live adds the two-stage model's captioner, placed as the actors are.
    live = {
        d.role: d
        for d in role_demands(load_config(overrides=["serve.live=true", "rollout.placement.node_labels.role=r"]))
    }
    assert live["captioner service"].labels == {"role": "r"} and live["captioner service"].per_node == 0
    # `launch.py serve`: the pool and its captioner only.
    assert [d.role for d in role_demands(config, training=False)] == ["reasoner replica", "captioner service"]


def test_ray_options_carry_labels_resources_and_a_planned_node():
    placement = PlacementConfig(node_labels={"role": "rollout"}, resources={"slot": 1.0})
    node = "ab" * 28  # a node id: 28 bytes in hex
    options = ray_options(0.5, 1.0, placement, node_id=node)
    assert options["num_cpus"] == 0.5 and options["num_gpus"] == 1.0
    assert options["label_selector"] == {"role": "rollout"} and options["resources"] == {"slot": 1.0}
    assert options["scheduling_strategy"].node_id == node
    assert ray_options(0.5, 0.0, PlacementConfig()) == {"num_cpus": 0.5, "num_gpus": 0.0}


def test_placement_config_rejects_negative_values():
    with pytest.raises(ValueError, match="per_node must be >= 0"):
        PlacementConfig(per_node=-1)
