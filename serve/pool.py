"""The reasoner pool: a Ray Serve deployment that answers questions from captions and grades them.

Actors call `score` through a deployment handle; people call the same code over HTTP
(POST {route_prefix} with {"question", "answer", "captions"}). Requests are batched across
callers (`serve.batch`), each caption gets k sampled answers, and its reward is their mean
correctness.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

import torch
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse

from configs.schema import ServeConfig
from configs.seeds import derived_seed
from serve.grading import caption_reward
from serve.hf_reasoner import TransformersReasoner
from wire.scoring import ScoreRequest, ScoreResult, score_request_from_json

log = logging.getLogger(__name__)

GRACEFUL_SHUTDOWN_S = 5.0


class InjectedScoringFault(RuntimeError):
    """A scoring call failed on purpose (`serve.inject_failure_prob`, a fault drill)."""


@serve.deployment
class ReasonerPool:
    def __init__(self, config: ServeConfig, checkpoint: str, seed: int):
        torch.set_num_threads(config.torch_threads)
        self.config = config
        # Each replica samples its own stream of the run's seed (by its rank, stable across restarts).
        replica_seed = derived_seed(seed, "reasoner", serve.get_replica_context().rank.rank)
        torch.manual_seed(replica_seed)
        self.engine = make_reasoner(config, checkpoint, replica_seed)
        self._faults = random.Random(derived_seed(replica_seed, "injected-faults"))
        self._score_batch.set_max_batch_size(config.max_batch_size)
        self._score_batch.set_batch_wait_timeout_s(config.batch_wait_timeout_s)

    async def score(self, request: ScoreRequest) -> ScoreResult:
        if self._faults.random() < self.config.inject_failure_prob:
            raise InjectedScoringFault(f"scoring call failed on purpose (serve.inject_failure_prob={self.config.inject_failure_prob})")
        return await self._score_batch(request)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.02)
    async def _score_batch(self, requests: list[ScoreRequest]) -> list[ScoreResult]:
        # Blocking model work runs off the event loop so the replica keeps accepting requests.
        return await asyncio.to_thread(self._score_blocking, requests)

    def _score_blocking(self, requests: list[ScoreRequest]) -> list[ScoreResult]:
        start = time.perf_counter()
        prompts = [(caption, r.question) for r in requests for caption in r.captions]
        answers = self.engine.answer(
            prompts,
            k=self.config.samples_per_caption,
            temperature=self.config.temperature,
            max_new_tokens=self.config.max_new_tokens,
        )
        latency = time.perf_counter() - start
        results, offset = [], 0
        for request in requests:
            group = answers[offset : offset + len(request.captions)]
            offset += len(request.captions)
            rewards = tuple(caption_reward(a, request.gold_answer) for a in group)
            results.append(ScoreResult(rewards=rewards, answers=tuple(tuple(a) for a in group), latency_s=latency))
        return results

    async def __call__(self, http_request: Request) -> JSONResponse:
        try:
            request = score_request_from_json(await http_request.json())
        except ValueError as err:  # includes JSON decode errors
            return JSONResponse({"error": str(err)}, status_code=400)
        result = await self.score(request)
        return JSONResponse({"rewards": list(result.rewards), "answers": [list(a) for a in result.answers]})


def make_reasoner(config: ServeConfig, checkpoint: str, seed: int):
    """The configured reasoner engine; both answer with the same `answer(prompts, k, ...)`.
    The transformers one samples from torch's global generator, which its caller seeds."""
    if config.engine == "vllm":
        from serve.vllm_reasoner import VllmReasoner

        return VllmReasoner(checkpoint, config.vllm, seed)
    device = "cuda" if config.num_gpus > 0 and torch.cuda.is_available() else "cpu"
    return TransformersReasoner(checkpoint, device=device)


def reasoner_app(config: ServeConfig, checkpoint: str, seed: int):
    """The bound application, ready for `serve.run`."""
    placement = {"max_replicas_per_node": config.max_replicas_per_node} if config.max_replicas_per_node else {}
    return ReasonerPool.options(
        num_replicas=config.num_replicas,
        **placement,
        # Serve's default of 5 ongoing requests would silently cap every batch at 5.
        max_ongoing_requests=max(2 * config.max_batch_size, 8),
        ray_actor_options={"num_cpus": config.num_cpus, "num_gpus": config.num_gpus},
        logging_config={"log_level": "WARNING"},  # no access-log line per request
        # A request takes a batch's time (well under a second on CPU): a stopping run need not
        # wait Serve's default 20 s per replica for requests that will not come.
        graceful_shutdown_timeout_s=GRACEFUL_SHUTDOWN_S,
    ).bind(config, checkpoint, seed)


def start_reasoner_pool(config: ServeConfig, checkpoint: str, seed: int):
    """Deploy the pool (HTTP on config.http_host:http_port, or no HTTP at all for port 0) and
    return its deployment handle."""
    if config.http_port:
        serve.start(http_options={"host": config.http_host, "port": config.http_port}, logging_config={"log_level": "WARNING"})
    else:
        serve.start(proxy_location="Disabled", logging_config={"log_level": "WARNING"})
    return serve.run(reasoner_app(config, checkpoint, seed), name=config.app_name, route_prefix=config.route_prefix)
