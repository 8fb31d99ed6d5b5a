"""The learner rank: replay queue -> staleness filter -> GRPO update -> publish weights.

Runs as a Ray actor (one per rank; driver/roles.py starts them). Rank 0 also publishes each new policy
version, writes metrics and saves the exported policy: the captioner, or the reasoner when it
is the one learning (policy.role=reasoner).
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import torch

from configs.schema import LearnerConfig
from coordination.gate import GateStats
from coordination.handles import EvalSchedule, GateHandle
from coordination.reports import GroupAccount, MetricsRows, StepMetrics
from coordination.resume import LearnerReady, RejoinPoint, ResumePoint
from learner.accounting import ConsumedLog, Ledger, StepGroups, keep_steps_before
from learner.admission import GroupAdmission, GroupBounds, ImageCheck
from learner.batching import group_batch, packed
from learner.checkpoint import export_policy, load_latest_checkpoint, save_checkpoint
from learner.distributed import (
    RankInfo,
    build_engine,
    free_port,
    gathered_weights,
    init_process_group,
    micro_batches_per_step,
)
from learner.eval_requests import EvalRequests
from learner.grpo import group_advantages
from learner.metrics import MetricsLog, rows_after
from learner.policy_model import load_policy_model, load_policy_processor
from learner.publishers import make_publisher
from learner.replay import ReplayCounters, ReplayQueue
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
from transport.curve import load_keys
from vlm.caption_prompt import image_pad_tokens
from vlm.sampling import SamplingSpec
from wire import metric_names as names
from wire.eval_points import EvalPoint
from wire.scored_group import ActorCounters, ScoredGroup

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LearnerSetup:
    """What a rank needs beyond its config section."""

    # The policy's checkpoint: the captioner, or the reasoner when `role` is "reasoner".
    policy: str
    run_dir: str
    rank: int
    world_size: int
    # This rank's stream of the run's seed.
    seed: int
    # How the rollout actors sample: logprobs are computed under the same distribution.
    sampling: SamplingSpec
    # Rollout actors that take the published weights (a broadcast waits for each of them).
    weight_receivers: int
    # Continue from the run directory's latest checkpoint.
    resume: bool = False
    # ZeroMQ CURVE keys for the replay and weight sockets (transport/curve.py); "" = none.
    curve_keys_dir: str = ""
    # policy.role: "captioner" (a vision-language model) or "reasoner" (a text-only one).
    role: str = "captioner"
    # What the run's groups must be (learner/admission.py): the replay queue refuses the rest.
    bounds: GroupBounds | None = None  # None: this learner's own config and no prompt-id check
    # Evaluation while training (eval.every_steps): rank 0 hands the evaluator published weights.
    evaluation: EvalSchedule | None = None


@dataclass(frozen=True)
class Collected:
    groups: list[ScoredGroup]
    dropped: list[tuple[ScoredGroup, str]]  # with the reason (learner/accounting.py)
    wait_s: float


class LearnerRank:
    def __init__(self, config: LearnerConfig, setup: LearnerSetup, gate: GateHandle | None = None):
        torch.set_num_threads(config.torch_threads)
        self.config, self.setup, self.gate = config, setup, gate
        self.rank, self.world_size = setup.rank, setup.world_size
        self.is_main = self.rank == 0
        self._resumed_replay_counters: dict = {}
        self._stop_early = False

    def node_address(self) -> tuple[str, int]:
        """Where rank 0 hosts the process group's rendezvous (its own node)."""
        import ray

        host = ray.util.get_node_ip_address() if self.world_size > 1 else "127.0.0.1"
        return host, free_port(host)

    def setup_rank(self, rendezvous: tuple[str, int]) -> LearnerReady | None:
        """Join the process group, build the DeepSpeed engine (from the latest checkpoint when
        resuming); rank 0 also opens the replay queue and the weight publisher, and returns what
        the roles started next need (the other ranks: None)."""
        config = self.config
        init_process_group(RankInfo(self.rank, self.world_size, *rendezvous))
        torch.manual_seed(self.setup.seed)
        self.processor, self.tokenizer = load_policy_processor(self.setup.role, self.setup.policy)
        self.pad_id = self.tokenizer.pad_token_id
        model = load_policy_model(self.setup.role, self.setup.policy, self.config.dtype, self.config.freeze_vision)
        self.vocab_size = model.get_input_embeddings().num_embeddings
        self.ref_model = copy.deepcopy(model).eval().requires_grad_(False) if config.kl_coef > 0 else None
        self.engine = build_engine(model, config, micro_batches_per_step(config, self.world_size), self.world_size)
        if self.ref_model is not None:
            self.ref_model.to(self.engine.device)
        self.version = self.steps_done = 0
        self.elapsed_before = 0.0  # seconds trained before a resume
        self.latest: dict = {}
        self.counts = RunCounts()
        self.ledger = Ledger()
        self.actor_counters: dict[int, ActorCounters] = {}  # each actor's, from its latest group
        resumed = self._resume() if self.setup.resume else None
        self.replay = self.publisher = self.metrics = self.rollouts = self.consumed = self.evals = None
        if self.is_main:
            self._open_outputs(resumed)
        if not self.is_main:
            return None
        return LearnerReady(self.replay.endpoint, self.publisher.source(), resumed)

    def _open_outputs(self, resumed: ResumePoint | None) -> None:
        config, run_dir = self.config, Path(self.setup.run_dir)
        if resumed is not None:  # the steps after the checkpoint are done again
            for name in ("metrics.jsonl", "consumed.jsonl", "rollouts.jsonl"):
                keep_steps_before(run_dir / name, self.steps_done)
        replay = config.replay
        keys = load_keys(self.setup.curve_keys_dir) if self.setup.curve_keys_dir else None
        self.replay = ReplayQueue(
            replay.host,
            replay.port,
            replay.capacity_groups,
            replay.capacity_bytes,
            self._admission(),
            replay.max_frame_bytes,
            keys,
        )
        self.replay.resume_from(self.ledger.consumed)
        self.replay.counters = ReplayCounters(**self._resumed_replay_counters)
        self.publisher = make_publisher(config.weight_sync, self.setup.weight_receivers, keys)
        self.metrics = MetricsLog(run_dir)
        self.consumed = ConsumedLog(run_dir)
        if self.setup.evaluation is not None:  # resumed: its initial point was evaluated before
            first_due = self.version + self.setup.evaluation.every_steps if resumed is not None else 0
            self.evals = EvalRequests(self.setup.evaluation, self.metrics, first_due)
        if config.rollout_log_every:
            self.rollouts = RolloutLog(run_dir, self.tokenizer, self.setup.role)

    def _admission(self) -> GroupAdmission:
        """The replay queue's checks: the run's bounds, this policy's vocabulary and image
        processing, and the version the learner has published (read as each group arrives)."""
        image = None
        if self.setup.role == "captioner":
            image = ImageCheck(
                self.tokenizer.convert_tokens_to_ids("<|image_pad|>"), partial(image_pad_tokens, self.processor)
            )
        return GroupAdmission(self.setup.bounds, self.vocab_size, lambda: self.version, image)

    def _resume(self) -> ResumePoint | None:
        """Every rank takes its weights, optimizer shard, random state and step; rank 0 also the
        run's account, and returns where the roles started next continue."""
        state = load_latest_checkpoint(self.engine, Path(self.setup.run_dir), self.rank)
        self.version, self.steps_done = state["policy_version"], state["steps_done"]
        self.elapsed_before = state["elapsed_s"]
        if not self.is_main:
            return None
        self.ledger = Ledger.from_state(state["ledger"])
        self.actor_counters = {int(a): ActorCounters(*c) for a, c in state["actor_counters"].items()}
        # What arrived and was buffered when the run stopped was lost with it (its prompts
        # are generated again): the queue's counts restart from what the steps took.
        self._resumed_replay_counters = {**state["replay"], "accepted": self.ledger.taken}
        return ResumePoint(
            policy_version=self.version,
            steps_done=self.steps_done,
            taken=self.ledger.consumed,
            # Nothing is in flight after a resume: the groups admitted are exactly those trained on
            # (the n-th admitted is used by step n // groups_per_step: coordination/gate.py).
            gate=replace(GateStats(**state["gate"]), admitted=self.ledger.trained),
            actor_counters=self.actor_counters,
        )

    def latest_metrics(self) -> StepMetrics:
        """The last step's row, and the newest held-out accuracy measured while training."""
        return StepMetrics({**self.latest, **(self.evals.latest_accuracy() if self.evals is not None else {})})

    def metrics_rows(self, offset: int) -> MetricsRows:
        """Rank 0's metrics rows written after byte `offset` of metrics.jsonl (none on the others)."""
        if self.metrics is None:  # rank 0's log creates its file when it starts
            return MetricsRows([], offset)
        return MetricsRows(*rows_after(self.metrics.path, offset))

    def stop_after_step(self) -> None:
        """End training after the step in progress, as if it were the last (a soak's time is up).
        Told to rank 0, which tells the others: the ranks step together."""
        self._stop_early = True

    def _stopping_early(self) -> bool:
        if self.world_size == 1:
            return self._stop_early
        decision = torch.tensor([int(self._stop_early)], device=self.engine.device)  # a tensor: nothing pickled
        torch.distributed.broadcast(decision, src=0)
        return bool(decision.item())

    def train(self) -> StepMetrics:
        started = self._started = time.perf_counter() - self.elapsed_before
        last_end = time.perf_counter()
        if self.steps_done:  # resumed: the actors wait for the checkpoint's weights
            self._publish(force=True)
        elif self.evals is not None:
            self.evals.ask(EvalPoint(step=0, policy_version=0, elapsed_s=0.0), None)
        for step in range(self.steps_done, self.config.total_steps):
            if self._stopping_early():
                break
            collected = self._collect()
            metrics = self._step(collected)
            now = time.perf_counter()
            metrics[names.THROUGHPUT_CAPTIONS_PER_S] = sum(g.group_size for g in collected.groups) / (now - last_end)
            metrics[names.TIME_STEP_S] = now - last_end
            metrics[names.TIME_ELAPSED_S] = now - started
            last_end = now
            self.steps_done = step + 1
            if self.is_main:
                self.metrics.write(metrics)
                self.consumed.write(StepGroups(step, collected.groups, collected.dropped))
                if self.evals is not None:
                    self.evals.take()
            if self.rollouts is not None and step % self.config.rollout_log_every == 0:
                self.rollouts.write(step, collected.groups)
            self.latest = metrics
            if self.config.checkpoint_every and self.steps_done % self.config.checkpoint_every == 0:
                self._save(now - started)
        self._evaluate_final(time.perf_counter() - started)
        self._finish(time.perf_counter() - started)
        return StepMetrics(dict(self.latest))

    def _collect(self) -> Collected:
        """Rank 0 waits for the step's groups, dropping those too stale or without signal, and
        hands every rank the same list; each rank trains on its slice of it."""
        started = time.perf_counter()
        kept: list[ScoredGroup] | None = None
        dropped: list[tuple[ScoredGroup, str]] = []
        if self.is_main:
            kept = []
            while len(kept) < self.config.groups_per_step:
                group = self._next_group()
                reason = self._drop_reason(group)
                self.ledger.take(group, reason)
                if reason is None:
                    kept.append(group)
                    continue
                dropped.append((group, reason))
                if self.gate is not None:  # its admission goes back to the gate for a fresh group
                    self.gate.give_back_ref(1)
        groups = share_groups(kept, self.config.groups_per_step, self.engine.device)
        return Collected(groups, dropped, time.perf_counter() - started)

    def _drop_reason(self, group: ScoredGroup) -> str | None:
        if is_too_stale(self.version, group.policy_version, self.config.max_staleness):
            return "stale"
        if self.config.drop_uniform_groups and np.ptp(group.rewards) == 0:
            return "uniform"
        return None

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
        batches = [group_batch(groups[i], self.processor, advantages[i], self.pad_id) for i in mine]
        per_pass = self.config.groups_per_micro_batch
        batches = [
            packed(batches[i : i + per_pass], self.pad_id).to(self.engine.device)
            for i in range(0, len(batches), per_pass)
        ]
        update_started = time.perf_counter()
        stats = grpo_update(self.engine, self.ref_model, batches, self.version, self.config, self.setup.sampling)
        update_s = time.perf_counter() - update_started
        trained = self.version
        self.version += 1
        times = StepTimes(wait_s=collected.wait_s, update_s=update_s, publish_s=self._publish())
        self._count(collected)
        return {
            names.STEP: trained,
            names.POLICY_VERSION: self.version,
            **rollout_metrics(groups, trained),
            **update_metrics(stats, sum(g.group_size for g in groups), self.config.correction.kind),
            **count_metrics(self.counts, self.actor_counters, times, self.version),
        }

    def _count(self, collected: Collected) -> None:
        self.counts.dropped_stale, self.counts.dropped_uniform = (
            self.ledger.dropped["stale"],
            self.ledger.dropped["uniform"],
        )
        if self.replay is not None:
            replay = self.replay.counters
            self.counts.replay_accepted, self.counts.replay_rejected = replay.accepted, replay.rejected
            self.counts.replay_duplicates = replay.duplicates
            self.counts.queued_versions = self.replay.buffered_versions()
            self.counts.replay_buffered = len(self.counts.queued_versions)
        if self.is_main and self.gate is not None:
            self.counts.gate = self.gate.stats()

    def _publish(self, force: bool = False) -> float:
        if self.version % self.config.weight_sync.every_steps and not force:
            return 0.0
        started = time.perf_counter()
        # Gathering is collective under ZeRO-3: every rank takes part, rank 0 sends.
        weights = gathered_weights(self.engine, trainable_only=True)
        if self.publisher is not None:
            self.publisher.publish(self.version, weights)
        if self.evals is not None and self.evals.due(self.version):
            self.evals.ask(EvalPoint(self.version, self.version, time.perf_counter() - self._started), weights)
        return time.perf_counter() - started

    def _evaluate_final(self, elapsed_s: float) -> None:
        """The final weights' point, after the pending one (every rank gathers: a collective under ZeRO-3)."""
        if self.setup.evaluation is None:
            return
        weights = gathered_weights(self.engine, trainable_only=True)
        if self.evals is not None:
            self.evals.finish(EvalPoint(self.version, self.version, elapsed_s), weights)

    def _save(self, elapsed_s: float) -> None:
        """A checkpoint a run can resume from: every rank's engine, random state and step (each
        rank reads its own file back under ZeRO), and rank 0's account of the run (each actor's
        taken prompts, the counters)."""
        state = {"steps_done": self.steps_done, "elapsed_s": elapsed_s}
        if self.is_main:
            gate = self.gate.stats() if self.gate is not None else GateStats(0, 0, 0)
            state.update(
                ledger=self.ledger.to_state(),
                replay=self.replay.counters_snapshot(),
                gate=vars(gate).copy(),
                actor_counters={str(a): list(vars(c).values()) for a, c in self.actor_counters.items()},
            )
        save_checkpoint(self.engine, Path(self.setup.run_dir), self.version, state, self.rank)

    def _finish(self, elapsed_s: float) -> None:
        run_dir = Path(self.setup.run_dir)
        every = self.config.checkpoint_every
        if not (every and self.steps_done % every == 0):  # else the last step saved it
            self._save(elapsed_s)
        export_policy(self.engine, self.processor or self.tokenizer, run_dir / self.setup.role, self.is_main)

    def rejoin_point(self, actor_id: int) -> RejoinPoint:
        """For a restarted actor (rank 0): the prompt positions that reached the replay queue from
        it, and its counters from the last group it sent (None before any)."""
        return RejoinPoint(received=self.replay.received(actor_id), counters=self.actor_counters.get(actor_id))

    def accounting(self) -> GroupAccount:
        """Rank 0's account of the run's groups so far (the run summary's learner part)."""
        replay = self.replay.counters
        buffered = len(self.replay)
        accounted = self.ledger.taken + buffered
        return GroupAccount(
            steps=self.steps_done,
            policy_version=self.version,
            groups_accepted=replay.accepted,
            groups_consumed=self.ledger.trained,
            groups_dropped={**self.ledger.dropped, "duplicate": replay.duplicates},
            groups_buffered_at_end=buffered,
            groups_lost=replay.accepted - accounted,
            groups_duplicated=self.ledger.twice,
            frames_rejected=replay.rejected,
            frames_rejected_by_reason=dict(replay.rejected_by_reason),
            actors=dict(sorted(self.actor_counters.items())),
        )

    def close(self) -> None:
        if self.replay is not None:
            self.replay.close()
        if self.publisher is not None:
            self.publisher.close()
        if self.metrics is not None:
            self.metrics.close()
        if self.rollouts is not None:
            self.rollouts.close()
