"""Runs on a real multi-node Ray cluster made on this machine (tests/netns_cluster.py): three
nodes, each a network namespace with its own address, started with the recipe of docs/multi-node.md.

Roles are placed on nodes by config (labels and custom resources), so every channel crosses
nodes: the rollout actor (node 1) sends its groups to the replay queue and its captions to the
reasoner replica on the head (node 0); the learner's rank 0 (head) pushes weights to it, over
ZeroMQ, or by the gloo broadcast into a vLLM engine from a learner on node 2; the learner's two
ranks (head and node 2) form their DeepSpeed group across nodes; the live endpoint answers on the
head's address to a client on another node. A placement the cluster cannot satisfy fails at
once, naming the role. Nothing is left behind: no process, no namespace.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from transformers import AutoModelForImageTextToText

from configs.load import load_config
from driver.inputs import resolve_inputs
from learner.metrics import read_metrics
from tests.netns_cluster import NetnsCluster, NodeSpec, require_root_and_ip
from tests.test_launch import VLLM_RUN, assert_trained_on_vllm
from tests.tiny_task import TINY_TASK_OVERRIDES
from wire import metric_names as names

pytestmark = pytest.mark.integration

HEAD, ROLLOUT, LEARNER = 0, 1, 2
HTTP_PORT = 8000  # each node is a fresh network namespace: every port is free
NODES = [
    NodeSpec(num_cpus=2, labels={"role": "head"}, resources={"learner_slot": 1}),
    NodeSpec(num_cpus=1, labels={"role": "rollout"}),
    NodeSpec(num_cpus=1, labels={"role": "learner"}, resources={"learner_slot": 1}),
]
ROLES_ON_NODES = [
    "serve.placement.node_labels.role=head",
    "rollout.placement.node_labels.role=rollout",
]
# The client a person on another node runs: the OpenAI client against the head's address, as
# soon as the run's live service is up.
LIVE_CLIENT = textwrap.dedent("""
    import json, sys, time
    import openai, requests
    base = sys.argv[1]
    deadline = time.monotonic() + 600
    while True:
        try:
            if requests.get(base + "/health", timeout=5).status_code == 200:
                break
        except requests.RequestException:  # not up yet, or the replica still loading
            pass
        assert time.monotonic() < deadline, "the live service never came up"
        time.sleep(0.5)
    client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
    models = sorted(m.id for m in client.models.list().data)
    question = [{"role": "user", "content": "How many circles?"}]
    reply = client.chat.completions.create(model="reasoner", messages=question, max_tokens=8)
    print(json.dumps({"models": models, "finish_reason": reply.choices[0].finish_reason}))
