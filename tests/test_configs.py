"""The shipped configs load against the schema and say what they claim."""

import re

import pytest

from configs.load import ConfigError, load_config
from configs.schema import TrainConfig

PAPER_CONFIGS = ("configs/paper_3b.yaml", "configs/paper_7b.yaml")
USERS_FILES = ("task.train_file=train.parquet", "task.eval_file=eval.jsonl")


@pytest.mark.parametrize("path", PAPER_CONFIGS)
def test_paper_configs_carry_the_papers_settings_on_vllm(path):
    config = load_config(path, overrides=[*USERS_FILES, "models.captioner=c", "models.reasoner=r"])
    # RACRO / CapRL: group size 4, lr 1e-6, KL 0.001.
    assert (config.rollout.group_size, config.learner.lr, config.learner.kl_coef) == (4, 1e-6, 0.001)
    assert config.rollout.engine == config.serve.engine == "vllm"
    for role in (config.rollout, config.serve):
        assert role.num_gpus >= 1 and role.vllm.dtype == "bfloat16" and role.vllm.kv_cache_memory_bytes == 0
    assert config.learner.num_gpus >= 1 and config.learner.dtype == "bf16"
    assert config.learner.weight_sync.backend == "nccl"


@pytest.mark.parametrize(
    "overrides, reason",
    [
        (["learner.weight_sync.backend=gloo"], "needs rollout.engine=vllm"),
        (
            ["learner.weight_sync.backend=nccl", "rollout.engine=vllm"],
            "needs learner.num_gpus and rollout.num_gpus > 0",
        ),
        (["learner.weight_sync.backend=mpi"], "must be one of"),
    ],
)
def test_a_weight_sync_the_engines_cannot_take_is_refused(overrides, reason):
    with pytest.raises(Exception, match=reason):
        load_config(overrides=overrides)


def test_paper_configs_need_the_users_data():
    with pytest.raises(Exception, match="task.train_file"):
        load_config(PAPER_CONFIGS[0])


@pytest.mark.parametrize("role", ["captioner", "reasoner"])
def test_the_users_data_never_falls_back_to_the_bundled_models(role):
    other = "reasoner" if role == "captioner" else "captioner"
    with pytest.raises(ConfigError, match=f"models.{role} is empty"):
        load_config(PAPER_CONFIGS[0], overrides=[*USERS_FILES, f"models.{other}=/ckpt/{other}"])


def test_the_users_data_needs_an_eval_file_to_evaluate():
    overrides = ["task.kind=files", "task.train_file=t.jsonl", "models.captioner=c", "models.reasoner=r"]
    with pytest.raises(ConfigError, match="task.eval_file is required"):
        load_config(overrides=overrides)
    assert load_config(overrides=[*overrides, "eval.at_end=false"]).task.eval_file == ""


def test_the_schema_alone_is_the_bundled_default_run():
    # No YAML is read unless asked for: what configs/schema.py says is what a run does.
    config = load_config()
    assert config == TrainConfig()
    assert (config.task.kind, config.models.captioner, config.models.reasoner) == ("bundled", "", "")


def test_serve_autoscaling_replaces_the_fixed_replica_count():
    from serve.pool import reasoner_app

    fixed = reasoner_app(load_config(overrides=["serve.num_replicas=2"]).serve, "ckpt", 0)._bound_deployment
    assert fixed.num_replicas == 2 and fixed._deployment_config.autoscaling_config is None
    scaled = load_config(
        overrides=[
            "serve.autoscaling.min_replicas=1",
            "serve.autoscaling.max_replicas=3",
            "serve.autoscaling.target_ongoing_requests=4",
        ]
    )
    autoscaling = reasoner_app(scaled.serve, "ckpt", 0)._bound_deployment._deployment_config.autoscaling_config
    assert (autoscaling.min_replicas, autoscaling.max_replicas, autoscaling.target_ongoing_requests) == (1, 3, 4.0)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        (["serve.engine=openai"], "serve.engine=openai needs serve.openai.base_url and serve.openai.model"),
        (
            ["serve.autoscaling.max_replicas=2", "serve.autoscaling.min_replicas=3"],
            "need 1 <= min_replicas <= max_replicas",
        ),
        (
            ["serve.api.reasoners.reasoner.base_url=http://h/v1", "serve.api.reasoners.reasoner.model=m"],
            "the id is taken",
        ),
        (["serve.api.reasoners.r1.model=m"], "serve.api.reasoners.r1 needs base_url and model"),
        (["serve.http_port=0"], "serve.http_port must be in [1, 65535]"),
    ],
)
def test_bad_live_service_settings_are_refused_naming_the_key(overrides, reason):
    with pytest.raises(ConfigError, match=re.escape(reason)):
        load_config(overrides=overrides)


@pytest.mark.parametrize(
    "overrides, reason",
    [
        (["policy.role=critic"], "policy.role must be one of"),
        (["policy.role=reasoner", "reward.kind=mcq"], "reward.kind=mcq rewards captions"),
        (["policy.role=reasoner", "reward.kind=judge", "reward.judge.target=caption"], "reward.judge.target=answer"),
        (["policy.stages=[captioner,critic]"], "policy.stages must be"),
        (["policy.stages=[]"], "policy.stages must be"),
        (["task.bundled_reasoner=best"], "task.bundled_reasoner must be"),
    ],
)
def test_a_policy_role_its_reward_cannot_train_is_refused(overrides, reason):
    with pytest.raises(Exception, match=reason):
        load_config(overrides=overrides)


def test_the_reasoner_trains_on_graded_or_judged_answers():
    config = load_config(overrides=["policy.role=reasoner", "reward.weights.verifiable=1", "reward.weights.judge=1"])
    assert config.policy.role == "reasoner" and set(config.reward.mix()) == {"verifiable", "judge"}
