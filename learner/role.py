"""The learner rank: replay queue -> staleness filter -> GRPO update -> publish weights.

Runs as a Ray actor (one per rank; launch.py starts them). Rank 0 also publishes each new policy
version, writes metrics and saves the exported captioner.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForImageTextToText

from configs.schema import LearnerConfig
from learner.batching import group_batch
from learner.checkpoint import export_captioner, save_checkpoint
from learner.distributed import (
    RankInfo,
    build_engine,
    free_port,
    gathered_weights,
    init_process_group,
)
from learner.grpo import group_advantages
from learner.metrics import MetricsLog
from learner.replay import ReplayQueue
from learner.rollout_log import RolloutLog
from learner.share import share_groups
from learner.staleness import is_too_stale
from learner.step_metrics import (
    RunCounts,
    StepTimes,
    count_metrics,
    rollout_metrics,
    update_metrics,
)
from learner.update import grpo_update
from learner.weight_publisher import make_publisher
from vlm.processor import load_captioner_processor
from vlm.sampling import SamplingSpec
from wire.scored_group import ActorCounters, ScoredGroup
from wire.weights import WeightSource

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LearnerSetup:
    """What a rank needs beyond its config section."""

    captioner: str
    run_dir: str
    rank: int
    world_size: int
    # This rank's stream of the run's seed.
    seed: int
    # How the rollout actors sample: logprobs are computed under the same distribution.
    sampling: SamplingSpec
    # Rollout actors that take the published weights (a broadcast waits for each of them).
    weight_receivers: int


@dataclass(frozen=True)
class Collected:
    groups: list[ScoredGroup]
    dropped_stale: int
    dropped_uniform: int
    wait_s: float


class LearnerRank:
    def __init__(self, config: LearnerConfig, setup: LearnerSetup, gate=None):
        torch.set_num_threads(config.torch_threads)
        self.config, self.setup, self.gate = config, setup, gate
        self.rank, self.world_size = setup.rank, setup.world_size
        self.is_main = self.rank == 0

    def node_address(self) -> tuple[str, int]:
        """Where rank 0 hosts the process group's rendezvous (its own node)."""
        import ray

        host = ray.util.get_node_ip_address() if self.world_size > 1 else "127.0.0.1"
        return host, free_port(host)

    def setup_rank(self, rendezvous: tuple[str, int]) -> tuple[str | None, WeightSource | None]:
        """Join the process group, build the DeepSpeed engine; rank 0 also opens the replay
        queue and the weight publisher. Returns (replay endpoint, weight source) for the actors."""
        config = self.config
        init_process_group(RankInfo(self.rank, self.world_size, *rendezvous))
        torch.manual_seed(self.setup.seed)
        self.processor = load_captioner_processor(self.setup.captioner)
        self.pad_id = self.processor.tokenizer.pad_token_id
        model = self._load_policy()
        self.ref_model = copy.deepcopy(model).eval().requires_grad_(False) if config.kl_coef > 0 else None
        self.engine = build_engine(model, config, config.groups_per_step // self.world_size, self.world_size)
        if self.ref_model is not None:
            self.ref_model.to(self.engine.device)
        self.replay = self.publisher = self.metrics = self.rollouts = None
        if self.is_main:
            replay = config.replay
            self.replay = ReplayQueue(replay.host, replay.port, replay.capacity_groups, replay.capacity_bytes)
            self.publisher = make_publisher(config.weight_sync, self.setup.weight_receivers)
            self.metrics = MetricsLog(Path(self.setup.run_dir))
            if config.rollout_log_every:
                self.rollouts = RolloutLog(Path(self.setup.run_dir), self.processor.tokenizer)
        self.version = 0
        self.latest: dict = {}
        self.counts = RunCounts()
        self.actor_counters: dict[int, ActorCounters] = {}  # each actor's, from its latest group
        return (self.replay.endpoint, self.publisher.source()) if self.is_main else (None, None)

    def _load_policy(self) -> torch.nn.Module:
        dtype = torch.bfloat16 if self.config.dtype == "bf16" else torch.float32
        model = AutoModelForImageTextToText.from_pretrained(self.setup.captioner, dtype=dtype)
        if self.config.freeze_vision:
            model.model.visual.requires_grad_(False)
        return model.train()

    def latest_metrics(self) -> dict:
        return dict(self.latest)

    def train(self) -> dict:
        started = time.perf_counter()
        last_end = started
        for step in range(self.config.total_steps):
            collected = self._collect()
            metrics = self._step(collected)
            now = time.perf_counter()
            metrics["throughput/captions_per_s"] = sum(g.group_size for g in collected.groups) / (now - last_end)
            metrics["time/step_s"] = now - last_end
            metrics["time/elapsed_s"] = now - started
            last_end = now
            if self.is_main:
                self.metrics.write(metrics)
            if self.rollouts is not None and step % self.config.rollout_log_every == 0:
                self.rollouts.write(step, collected.groups)
            self.latest = metrics
            if self.config.checkpoint_every and (step + 1) % self.config.checkpoint_every == 0:
                save_checkpoint(self.engine, Path(self.setup.run_dir), self.version)
        self._finish()
        return dict(self.latest)

    def _collect(self) -> Collected:
        """Rank 0 waits for the step's groups, dropping those too stale or without signal, and
        hands every rank the same list; each rank trains on its slice of it."""
        started = time.perf_counter()
        kept: list[ScoredGroup] | None = None
        stale = uniform = 0
        if self.is_main:
            kept = []
            while len(kept) < self.config.groups_per_step:
                group = self._next_group()
                if is_too_stale(self.version, group.policy_version, self.config.max_staleness):
                    stale += 1
                elif self.config.drop_uniform_groups and np.ptp(group.rewards) == 0:
                    uniform += 1
                else:
                    kept.append(group)
                    continue
                if self.gate is not None:  # its admission goes back to the gate for a fresh group
                    self.gate.give_back.remote(1)
        groups = share_groups(kept, self.config.groups_per_step, self.engine.device)
        return Collected(groups, stale, uniform, time.perf_counter() - started)

    def _next_group(self) -> ScoredGroup:
        group = self.replay.get(timeout=self.config.batch_timeout_s)
        if group is None:
            raise TimeoutError(
                f"the learner waited {self.config.batch_timeout_s}s for a caption group at policy version "
                f"{self.version}: are the rollout actors and the reasoner pool alive?"
            )
        self.actor_counters[group.actor_id] = group.counters
        return group

    def _step(self, collected: Collected) -> dict:
        """One GRPO update on this rank's slice of the step's groups, then publish; the step's metrics."""
        groups = collected.groups
        rewards = torch.tensor(np.stack([g.rewards for g in groups]))  # [N, G]
        advantages = group_advantages(rewards, scale_by_std=self.config.scale_advantages)
        mine = range(self.rank, len(groups), self.world_size)  # this rank's slice of the step
        batches = [group_batch(groups[i], self.processor, advantages[i], self.pad_id).to(self.engine.device) for i in mine]
        update_started = time.perf_counter()
        stats = grpo_update(self.engine, self.ref_model, batches, self.version, self.config, self.setup.sampling)
        update_s = time.perf_counter() - update_started
        trained = self.version
        self.version += 1
        times = StepTimes(wait_s=collected.wait_s, update_s=update_s, publish_s=self._publish())
        self._count(collected)
        return {
            "step": trained,
            "policy_version": self.version,
            **rollout_metrics(groups, trained),
            **update_metrics(stats, sum(g.group_size for g in groups)),
            **count_metrics(self.counts, self.actor_counters, times, self.version),
        }

    def _count(self, collected: Collected) -> None:
        self.counts.dropped_stale += collected.dropped_stale
        self.counts.dropped_uniform += collected.dropped_uniform
        if self.replay is not None:
            replay = self.replay.counters
            self.counts.replay_accepted, self.counts.replay_rejected = replay.accepted, replay.rejected
            self.counts.queued_versions = self.replay.buffered_versions()
            self.counts.replay_buffered = len(self.counts.queued_versions)
        if self.is_main and self.gate is not None:
            import ray

            gate = ray.get(self.gate.stats.remote())
            self.counts.gate_admitted, self.counts.gate_given_back, self.counts.gate_refused = (
                gate.admitted, gate.given_back, gate.refused,
            )

    def _publish(self) -> float:
        if self.version % self.config.weight_sync.every_steps:
            return 0.0
        started = time.perf_counter()
        # Gathering is collective under ZeRO-3: every rank takes part, rank 0 sends.
        weights = gathered_weights(self.engine, trainable_only=True)
        if self.publisher is not None:
            self.publisher.publish(self.version, weights)
        return time.perf_counter() - started

    def _finish(self) -> None:
        run_dir = Path(self.setup.run_dir)
        save_checkpoint(self.engine, run_dir, self.version)
        export_captioner(self.engine, self.processor, run_dir / "captioner", self.is_main)

    def close(self) -> None:
        if self.replay is not None:
            self.replay.close()
        if self.publisher is not None:
            self.publisher.close()
        if self.metrics is not None:
            self.metrics.close()
        if self.rollouts is not None:
            self.rollouts.close()
