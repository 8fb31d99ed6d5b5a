"""Load a run's config: typed schema <- YAML file <- command-line dotlist overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from configs.schema import TrainConfig


class ConfigError(ValueError):
    """A config file or override is invalid; the message names the key."""


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Merge the YAML file at `path` (if any) and `overrides` over the schema's defaults, which
    alone are the bundled default run.

    Struct mode makes a misspelled key an error instead of a silently ignored value.
    """
    base = OmegaConf.structured(TrainConfig)
    layers = []
    if path is not None:
        if not Path(path).is_file():
            raise ConfigError(f"config file not found: {path}")
        layers.append(OmegaConf.load(path))
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise ConfigError(f"overrides must look like key=value, got {bad[0]!r}")
    layers.append(OmegaConf.from_dotlist(list(overrides)))
    try:
        merged = OmegaConf.merge(base, *layers)
        return OmegaConf.to_object(merged)
    except ConfigKeyError as err:
        raise ConfigError(f"unknown config key {err.full_key!r}") from None
    except OmegaConfBaseException as err:
        raise ConfigError(f"invalid value for config key {err.full_key!r}: {str(err.msg).splitlines()[0]}") from None
    except ValueError as err:  # a schema __post_init__ range check
        raise ConfigError(str(err)) from None


def to_yaml(config: object) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(config))
