"""Saving the learner's state: DeepSpeed checkpoints, and the captioner in Hugging Face form."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def save_checkpoint(engine, run_dir: Path, version: int) -> Path:
    """A DeepSpeed checkpoint (model, optimizer, ZeRO partitions) under run_dir/checkpoints.

    Collective: every rank calls it."""
    directory = run_dir / "checkpoints"
    engine.save_checkpoint(str(directory), tag=f"version_{version}", client_state={"policy_version": version})
    return directory / f"version_{version}"


def export_captioner(engine, processor, out_dir: Path, is_main: bool) -> None:
    """The trained captioner as a Hugging Face checkpoint that `from_pretrained` (and vLLM) load.

    Collective under ZeRO-3 (the full weights are gathered from every rank)."""
    if engine.zero_optimization_stage() == 3:
        state_dict = engine._zero3_consolidated_16bit_state_dict()
    else:
        state_dict = engine.module.state_dict()
    if is_main:
        engine.module.save_pretrained(out_dir, state_dict=state_dict)
        processor.save_pretrained(out_dir)
        log.info("exported the captioner to %s", out_dir)
