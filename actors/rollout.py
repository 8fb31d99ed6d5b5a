"""The rollout actor: generate caption groups continuously, have them scored, ship them.

With the reasoner as the policy (policy.role=reasoner) the same loop generates answer groups:
each prompt's caption comes first from the pool's frozen captioner, then the policy reasoner
samples G answers to the question from it, and the pool grades them (actors/episodes.py: what
one rollout is, by role).

Runs as a Ray actor (driver/roles.py starts it). One loop, three overlapping activities:
- generation (in a worker thread) of G captions for each of a few prompts at a time;
- scoring: each generated group goes to the reasoner pool as its own task, so the actor is
  already generating the next groups while earlier ones are scored (bounded in number);
- weight sync: a background task takes new policy versions as they arrive. An engine that can
  swap weights under requests in flight (vLLM) does so at once; otherwise they are swapped in
  between generation calls. Every token is tagged with the version that sampled it.
"""

from __future__ import annotations

import asyncio
import io
import logging
import random
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from actors.engine import CaptionEngine, CaptionSample, SamplingSettings, engine_device
from actors.engine_factory import make_caption_engine
from actors.episodes import EPISODES, Prompt, score_request
from actors.replay_client import ReplayClient
from actors.weight_checks import check_weight_update, policy_shapes
from actors.weight_receiver import BroadcastWeightReceiver, ZmqWeightReceiver
from configs.schema import RolloutConfig
from coordination.handles import GateHandle, PoolHandle
from coordination.resume import ActorStart
from records.vqa import VQARecord, load_image, read_records
from transport.curve import CurveKeys, load_keys
from vlm.sampling import SamplingSpec
from wire.buffers import MalformedMessage, excerpt
from wire.progress import ShardProgress
from wire.scored_group import ActorCounters, GroupTimings, ScoredGroup
from wire.scoring import ScoreRequest, ScoreResult
from wire.weights import WeightSource

log = logging.getLogger(__name__)

WEIGHT_POLL_S = 0.02
GATE_RETRY_S = 0.05
FLUSH_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class RolloutSetup:
    """What an actor needs beyond its config section: who it is and whom it talks to."""

    actor_id: int
    num_actors: int
    # The policy's checkpoint: the captioner, or the reasoner when `role` is "reasoner".
    policy: str
    # How captions are sampled (the learner computes its logprobs under the same spec).
    sampling: SamplingSpec
    records_file: str
    replay_endpoints: tuple[str, ...]
    weight_source: WeightSource
    reasoner_app: str
    # This actor's stream of the run's seed: its prompt order and its engine's sampling.
    seed: int
    # ZeroMQ CURVE keys for the replay and weight sockets (transport/curve.py); "" = none.
    curve_keys_dir: str = ""
    # policy.role: "captioner" (captions scored by the pool's reasoner) or "reasoner" (answers
    # to the pool's frozen captioner's captions, graded by the pool).
    role: str = "captioner"


@dataclass
class RolloutStats:
    """The actor's policy version and running totals; every group it sends carries the totals
    (`ActorCounters`), and the learner reports them in its metrics."""

    policy_version: int = 0
    groups_generated: int = 0
    groups_lost: int = 0
    bad_records: int = 0
    score_failures: int = 0
    answers_refused: int = 0
    empty_captions: int = 0
    judge_unparsed: int = 0
    format_timeouts: int = 0
    weight_updates: int = 0

    def counters(self, weight_updates_rejected: int) -> ActorCounters:
        return ActorCounters(
            groups_generated=self.groups_generated,
            groups_lost=self.groups_lost,
            bad_records=self.bad_records,
            score_failures=self.score_failures,
            answers_refused=self.answers_refused,
            empty_captions=self.empty_captions,
            judge_unparsed=self.judge_unparsed,
            weight_updates=self.weight_updates,
            weight_updates_rejected=weight_updates_rejected,
            policy_version=self.policy_version,
            format_timeouts=self.format_timeouts,
        )

    @classmethod
    def continuing(cls, counters: ActorCounters | None) -> RolloutStats:
        if counters is None:
            return cls()
        return cls(**{name: getattr(counters, name) for name in cls.__dataclass_fields__})


