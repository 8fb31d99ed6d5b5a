"""Load a run's config: typed schema <- YAML file <- command-line dotlist overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from configs.schema import TrainConfig

CONFIG_DIR = Path(__file__).resolve().parent
DEFAULT_CONFIG = CONFIG_DIR / "default.yaml"


class ConfigError(ValueError):
    """A config file or override is invalid; the message names the key."""


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Merge `path` (default: configs/default.yaml) and `overrides` over the schema's defaults.

    Struct mode makes a misspelled key an error instead of a silently ignored value.
    """
    base = OmegaConf.structured(TrainConfig)
    layers = []
    yaml_path = Path(path) if path is not None else DEFAULT_CONFIG
    if not yaml_path.is_file():
        raise ConfigError(f"config file not found: {yaml_path}")
    layers.append(OmegaConf.load(yaml_path))
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
