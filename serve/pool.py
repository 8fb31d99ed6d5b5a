"""The reasoner pool: a Ray Serve application that answers questions from captions and grades
them, and serves people the same engine.

Rollout actors call `score` through a deployment handle; when the reasoner itself is the
policy (policy.role=reasoner) they call `captions` (the frozen captioner's, from the captioner
service the pool then holds) and `score_answers` (the policy's answers, graded or judged).
Over HTTP (a FastAPI ingress) the pool serves the OpenAI-compatible API (`/v1/models`,
`/v1/chat/completions`), the scoring endpoint (`POST /reasoner` with {"question", "answer",
"captions"}), `/health`, and the demo page at `/`. Caption scoring requests are batched across
callers (`serve.batch`); each caption gets k sampled answers, and its reward is computed from them
(serve/rewards.py). Live and training work share the engine through one
queue (serve/engine_queue.py).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import random
import time
from pathlib import Path

import torch
from fastapi import FastAPI
from ray import serve
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from configs.placement import ray_options
from configs.schema import RewardConfig, ServeConfig
from configs.seeds import derived_seed
from coordination.handles import CaptionServiceHandle, PoolHandle
from serve.api_protocol import ApiError, internal_error, parse_chat_request, read_body
from serve.chat import ChatService
from serve.completion import CompletionParams
from serve.engine_queue import EngineQueue
from serve.openai_reasoner import OpenAIReasoner
from serve.reasoner_engines import make_reasoner
from serve.rewards import score_answer_groups, score_groups
from wire.inference import DescribeRequest
from wire.scoring import AnswerScoreRequest, ScoreRequest, ScoreResult, score_request_from_json

GRACEFUL_SHUTDOWN_S = 5.0
SCORING_ROUTE = "/reasoner"
DEMO_PAGE = Path(__file__).with_name("demo.html")

api = FastAPI(title="caption-reward-rl reasoner pool", docs_url=None, redoc_url=None)


class InjectedScoringFault(RuntimeError):
    """A scoring call failed on purpose (`serve.inject_failure_prob`, a fault drill)."""


@serve.deployment
@serve.ingress(api)
class ReasonerPool:
    def __init__(
        self, config: ServeConfig, checkpoint: str, seed: int, captioner=None, reward: RewardConfig | None = None
    ):
        torch.set_num_threads(config.torch_threads)
        self.config = config
        self.reward = reward or RewardConfig()
        # Each replica samples its own stream of the run's seed (by its rank, stable across restarts).
        replica_seed = derived_seed(seed, "reasoner", serve.get_replica_context().rank.rank)
        torch.manual_seed(replica_seed)
        self.engine = make_reasoner(config, checkpoint, replica_seed)
        # The judge (reward.kind=judge): an endpoint of its own, or this replica's reasoner model.
        endpoint = self.reward.judge.openai
        self.judge_engine = OpenAIReasoner(endpoint) if endpoint.base_url else self.engine
        self.queue = EngineQueue(config.api.live_burst, config.api.max_live_waiting)
        # The captioner service's deployment handle, typed (Serve hands the bound app in as a handle).
        self.captioner = CaptionServiceHandle(captioner) if captioner is not None else None
        self.chat = ChatService(config.api, self.engine, self.queue, self.captioner, config.max_new_tokens)
        self._token = os.environ.get(config.api.api_key_env) or None
        self._faults = random.Random(derived_seed(replica_seed, "injected-faults"))
        self._http_scoring = 0  # /reasoner requests in flight (bounded by serve.api.max_live_waiting)
        self._score_batch.set_max_batch_size(config.max_batch_size)
        self._score_batch.set_batch_wait_timeout_s(config.batch_wait_timeout_s)

    async def score(self, request: ScoreRequest) -> ScoreResult:
        if self._faults.random() < self.config.inject_failure_prob:
            raise InjectedScoringFault(
                f"scoring call failed on purpose (serve.inject_failure_prob={self.config.inject_failure_prob})"
            )
        return await self._score_batch(request)

    async def score_answers(self, requests: list[AnswerScoreRequest]) -> list[ScoreResult]:
        """Rewards of the policy reasoner's answers (policy.role=reasoner): graded, or judged by
        this replica's model in turn with live work."""
        if self._faults.random() < self.config.inject_failure_prob:
            raise InjectedScoringFault(
                f"scoring call failed on purpose (serve.inject_failure_prob={self.config.inject_failure_prob})"
            )
        start = time.perf_counter()
        return await self.queue.training(
            lambda: score_answer_groups(requests, self.reward, lambda: time.perf_counter() - start, self._judge)
        )

    async def captions(self, requests: list[DescribeRequest]) -> list[str]:
        """The frozen captioner's captions (policy.role=reasoner: the policy reasoner's prompts)."""
        if self.captioner is None:
            raise RuntimeError("this pool serves no captioner (policy.role=reasoner deploys one)")
        return await self.captioner.captions(requests)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.02)
    async def _score_batch(self, requests: list[ScoreRequest]) -> list[ScoreResult]:
        # Training's work: it yields the engine to waiting live requests (serve/engine_queue.py).
        return await self.queue.training(lambda: self._score_blocking(requests))

    def _score_blocking(self, requests: list[ScoreRequest]) -> list[ScoreResult]:
        start = time.perf_counter()

        def answer(prompts: list[tuple[str, str]], k: int) -> list[list[str]]:
            return self.engine.answer(
                prompts, k=k, temperature=self.config.temperature, max_new_tokens=self.config.max_new_tokens
            )

        return score_groups(
            requests,
            answer,
            self.config.samples_per_caption,
            self.reward,
            lambda: time.perf_counter() - start,
            self._judge,
        )

    def _judge(self, conversations: list[list[dict]]) -> list[str]:
        judge = self.reward.judge
        params = CompletionParams(temperature=judge.temperature, max_tokens=judge.max_new_tokens)
        return [result.choices[0].text for result in self.judge_engine.complete(conversations, params)]

    async def infer(self, question: str, image: bytes, seed: int | None = None) -> dict[str, str]:
        """The two-stage inference through a deployment handle (`launch.py infer`)."""
        return await self.chat.infer(question, image, seed)

    @api.get("/health")
    async def health(self) -> dict:
        live, training = self.queue.waiting()
        return {"status": "ok", "waiting": {"live": live, "training": training}}

    @api.get("/", response_class=HTMLResponse)
    async def demo_page(self) -> HTMLResponse:
        return HTMLResponse(DEMO_PAGE.read_text())

    @api.get("/v1/models")
    async def models(self, request: Request) -> Response:
        async def respond() -> Response:
            return JSONResponse(self.chat.models())

        return await self._answer(request, respond)

    @api.post("/v1/chat/completions")
    async def chat_completions(self, request: Request) -> Response:
        async def respond() -> Response:
            body = await read_body(request, self.config.api.max_body_bytes)
            # Parsing a body of megabytes takes a while: off the event loop, which serves every request.
            return await self.chat.respond(await asyncio.to_thread(parse_chat_request, body))

        return await self._answer(request, respond)

    @api.post(SCORING_ROUTE)
    async def score_http(self, request: Request) -> Response:
        async def respond() -> Response:
            scoring = await asyncio.to_thread(
                self._scoring_request, await read_body(request, self.config.api.max_body_bytes)
            )
            if self._http_scoring >= self.config.api.max_live_waiting:
                raise ApiError(
                    429,
                    f"{self._http_scoring} scoring requests are already waiting for this replica "
                    "(serve.api.max_live_waiting)",
                    kind="rate_limit_error",
                    code="rate_limit_exceeded",
                )
            self._http_scoring += 1
            try:
                result = await self.score(scoring)
            finally:
                self._http_scoring -= 1
            return JSONResponse({"rewards": list(result.rewards), "answers": [list(a) for a in result.answers]})

        return await self._answer(request, respond)

    def _scoring_request(self, body: bytes) -> ScoreRequest:
        try:
            scoring = score_request_from_json(json.loads(body))
        except ValueError as err:  # includes JSON decode errors
            raise ApiError(400, str(err)) from None
        if len(scoring.captions) > self.config.api.max_captions:
            raise ApiError(
                400,
                f"{len(scoring.captions)} captions in one request, at most {self.config.api.max_captions} "
                "(serve.api.max_captions)",
                param="captions",
            )
        return scoring

    async def _answer(self, request: Request, respond) -> Response:
        """`respond()` behind the bearer token; every failure in OpenAI's error shape. An
        unexpected one says only its error id: the log has the rest, the client no internals."""
        try:
            self._authorize(request)
            return await respond()
        except ApiError as err:
            return JSONResponse(err.body(), status_code=err.status)
        except Exception:
            return JSONResponse(internal_error(request.url.path).body(), status_code=500)

    def _authorize(self, request: Request) -> None:
        if self._token is None:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self._token}".encode()):
            raise ApiError(
                401,
                f"missing or wrong bearer token (this server takes the key in ${self.config.api.api_key_env})",
                kind="authentication_error",
                code="invalid_api_key",
            )