class RolloutActor:
    def __init__(self, config: RolloutConfig, setup: RolloutSetup, gate: GateHandle | None = None):
        torch.set_num_threads(config.torch_threads)
        self.config, self.setup, self.gate = config, setup, gate
        episode = EPISODES[setup.role]  # what one rollout is for this policy role
        self.engine = self._make_engine(episode.text_only)
        self.episode = episode(self)
        self.pool: PoolHandle | None = None  # once the loop runs
        records = read_records(Path(setup.records_file))
        self.records = records[setup.actor_id :: setup.num_actors]  # this actor's shard
        if not self.records:
            raise ValueError(f"actor {setup.actor_id} got an empty shard of {setup.records_file}")
        self.root = Path(setup.records_file).parent
        self.sampling = SamplingSettings(
            setup.sampling, n=config.group_size, max_new_tokens=config.sampling.max_new_tokens
        )
        self.stats = RolloutStats()
        self.min_version = 0
        self._stopping = asyncio.Event()
        self._pending_update = None
        self._swapping = asyncio.Lock()  # one weight swap at a time: the loop and the sync task both swap
        self.receiver = None
        self.policy_shapes = policy_shapes(setup.policy, text_only=episode.text_only)  # what an update must fit
        self.updates_refused = 0  # decoded updates that did not fit the policy (actors/weight_checks.py)

    def _make_engine(self, text_only: bool) -> CaptionEngine:
        device = engine_device(self.config.num_gpus)
        sync = self.setup.weight_source.backend
        return make_caption_engine(
            self.config.engine, self.setup.policy, self.config.vllm, self.setup.seed, device, sync, text_only=text_only
        )

    async def ready(self) -> int:
        """Answers once the actor is constructed (after a restart, too): its id."""
        return self.setup.actor_id

    async def run(self, start: ActorStart | None = None) -> RolloutStats:
        """Loop until `stop()`, from `start` (a fresh run's beginning by default); returns the final stats."""
        start = start or ActorStart(done=ShardProgress())
        self.stats = RolloutStats.continuing(start.counters)
        self.min_version = start.min_version
        self.pool = PoolHandle.of_app(self.setup.reasoner_app)
        keys = load_keys(self.setup.curve_keys_dir, self.setup.actor_id) if self.setup.curve_keys_dir else None
        self.replay = ReplayClient(list(self.setup.replay_endpoints), keys)
        self.receiver, weights_task = self._start_weight_sync(keys)
        scoring = asyncio.Semaphore(self.config.max_groups_scoring)
        in_flight: set[asyncio.Task] = set()
        prompts = self._prompt_stream(start.done)
        try:
            while not self._stopping.is_set():
                await self._apply_pending_weights()
                admitted = await self._admitted(self.config.prompts_per_call)
                if not admitted:
                    continue
                batch = await self.episode.prepared([next(prompts) for _ in range(admitted)])
                if not batch:
                    continue
                started = time.perf_counter()
                groups = await self.engine.generate([p.request for p in batch], self.sampling)
                generate_s = time.perf_counter() - started
                self.stats.groups_generated += len(batch)
                for prompt, samples in zip(batch, groups):
                    await scoring.acquire()
                    task = asyncio.create_task(self._score_and_send(prompt, samples, generate_s, scoring))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
        finally:
            weights_task.cancel()
            # Groups already generated are still scored and handed over, unless the learner has
            # gone away and no longer reads (then the run is over and they have no taker).
            if in_flight:
                _, unfinished = await asyncio.wait(in_flight, timeout=FLUSH_TIMEOUT_S)
                for task in unfinished:
                    task.cancel()
            self.receiver.close()
            self.replay.close()
        return self.stats

    async def stop(self) -> None:
        self._stopping.set()

    async def get_stats(self) -> RolloutStats:
        return self.stats

    async def close(self) -> None:
        """Release the engine (a vLLM engine runs in a process of its own) once the run is over."""
        self.engine.close()

    async def _admitted(self, count: int) -> int:
        """Ask the staleness gate for up to `count` groups; how many it admitted. Refused at once,
        wait for newer weights first. A partial admission is used, not given back: the step may
        need exactly those groups (at eta = 0 with 3 groups per step and 2 prompts per call, the
        third group of a step is the first of a call), and only this actor may be there to make them."""
        if self.engine.policy_version < self.min_version:  # a resumed run's weights are on their way
            await asyncio.sleep(GATE_RETRY_S)
            return 0
        if self.gate is None:
            return count
        admitted = await self.gate.admit_up_to_ref(self.engine.policy_version, count, self.setup.actor_id)
        if not admitted:
            await asyncio.sleep(GATE_RETRY_S)
        return admitted

    def _start_weight_sync(self, keys: CurveKeys | None):
        source = self.setup.weight_source
        if source.backend == "zmq":
            receiver = ZmqWeightReceiver(source.endpoints, keys)
            return receiver, asyncio.create_task(self._receive_weights(receiver))
        receiver = BroadcastWeightReceiver(source.endpoints[0], self.setup.actor_id, keys, self.policy_shapes)
        return receiver, asyncio.create_task(receiver.serve(self.engine, self._now_at))

    async def _receive_weights(self, receiver: ZmqWeightReceiver) -> None:
        while True:
            update = receiver.poll()
            if update is not None:
                self._pending_update = update
                if self.engine.updates_in_flight:
                    await self._apply_pending_weights()
            await asyncio.sleep(WEIGHT_POLL_S)

    async def _apply_pending_weights(self) -> None:
        async with self._swapping:
            update, self._pending_update = self._pending_update, None
            if update is None or update.version <= self.engine.policy_version:
                return  # none, or older than the weights in use: a slow actor's skipped version
            try:
                # A pass over every value (isfinite): seconds for a large model, off the event loop.
                await asyncio.to_thread(check_weight_update, update, self.policy_shapes, self.engine.policy_version)
            except MalformedMessage as err:
                self.updates_refused += 1
                log.warning(
                    "actor %d refused a weight update and keeps its weights: %s",
                    self.setup.actor_id,
                    excerpt(str(err), 300),
                )
                return
            await self.engine.update_weights(update)
            self._now_at(update.version)

    def _now_at(self, version: int) -> None:
        self.stats.weight_updates += 1
        self.stats.policy_version = version
        log.info("actor %d now at policy version %d", self.setup.actor_id, version)

    def _prompt_stream(self, done: ShardProgress | None = None):
        """This actor's shard, reshuffled every epoch, from the first position not `done`, skipping
        those that are; unreadable records are skipped and counted."""
        order, order_epoch = [], -1
        for position in (done or ShardProgress()).missing():
            epoch, offset = divmod(position, len(self.records))
            if epoch != order_epoch:
                order, order_epoch = list(range(len(self.records))), epoch
                random.Random(f"prompt-order/{self.setup.seed}/{epoch}").shuffle(order)
            prompt = self._load_prompt(position, self.records[order[offset]])
            if prompt is not None:
                yield prompt

    def _load_prompt(self, position: int, record: VQARecord) -> Prompt | None:
        try:
            image = load_image(record, self.root)
        except ValueError as err:
            self.stats.bad_records += 1
            log.warning("skipping record: %s", err)
            return None
        png = io.BytesIO()
        image.save(png, format="PNG")
        return self.episode.prompt(position, record, image, png.getvalue())

    async def lose(self, count: int) -> None:
        """`count` admitted prompts that make no group: counted, and their admissions given back,
        since the learner waits for the gate's count of groups (at eta = 0 a place never
        returned would stall it until batch_timeout_s)."""
        self.stats.groups_lost += count
        if self.gate is not None:
            await self.gate.give_back_ref(count, self.setup.actor_id)

    async def _score_and_send(self, prompt: Prompt, samples: list[CaptionSample], generate_s: float, slot) -> None:
        try:
            started = time.perf_counter()
            result = await self._score(prompt, samples)
            if result is None:
                await self.lose(1)
                return
            group = self._scored_group(prompt, samples, result, generate_s, time.perf_counter() - started)
            await self.replay.send(group)
        finally:
            slot.release()

    async def generate_alone(self, calls: int) -> tuple[float, list[tuple[ScoreRequest, ScoredGroup]]]:
        """Generation with nothing else to do (the throughput benchmark's stage): `calls` engine
        calls of `prompts_per_call` prompts each. Returns the seconds they took and each group,
        unscored (rewards 0), with the request that would score it."""
        prompts = self._prompt_stream()
        groups, started = [], time.perf_counter()
        for _ in range(calls):
            batch = [next(prompts) for _ in range(self.config.prompts_per_call)]
            call_started = time.perf_counter()
            outputs = await self.engine.generate([p.request for p in batch], self.sampling)
            generate_s = time.perf_counter() - call_started
            unscored = ScoreResult(
                rewards=(0.0,) * self.config.group_size, answers=((),) * self.config.group_size, latency_s=0.0
            )
            for prompt, samples in zip(batch, outputs):
                groups.append(
                    (score_request(prompt, samples), self._scored_group(prompt, samples, unscored, generate_s, 0.0))
                )
        return time.perf_counter() - started, groups

    async def _score(self, prompt: Prompt, samples: list[CaptionSample]) -> ScoreResult | None:
        result = await self.episode.score(prompt, samples)
        if result is not None:
            self.stats.answers_refused += result.answers_refused
            self.stats.empty_captions += result.empty_captions
            self.stats.judge_unparsed += result.judge_unparsed
            self.stats.format_timeouts += result.format_timeouts
        return result

    async def call_pool(self, what: str, call):
        """`call()`'s result, tried up to rollout.score_attempts times with backoff; None if every try failed."""
        attempts = self.config.score_attempts
        for attempt in range(attempts):
            try:
                return await asyncio.wait_for(call(), self.config.score_timeout_s)
            except Exception as err:  # a replica died or timed out: Serve routes the retry elsewhere
                self.stats.score_failures += 1
                # The error's last line names it; the rest is the remote traceback, once per try.
                reason = (str(err).strip().splitlines() or [type(err).__name__])[-1]
                if isinstance(err, asyncio.TimeoutError):
                    reason = f"no answer within rollout.score_timeout_s={self.config.score_timeout_s}"
                log.warning("%s failed (attempt %d of %d): %s", what, attempt + 1, attempts, reason)
                if attempt + 1 < attempts:
                    await asyncio.sleep(self.config.score_retry_backoff_s * 2**attempt)
        log.error("giving up on %s after %d failures", what, attempts)
        return None

    def _scored_group(self, prompt, samples, result: ScoreResult, generate_s: float, score_s: float) -> ScoredGroup:
        return ScoredGroup(
            group_id=uuid.uuid4().hex,
            prompt_id=prompt.record.id,
            actor_id=self.setup.actor_id,
            prompt_position=prompt.position,
            prompt_token_ids=prompt.request.prompt.input_ids.astype(np.int32),
            image_png=self.episode.image_for_learner(prompt),
            completion_ids=tuple(s.token_ids for s in samples),
            behaviour_logprobs=tuple(s.logprobs for s in samples),
            token_versions=tuple(s.token_versions for s in samples),
            rewards=np.array(result.rewards, dtype=np.float32),
            answers=result.answers,
            timings=GroupTimings(generate_s=generate_s, score_s=score_s, sent_at=time.time()),
            counters=self.stats.counters(self.updates_refused + (self.receiver.rejected if self.receiver else 0)),
        )
