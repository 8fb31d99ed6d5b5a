"""The real stack for a few learner steps: Ray, Serve (2 replicas), 2 rollout actors, ZeroMQ,
DeepSpeed on 2 learner ranks under ZeRO-3 (the weights pushed and exported are gathered from
the shards). Checks the asynchronous contracts end to end, then resumes the run's checkpoint on
2 ranks."""

import openai
import pytest
import ray
import requests

from configs.load import load_config
from driver.inputs import resolve_inputs
from driver.roles import start_roles, stop_roles
from driver.run import make_run_dir
from driver.session import ray_session
from learner.metrics import read_metrics
from learner.rollout_log import read_rollouts
from tests.ports import unclaimed_port
from tests.tiny_task import TINY_TASK_OVERRIDES
from wire import metric_names as names

pytestmark = pytest.mark.integration

STEPS = 4
# Synchronous: every sample is on-policy, so every step checks the actors' logprobs under the
# weights the learner pushed them against its own (stale runs: tests/test_launch.py).
MAX_STALENESS = 0


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_cache):
    run_dir = tmp_path_factory.mktemp("run")
    http_port = unclaimed_port()
    config = load_config(
        overrides=[
            f"run_dir={run_dir}",
            f"task.cache_dir={tiny_cache}",
            *TINY_TASK_OVERRIDES,
            "rollout.num_actors=2",
            "rollout.group_size=4",
            "rollout.prompts_per_call=1",
            "rollout.sampling.max_new_tokens=12",
            "serve.num_replicas=2",
            f"serve.http_port={http_port}",
            "serve.live=true",
            f"learner.total_steps={STEPS}",
            "learner.groups_per_step=2",
            f"learner.max_staleness={MAX_STALENESS}",
            "learner.kl_coef=0.01",
            "learner.num_ranks=2",
            "learner.zero_stage=3",
            "learner.num_cpus=0.25",  # every role fits Ray's 2 CPUs here
        ]
    )
    make_run_dir(config)  # config.yaml, as a launched run writes it: the resume below reads it
    inputs = resolve_inputs(config)
    with ray_session(config):
        roles = None
        try:
            roles = start_roles(config, inputs, run_dir)
            ray.get([rank.train_ref() for rank in roles.learners], timeout=600)
            roles.http_port = http_port
            yield roles, run_dir
        finally:
            stop_roles(roles)


def test_metrics_cover_every_step_with_sane_values(trained):
    _, run_dir = trained
    metrics = read_metrics(run_dir / "metrics.jsonl")
    assert [m["step"] for m in metrics] == list(range(STEPS))
    assert [m["policy_version"] for m in metrics] == list(range(1, STEPS + 1))
    for m in metrics:
        assert 0.0 <= m[names.REWARD_MEAN] <= 1.0
        assert 0 <= m[names.STALENESS_MIN] <= m[names.STALENESS_MEAN] <= m[names.STALENESS_MAX] <= MAX_STALENESS
        # a sample can only come from a version the learner had already produced
        assert m[names.ROLLOUT_POLICY_VERSION_MAX] <= m["step"]
        assert m[names.THROUGHPUT_CAPTIONS_PER_S] > 0 and m[names.REASONER_LATENCY_S] > 0
        # What waits: null when nothing does, else never from a version the learner has not made.
        for key in (names.STALENESS_QUEUE_MIN, names.STALENESS_ACTORS_MIN):
            assert m[key] is None or m[key] >= 0, key
    # The actors' weights were reported by every step (each scored group carries them).
    assert all(m[names.STALENESS_ACTORS_MAX] is not None for m in metrics)
    assert (run_dir / "captioner" / "config.json").is_file()
    assert (run_dir / "checkpoints" / f"version_{STEPS}").is_dir()


def test_actors_generated_with_pushed_weights(trained):
    roles, run_dir = trained
    versions = {v for group in read_rollouts(run_dir) for v in group["policy_versions"]}
    assert len(versions) >= 2, versions
    stats = ray.get([actor.stats_ref() for actor in roles.actors])
    assert all(s.weight_updates >= 1 for s in stats)