def reasoner_app(config: ServeConfig, checkpoint: str, seed: int, captioner=None, reward: RewardConfig | None = None):
    """The bound application, ready for `serve.run`; `captioner`, a bound captioner service,
    adds the two-stage model; `reward` is what scoring computes (the verifiable reward if None)."""
    placement = config.placement
    scaling = config.autoscaling
    replicas = (
        {
            "autoscaling_config": {
                "min_replicas": scaling.min_replicas,
                "max_replicas": scaling.max_replicas,
                "target_ongoing_requests": scaling.target_ongoing_requests,
            }
        }
        if scaling.max_replicas
        else {"num_replicas": config.num_replicas}
    )
    return ReasonerPool.options(
        **replicas,
        **({"max_replicas_per_node": placement.per_node} if placement.per_node else {}),
        # Serve's default of 5 ongoing requests would silently cap every batch at 5; live
        # requests come on top.
        max_ongoing_requests=max(2 * config.max_batch_size, 8) + config.api.max_live_waiting,
        ray_actor_options=ray_options(config.num_cpus, config.num_gpus, placement),
        logging_config={"log_level": "WARNING"},  # no access-log line per request
        # A request takes a batch's time (well under a second on CPU): a stopping run need not
        # wait Serve's default 20 s per replica for requests that will not come.
        graceful_shutdown_timeout_s=GRACEFUL_SHUTDOWN_S,
    ).bind(config, checkpoint, seed, captioner, reward)


def start_reasoner_pool(
    config: ServeConfig,
    checkpoint: str,
    seed: int,
    http: bool = False,
    captioner=None,
    reward: RewardConfig | None = None,
) -> PoolHandle:
    """Deploy the pool and return its handle; with `http`, also serve people on
    config.http_host:http_port (else the pool serves the rollout actors only, through Ray)."""
    if http:
        http_options = {
            "host": config.http_host,
            "port": config.http_port,
            "request_timeout_s": config.api.request_timeout_s,
        }
        serve.start(
            proxy_location=config.proxy_location, http_options=http_options, logging_config={"log_level": "WARNING"}
        )
    else:
        serve.start(proxy_location="Disabled", logging_config={"log_level": "WARNING"})
    return PoolHandle(
        serve.run(reasoner_app(config, checkpoint, seed, captioner, reward), name=config.app_name, route_prefix="/")
    )