""")


@pytest.fixture(scope="module")
def cluster():
    missing = require_root_and_ip()
    if missing:
        pytest.fail(f"the multi-node test cannot run here: {missing}")
    with NetnsCluster(NODES) as made:
        yield made
    assert made.leftovers() == []


def run_on_cluster(cluster, run_launch, run_dir, overrides: list[str], timeout: float):
    """`launch.py` on the head, joined to the cluster; (exit code, output)."""
    args = [f"ray.address={cluster.ray_address}", f"run_dir={run_dir}", *overrides]
    run = run_launch(args, env=cluster.env(), prefix=tuple(cluster.command(HEAD, [])))
    code, out = run.finish(timeout=timeout)
    assert run.leftovers() == []
    return code, out


def common(cache) -> list[str]:
    return [
        f"task.cache_dir={cache}",
        *TINY_TASK_OVERRIDES,
        "eval.at_end=false",
        "seed=3",
        "rollout.group_size=4",
        "rollout.prompts_per_call=1",
        "rollout.sampling.max_new_tokens=12",
        "learner.groups_per_step=2",
        "learner.max_staleness=0",
        # Sockets every node reaches: they bind all of the learner node's addresses, without
        # CURVE inside the test's own namespaces (tests/test_curve.py covers CURVE).
        "learner.replay.host=0.0.0.0",
        "learner.weight_sync.host=0.0.0.0",
        "learner.replay.allow_insecure=true",
        "learner.weight_sync.allow_insecure=true",
    ]


def test_roles_on_three_nodes_train_with_pushed_weights_and_serve_people(cluster, tiny_cache, tmp_path, run_launch):
    steps = 3
    client = cluster.command(
        ROLLOUT, [sys.executable, "-c", LIVE_CLIENT, f"http://{cluster.address(HEAD)}:{HTTP_PORT}"]
    )
    person = subprocess.Popen(client, env=cluster.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        code, out = run_on_cluster(
            cluster,
            run_launch,
            tmp_path,
            [
                *common(tiny_cache),
                *ROLES_ON_NODES,
                f"learner.total_steps={steps}",
                # Two ranks, one per node with a learner slot: the head and node 2.
                "learner.num_ranks=2",
                "learner.zero_stage=3",
                "learner.num_cpus=0.25",
                "learner.placement.resources.learner_slot=1",
                "learner.placement.per_node=1",
                "serve.live=true",
                f"serve.http_host={cluster.address(HEAD)}",
                f"serve.http_port={HTTP_PORT}",
                "serve.api.allow_insecure=true",
            ],
            timeout=900,
        )
        answered, errors = person.communicate(timeout=120)
    finally:
        person.kill()
    assert code == 0, out[-4000:]
    placement = json.loads((tmp_path / "placement.json").read_text())
    assert placement == {
        "learner rank": [cluster.address(HEAD), cluster.address(LEARNER)],
        "reasoner replica": [cluster.address(HEAD)],
        "rollout actor": [cluster.address(ROLLOUT)],
    }
    # η = 0: each step trains on groups the actor on node 1 generated with the weights the
    # learner had just pushed across nodes, and its logprobs under them match the learner's.
    metrics = read_metrics(tmp_path / "metrics.jsonl")
    assert [m[names.ROLLOUT_POLICY_VERSION_MIN] for m in metrics] == list(range(steps))
    assert max(m[names.LOGPROB_ON_POLICY_ABS_DIFF] for m in metrics) < 1e-4
    # The captioner exported at the end, gathered from the ZeRO-3 shards of both nodes, loads
    # as a Hugging Face model with every parameter of the one trained.
    exported = AutoModelForImageTextToText.from_pretrained(tmp_path / "captioner")
    bundle = resolve_inputs(load_config(overrides=[f"task.cache_dir={tiny_cache}", *TINY_TASK_OVERRIDES]))
    initial = AutoModelForImageTextToText.from_pretrained(bundle.captioner)
    assert [(n, p.shape) for n, p in exported.named_parameters()] == [
        (n, p.shape) for n, p in initial.named_parameters()
    ]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["groups_lost"] == 0 and summary["groups_duplicated"] == 0
    # The person on node 1 reached the live service on the head's address during the run.
    assert answered.strip(), errors[-2000:]
    reply = json.loads(answered.strip().splitlines()[-1])
    assert reply["models"] == ["caption-reason", "reasoner"] and reply["finish_reason"] in ("stop", "length")


def test_weights_broadcast_by_gloo_into_a_vllm_engine_on_another_node(cluster, tiny_cache, tmp_path, run_launch):
    steps = 4
    code, out = run_on_cluster(
        cluster,
        run_launch,
        tmp_path,
        [
            *common(tiny_cache),
            *ROLES_ON_NODES,
            f"learner.total_steps={steps}",
            "learner.placement.node_labels.role=learner",
            *VLLM_RUN,
            "learner.weight_sync.backend=gloo",
        ],
        timeout=900,
    )
    assert code == 0, out[-4000:]
    placement = json.loads((tmp_path / "placement.json").read_text())
    assert placement["learner rank"] == [cluster.address(LEARNER)]
    assert placement["rollout actor"] == [cluster.address(ROLLOUT)]
    # Trained on vLLM engines (captioner and reasoner), every step on the weights the learner on
    # node 2 had just broadcast into the engine on node 1, with logprobs matching the learner's.
    metrics = read_metrics(tmp_path / "metrics.jsonl")
    assert [m[names.ROLLOUT_POLICY_VERSION_MIN] for m in metrics] == list(range(steps))
    assert_trained_on_vllm(metrics, steps, max_staleness=0)


def test_a_placement_the_cluster_cannot_satisfy_fails_at_once_naming_the_role(
    cluster, tiny_cache, tmp_path, run_launch
):
    code, out = run_on_cluster(
        cluster,
        run_launch,
        tmp_path,
        [
            *common(tiny_cache),
            "rollout.num_actors=2",
            "rollout.placement.node_labels.role=rollout",
            "rollout.placement.per_node=1",
        ],
        timeout=300,
    )
    assert code == 2
    # One node carries the label and takes one actor; the others lack the label.
    assert "placement error: rollout: the cluster cannot place 2 rollout actor(s)" in out
    assert "at most 1 per node: room for 1" in out
    assert f"{cluster.address(HEAD)}: lacks the label role=rollout" in out
    assert f"{cluster.address(ROLLOUT)}: already holds 1 (per_node 1)" in out
