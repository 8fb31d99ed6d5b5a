"""The reasoner pool's section: its engine, replicas and batching, and the live service."""

from __future__ import annotations

from dataclasses import dataclass, field

from configs.bounds import Section, bounded, one_of, require
from configs.engines import REASONER_ENGINES, OpenAIEndpointConfig, VllmConfig
from configs.placement import PlacementConfig


@dataclass
class AutoscalingConfig(Section):
    """Ray Serve autoscaling of the reasoner pool; max_replicas 0 = off (serve.num_replicas fixed)."""

    section = "serve.autoscaling"

    min_replicas: int = 1
    max_replicas: int = bounded(0, ge=0)
    # Ongoing requests per replica Serve aims for when it adds or removes replicas.
    target_ongoing_requests: float = bounded(8.0, gt=0)

    def check(self) -> None:
        require(
            self.max_replicas == 0 or 1 <= self.min_replicas <= self.max_replicas,
            "serve.autoscaling: need 1 <= min_replicas <= max_replicas (max_replicas 0 = off)",
        )


@dataclass
class ApiConfig(Section):
    """The live service: OpenAI-compatible API, two-stage inference, demo page."""

    section = "serve.api"

    # Model id of the pool's reasoner in /v1/models and requests.
    reasoner_model: str = bounded("reasoner", nonempty=True)
    # Model id of the two-stage inference (captioner, then reasoner); "" = no captioner deployed.
    two_stage_model: str = "caption-reason"
    # More reasoners by model id, each an OpenAI-compatible endpoint: listed in /v1/models,
    # callable by that id, and choosable as the two-stage model's reasoner (plug-and-play), e.g.
    # serve.api.reasoners.r1.base_url=http://10.0.0.5:8000/v1 serve.api.reasoners.r1.model=R1-7B
    reasoners: dict[str, OpenAIEndpointConfig] = field(default_factory=dict)
    # Captioner checkpoint of the two-stage model: "" = models.captioner (or the bundled one);
    # a run's trained one is RUN_DIR/captioner.
    captioner: str = ""
    # Name of the environment variable holding the bearer token every /v1 and /reasoner request
    # must carry; unset variable = no token asked for.
    api_key_env: str = "CAPTION_RL_API_KEY"
    # Largest max_tokens, n and stop-string count a request may ask for.
    max_tokens: int = bounded(256, ge=1)
    max_n: int = bounded(8, ge=1)
    max_stop: int = bounded(4, ge=0)
    # Most captions one POST /reasoner request may ask to score.
    max_captions: int = bounded(64, ge=1)
    # Largest request body and decoded image (pixels, width x height; checked before decoding).
    max_body_bytes: int = bounded(8 * 2**20, ge=1)
    max_image_pixels: int = bounded(4096 * 4096, ge=1)
    # http(s) image URLs are fetched only when enabled (else only data: URLs are taken).
    allow_remote_images: bool = False
    # serve.http_host beyond loopback with no token (api_key_env unset) refuses to start unless
    # this is true (a network you trust); configs/exposure.py.
    allow_insecure: bool = False
    # Fair sharing of a replica's engine (serve/engine_queue.py): live jobs in a row before a
    # waiting training job runs, and live jobs waiting beyond which a request gets 429.
    live_burst: int = bounded(4, ge=1)
    max_live_waiting: int = bounded(16, ge=1)
    # Seconds an HTTP request may take before it is answered with an error (a replica that died
    # or hangs mid-request): a caller gets an answer, never a hang.
    request_timeout_s: float = bounded(300.0, gt=0)

    def check(self) -> None:
        require(
            self.two_stage_model != self.reasoner_model, "serve.api: two_stage_model and reasoner_model must differ"
        )
        for name, endpoint in self.reasoners.items():
            require(
                name not in (self.reasoner_model, self.two_stage_model),
                f"serve.api.reasoners.{name}: the id is taken by the pool's own models",
            )
            require(bool(endpoint.base_url and endpoint.model), f"serve.api.reasoners.{name} needs base_url and model")


@dataclass
class ServeConfig(Section):
    """Reasoner pool: a Ray Serve application that answers from captions and grades the answers."""

    section = "serve"

    # Reasoner engine: "transformers" or "vllm" in the pool's replicas, or "openai": an
    # OpenAI-compatible endpoint served elsewhere (serve.openai), the replicas then only batch and grade.
    engine: str = one_of(REASONER_ENGINES, "transformers")
    vllm: VllmConfig = field(default_factory=VllmConfig)
    openai: OpenAIEndpointConfig = field(default_factory=OpenAIEndpointConfig)
    # Serve application name.
    app_name: str = "reasoner"
    # During training, also serve people over HTTP (the API, the scoring endpoint, the demo page)
    # on http_host:http_port. `launch.py serve` always does.
    live: bool = False
    api: ApiConfig = field(default_factory=ApiConfig)
    autoscaling: AutoscalingConfig = field(default_factory=AutoscalingConfig)
    # One replica per device: two sharing one core scored 0.6x the groups per second of one.
    num_replicas: int = bounded(1, ge=1)
    # Which nodes the replicas run on; per_node = replicas per node (spreads a GPU pool over nodes).
    placement: PlacementConfig = field(default_factory=PlacementConfig)
    # k: reasoner answers sampled per caption; reward = their mean correctness.
    samples_per_caption: int = bounded(1, ge=1)
    # Requests (caption groups) batched into one reasoner call.
    max_batch_size: int = bounded(8, ge=1)
    batch_wait_timeout_s: float = bounded(0.02, ge=0)
    # Reasoner sampling temperature; 0 answers greedily (k copies of one answer).
    temperature: float = bounded(1.0, ge=0)
    max_new_tokens: int = 40
    num_cpus: float = 0.25
    num_gpus: float = 0.0
    torch_threads: int = 1
    # HTTP address of the live service; loopback unless configured otherwise.
    http_host: str = "127.0.0.1"
    http_port: int = bounded(8000, ge=1, le=65535)
    # Which nodes serve HTTP: "HeadOnly" (http_host is then an address of the head) or
    # "EveryNode" (each node with a replica; http_host must then be 0.0.0.0 or 127.0.0.1).
    proxy_location: str = one_of(("HeadOnly", "EveryNode"), "HeadOnly")
    # Fault drill: each scoring call fails with this probability before any work (0 = never), to
    # see a run survive failing scoring and count what it lost. Never set it for real training.
    inject_failure_prob: float = bounded(0.0, ge=0, le=1)

    def check(self) -> None:
        require(
            self.engine != "openai" or bool(self.openai.base_url and self.openai.model),
            "serve.engine=openai needs serve.openai.base_url and serve.openai.model",
        )
        require(
            self.proxy_location == "HeadOnly" or self.http_host in ("0.0.0.0", "127.0.0.1"),
            "serve.proxy_location=EveryNode binds http_host on every node: it must be 0.0.0.0 or 127.0.0.1",
        )
