"""Load a run's config: typed schema <- YAML file <- command-line dotlist overrides."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import is_dataclass
from pathlib import Path
from typing import TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from configs.bounds import check_bounds, dotted
from configs.schema import TrainConfig

Config = TypeVar("Config", bound=TrainConfig)


class ConfigError(ValueError):
    """A config file or override is invalid; the message names the key."""


def load_config(
    path: str | Path | None = None,
    overrides: Sequence[str] = (),
    schema: type[Config] = TrainConfig,
    saved_run: bool = False,
) -> Config:
    """Merge the YAML file at `path` (if any) and `overrides` over the defaults of `schema` (the
    training config, or a command's: configs/commands.py), which alone are the bundled default run.

    Struct mode makes a misspelled key an error instead of a silently ignored value. `saved_run`:
    the file is a run directory's config.yaml, which from older runs may hold sections only a
    command reads (bench, soak): those are dropped.
    """
    base = OmegaConf.structured(schema)
    layers = []
    if path is not None:
        if not Path(path).is_file():
            raise ConfigError(f"config file not found: {path}")
        layers.append(OmegaConf.load(path))
        if saved_run:
            _drop_command_keys(layers[0], schema)
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise ConfigError(f"overrides must look like key=value, got {bad[0]!r}")
    layers.append(OmegaConf.from_dotlist(list(overrides)))
    try:
        merged = OmegaConf.merge(base, *layers)
        _check_declared_bounds(merged, "")
        return OmegaConf.to_object(merged)
    except ConfigKeyError as err:
        key = _as_given(str(err.full_key), overrides)
        raise ConfigError(f"unknown config key {key!r}{_owner(key)}") from None
    except OmegaConfBaseException as err:
        raise ConfigError(f"invalid value for config key {err.full_key!r}: {str(err.msg).splitlines()[0]}") from None
    except ValueError as err:  # a declared bound, or a section's rule relating several keys
        raise ConfigError(str(err)) from None


def _check_declared_bounds(node: DictConfig, path: str) -> None:
    """Every declared bound of the merged tree, before it is built: the message names the full
    key, also of a section used in several places (`serve.placement.per_node`)."""
    kind = OmegaConf.get_type(node)
    if is_dataclass(kind):
        check_bounds(kind, node, path)
    for key in node:
        child = node[key]
        if isinstance(child, DictConfig):
            _check_declared_bounds(child, dotted(path, str(key)))


def _as_given(key: str, overrides: Sequence[str]) -> str:
    """The unknown key as the command line gave it: OmegaConf names only the unknown section of
    `bench.steps=3`."""
    given = [o.split("=", 1)[0] for o in overrides]
    return next((g for g in given if g.startswith(key + ".")), key)


def _owner(key: str) -> str:
    """For a key only some command reads: which, said after 'unknown config key'."""
    from configs.commands import command_keys

    for section, command in command_keys().items():
        if key == section or key.startswith(section + "."):
            return f" (only `launch.py {command}` reads it)"
    return ""


def _drop_command_keys(saved: DictConfig, schema: type) -> None:
    """Remove from a saved run's config the keys only a command reads, unless `schema` has them."""
    from configs.commands import command_keys

    known = OmegaConf.structured(schema)
    for key in command_keys():
        parent, _, name = key.rpartition(".")
        holder = OmegaConf.select(saved, parent) if parent else saved
        if isinstance(holder, DictConfig) and name in holder and OmegaConf.select(known, key) is None:
            del holder[name]


def to_yaml(config: object) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(config))
