"""Saving the learner's state: DeepSpeed checkpoints, and the policy in Hugging Face form."""

from __future__ import annotations

import logging
import pickle
import random
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)


def save_checkpoint(engine, run_dir: Path, version: int, client_state: dict, rank: int) -> Path:
    """A DeepSpeed checkpoint (model, optimizer, ZeRO partitions) under run_dir/checkpoints, with
    `client_state` (the run's counters and data positions) and this rank's random state.

    Collective: every rank calls it. DeepSpeed points `latest` at it only once it is complete,
    so a crash while saving leaves the previous checkpoint the one a resume takes."""
    directory = run_dir / "checkpoints"
    tag = f"version_{version}"
    # First: `latest` must never name a checkpoint whose random state is missing.
    (directory / tag).mkdir(parents=True, exist_ok=True)
    torch.save(_random_state(), directory / tag / f"random_state_rank{rank}.pt")
    engine.save_checkpoint(str(directory), tag=tag, client_state={"policy_version": version, **client_state})
    return directory / tag


def load_latest_checkpoint(engine, run_dir: Path, rank: int) -> dict:
    """Load the newest complete checkpoint of `run_dir` into `engine` (weights, optimizer) and
    this rank's random state; returns its client state. Collective."""
    directory = run_dir / "checkpoints"
    if not (directory / "latest").exists():
        raise FileNotFoundError(f"cannot resume: {directory} holds no complete checkpoint (no 'latest' file)")
    path, client_state = engine.load_checkpoint(str(directory))
    if path is None:
        raise FileNotFoundError(
            f"cannot resume: DeepSpeed could not load the checkpoint named by {directory / 'latest'}"
        )
    state = load_random_state(Path(path).parent / f"random_state_rank{rank}.pt")
    if state is not None:
        _set_random_state(state)
    log.info("resumed from %s at policy version %d", path, client_state["policy_version"])
    return client_state


def _random_state() -> dict:
    """Every generator's state as tensors and plain numbers: loadable with weights_only=True,
    so a resume unpickles nothing (a run directory is still trusted input: docs/faults-and-resume.md)."""
    version, words, gauss = random.getstate()
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state = {
        "python": {"version": version, "words": torch.tensor(words, dtype=torch.int64), "gauss": gauss},
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def load_random_state(path: Path) -> dict | None:
    """The random state saved at `path`; None (logged) for a file holding more than tensors and
    numbers, as those saved before the state was kept so: the resume goes on with fresh streams."""
    try:
        return torch.load(path, weights_only=True)
    except pickle.UnpicklingError as err:
        log.warning(
            "%s holds objects beyond tensors and numbers (saved by an older version?), so it is not loaded: "
            "the resumed run draws fresh random streams (%s)",
            path,
            str(err).splitlines()[0],
        )
        return None


def _set_random_state(state: dict) -> None:
    python, numpy_state = state["python"], state["numpy"]
    random.setstate((python["version"], tuple(python["words"].tolist()), python["gauss"]))
    np.random.set_state(
        (
            numpy_state["kind"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["position"],
            numpy_state["has_gauss"],
            numpy_state["cached"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def export_policy(engine, processor, out_dir: Path, is_main: bool) -> None:
    """The trained policy (captioner or reasoner) as a Hugging Face checkpoint that
    `from_pretrained` (and vLLM) load, with its processor or tokenizer.

    Collective under ZeRO-3 (the full weights are gathered from every rank)."""
    if engine.zero_optimization_stage() == 3:
        state_dict = engine._zero3_consolidated_16bit_state_dict()
    else:
        state_dict = engine.module.state_dict()
    if is_main:
        engine.module.save_pretrained(out_dir, state_dict=state_dict)
        processor.save_pretrained(out_dir)
        log.info("exported the policy to %s", out_dir)
