"""A command's training config: `--config FILE` and `key=value` overrides over the schema's
defaults (with the command's own section, for bench, soak and eval: configs/commands.py), a
resumed run's own config, and the checks made before anything starts."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from configs.load import Config, ConfigError, load_config
from configs.schema import TrainConfig
from driver.tracking import check_wandb

log = logging.getLogger("launch")


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags every command that runs the job's config takes."""
    parser.add_argument(
        "--config",
        default=None,
        help="YAML file merged over the schema's defaults (configs/schema.py; every key: docs/configuration.md)",
    )
    # A default, else argparse counts the list among the required arguments in its usage errors.
    parser.add_argument("overrides", nargs="*", default=[], help="dotlist overrides, e.g. rollout.num_actors=3")


def expand_short_keys(overrides: list[str], section: str, keys: tuple[str, ...]) -> list[str]:
    """`out=PATH` for `soak.out=PATH` and the like: a command's own keys written short."""
    return [f"{section}.{o}" if o.split("=")[0] in keys else o for o in overrides]


def job_config(args: argparse.Namespace, serves_http: bool = False, schema: type[Config] = TrainConfig) -> Config:
    """The config of the job a command starts (a resumed run's own, with `resume=RUN_DIR`), its
    CURVE keys and exposure checked: a ConfigError names what is wrong. `schema`: a command's
    config, for a command that reads a section of its own (configs/commands.py)."""
    config = load_config(args.config, args.overrides, schema)
    if config.resume:
        config = resumed_config(config, args, schema)
    check_curve_keys(config)
    check_exposure(config, serves_http=serves_http or config.serve.live)
    check_wandb(config)
    return config


def resumed_config(config: TrainConfig, args: argparse.Namespace, schema: type[Config] = TrainConfig) -> Config:
    """`resume=RUN_DIR`: the run's own config.yaml, with this command line's other keys over it
    (sections an older run saved that only a command reads, bench and soak, are dropped)."""
    if args.config:
        raise ConfigError("resume=RUN_DIR takes the run's own config.yaml: give key=value overrides, not --config")
    run_dir = Path(config.resume).resolve()
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        raise ConfigError(f"resume={config.resume}: no config.yaml there, so it is not a run directory")
    if not (run_dir / "checkpoints" / "latest").is_file():
        raise ConfigError(
            f"resume={config.resume}: no complete checkpoint under {run_dir / 'checkpoints'} "
            "(set learner.checkpoint_every to save them during a run)"
        )
    return load_config(saved, [*args.overrides, f"run_dir={run_dir}", f"resume={run_dir}"], schema, saved_run=True)


def check_curve_keys(config: TrainConfig) -> None:
    """Fail before anything starts if curve.keys_dir is set but holds no usable keys."""
    if config.curve.keys_dir:
        from transport.curve import load_keys

        try:
            for actor_id in range(config.rollout.num_actors):  # the learner's pair, and each actor's
                load_keys(config.curve.keys_dir, actor_id)
        except (OSError, ValueError) as err:
            raise ConfigError(str(err)) from None


def check_exposure(config: TrainConfig, serves_http: bool) -> None:
    """Refuse a socket beyond loopback that is neither protected nor allowed; warn once for an
    allowed one (configs/exposure.py)."""
    from configs.exposure import exposure

    found = exposure(config, os.environ, serves_http)
    if found.refused:
        raise ConfigError("; ".join(found.refused))
    for warning in found.warnings:
        log.warning("%s", warning)
