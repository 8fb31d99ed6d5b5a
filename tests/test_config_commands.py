"""Settings only one command reads (bench, soak, the eval command's benchmark keys) are that
command's: it reads them from the same overrides, training refuses them, and no run directory's
config.yaml holds them (configs/commands.py)."""

from __future__ import annotations

import argparse
import re

import pytest
from omegaconf import OmegaConf

from configs.commands import BenchCommandConfig, EvalCommandConfig, SoakCommandConfig, command_keys, training_config
from configs.load import ConfigError, load_config, to_yaml
from configs.schema import TrainConfig
from driver.job_config import expand_short_keys, job_config
from driver.run import make_run_dir


def test_each_command_reads_its_own_keys_as_they_were_spelled():
    assert load_config(None, ["bench.steps=3"], BenchCommandConfig).bench.steps == 3
    soak = load_config(
        None, expand_short_keys(["out=runs/soak", "soak.duration_s=60"], "soak", ("out",)), SoakCommandConfig
    )
    assert (soak.soak.out, soak.soak.duration_s) == ("runs/soak", 60.0)
    overrides = expand_short_keys(["data=b.tsv", "out=runs/eval", "eval.samples_per_prompt=2"], "eval", ("data", "out"))
    evaluation = load_config(None, overrides, EvalCommandConfig).eval
    assert (evaluation.data, evaluation.out, evaluation.samples_per_prompt) == ("b.tsv", "runs/eval", 2)


@pytest.mark.parametrize(
    "override, command",
    [
        ("bench.steps=3", "bench"),
        ("soak.duration_s=60", "soak"),
        ("eval.data=b.tsv", "eval"),
        ("eval.modes=[caption]", "eval"),
    ],
)
def test_training_refuses_a_key_only_a_command_reads_naming_the_command(override, command):
    key = override.split("=")[0]
    with pytest.raises(
        ConfigError, match=re.escape(f"unknown config key '{key}' (only `launch.py {command}` reads it)")
    ):
        load_config(None, [override])


def test_a_commands_bounds_name_its_keys():
    with pytest.raises(ConfigError, match=r"bench.steps must be >= 2, got 1"):
        load_config(None, ["bench.steps=1"], BenchCommandConfig)
    with pytest.raises(
        ConfigError, match=r"eval.modes must be a non-empty list of 'direct', 'caption', 'two_stage', got \['best'\]"
    ):
        load_config(None, ["eval.modes=[best]"], EvalCommandConfig)


@pytest.mark.parametrize("schema", [BenchCommandConfig, SoakCommandConfig, EvalCommandConfig])
def test_a_run_directory_saves_the_training_config_alone(schema, tmp_path):
    config = load_config(None, [f"run_dir={tmp_path / 'run'}", "learner.total_steps=3"], schema)
    saved = OmegaConf.load(make_run_dir(config) / "config.yaml")
    assert (
        "bench" not in saved and "soak" not in saved and set(saved.eval) == set(OmegaConf.structured(TrainConfig).eval)
    )
    assert load_config(tmp_path / "run" / "config.yaml") == training_config(config)
    assert saved.learner.total_steps == 3


def _older_run(tmp_path):
    """A run directory as runs before the split saved it: bench, soak and the benchmark keys inside."""
    run_dir = tmp_path / "old"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "latest").write_text("step3")
    saved = OmegaConf.create(to_yaml(TrainConfig(seed=7)))
    saved.bench = {"warmup_steps": 5, "steps": 30, "learner_cores": "0", "record": False}
    saved.soak = {"out": "", "duration_s": 300.0}
    saved.eval.data, saved.eval.modes, saved.eval.reasoners = "", ["direct", "caption"], {}
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(saved))
    return run_dir


def test_resume_drops_the_command_sections_an_older_run_saved(tmp_path):
    run_dir = _older_run(tmp_path)
    args = argparse.Namespace(config=None, overrides=[f"resume={run_dir}", "learner.total_steps=9"])
    config = job_config(args)
    assert type(config) is TrainConfig and (config.seed, config.learner.total_steps, config.resume) == (
        7,
        9,
        str(run_dir),
    )
    # `eval --run` of such a run keeps the keys the eval command reads and drops the others.
    evaluation = load_config(run_dir / "config.yaml", [], EvalCommandConfig, saved_run=True)
    assert evaluation.eval.modes == ["direct", "caption"] and evaluation.seed == 7
    # Only a saved run's file is forgiven: a --config file with a bench section is refused.
    with pytest.raises(ConfigError, match="unknown config key .* reads it"):
        load_config(run_dir / "config.yaml")


def test_the_command_keys_are_those_the_training_config_lacks():
    keys = command_keys()
    assert keys["bench"] == "bench" and keys["soak"] == "soak"
    assert {k for k, command in keys.items() if command == "eval"} == {
        "eval.data",
        "eval.out",
        "eval.modes",
        "eval.captioner",
        "eval.reasoners",
        "eval.caption_cache",
        "eval.max_new_tokens",
    }