def test_behaviour_logprobs_equal_the_learners_under_pushed_weights(trained):
    _, run_dir = trained
    # Over the tokens sampled by the very weights a step trains (pushed to the actors, swapped in):
    # fp32 on both sides, so KV-cached generation and one full forward differ only by rounding
    # (~1e-6 per token), far inside 1e-4; a stale or partial weight swap is off by >1e-2.
    metrics = read_metrics(run_dir / "metrics.jsonl")
    assert [m[names.ROLLOUT_POLICY_VERSION_MIN] for m in metrics] == list(range(STEPS))
    assert max(m[names.LOGPROB_ON_POLICY_ABS_DIFF] for m in metrics) < 1e-4


def test_every_counter_is_reported(trained):
    _, run_dir = trained
    last = read_metrics(run_dir / "metrics.jsonl")[-1]
    # Every kept group was accepted by the replay queue and admitted by the gate.
    assert last[names.REPLAY_ACCEPTED] >= STEPS * 2 and last[names.REPLAY_REJECTED] == 0
    assert last[names.GATE_ADMITTED] >= STEPS * 2
    assert last[names.ROLLOUT_GROUPS_GENERATED] >= STEPS * 2
    for key in (
        names.ROLLOUT_GROUPS_LOST,
        names.actors_total("bad_records"),
        names.ROLLOUT_SCORE_FAILURES,
        names.actors_total("weight_updates_rejected"),
    ):
        assert last[key] == 0, key
    assert last[names.actors_total("weight_updates")] >= 1


def test_the_pool_answers_over_http_and_rejects_bad_bodies(trained):
    roles, run_dir = trained
    url = f"http://127.0.0.1:{roles.http_port}/reasoner"
    body = {"question": "How many red circles are there?", "answer": "1", "captions": ["top left: a red circle.", ""]}
    reply = requests.post(url, json=body, timeout=60)
    assert reply.status_code == 200, reply.text
    result = reply.json()
    assert len(result["rewards"]) == 2 and all(0.0 <= r <= 1.0 for r in result["rewards"])
    assert len(result["answers"]) == 2
    bad = requests.post(url, json={"question": "q", "answer": "1", "captions": "not a list"}, timeout=60)
    assert bad.status_code == 400 and "captions" in bad.json()["error"]["message"]
    garbage = requests.post(url, data=b"\xff{not json", timeout=60)
    assert garbage.status_code == 400


def test_the_training_pool_serves_the_openai_api_with_serve_live(trained):
    roles, _ = trained
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{roles.http_port}/v1", api_key="unused", max_retries=0)
    assert {m.id for m in client.models.list().data} == {"reasoner", "caption-reason"}
    reply = client.chat.completions.create(
        model="reasoner", messages=[{"role": "user", "content": "How many circles?"}], max_tokens=8
    )
    assert reply.choices[0].finish_reason in ("stop", "length") and reply.usage.completion_tokens <= 8


@pytest.mark.slow  # a run of its own (~85 s); the default run resumes a 1-rank run (tests/test_launch.py)
def test_the_exported_captioner_loads_and_the_checkpoint_resumes_on_two_ranks(trained, run_launch):
    from transformers import AutoModelForImageTextToText

    _, run_dir = trained
    exported = AutoModelForImageTextToText.from_pretrained(str(run_dir / "captioner"))
    assert sum(p.numel() for p in exported.parameters()) > 0
    # One more step from the ZeRO-3 checkpoint of both ranks (a run of its own: this module's
    # pool keeps its HTTP port, so the resumed one serves no HTTP).
    args = [f"resume={run_dir}", f"learner.total_steps={STEPS + 1}", "serve.live=false", "eval.at_end=false"]
    code, out = run_launch(args).finish(timeout=600)
    assert code == 0, out[-3000:]
    assert f"resuming at step {STEPS} (policy version {STEPS})" in out
    metrics = read_metrics(run_dir / "metrics.jsonl")
    assert [m["step"] for m in metrics] == list(range(STEPS + 1))
    assert metrics[-1]["policy_version"] == STEPS + 1
