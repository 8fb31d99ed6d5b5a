"""Typed configuration schema: one dataclass per role, composed into the run's config.

The defaults here are the bundled default run (`python launch.py`): a warm-started tiny
captioner trained on the synthetic shapes task on a 2-core CPU, its reward rising within
minutes (why these values, and what else was tried: README, "The bundled task"). They are
written nowhere else. A YAML file (`--config FILE`, e.g. the paper settings in this folder) and
command-line dotlist overrides are merged over them; an unknown key fails at once
(`configs.load`). Every field has a one-line docstring (the comment above it) and a validated
range.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass
class WarmStartConfig:
    """Supervised warm start of the bundled tiny models, run once when the bundled task is built."""

    # Random scenes (never an eval scene) the warm start trains on. With 4096 the captioner
    # learned its scenes by heart: far better on them than on unseen ones.
    num_scenes: int = 16384
    # The captioner's captions name the objects in cell order and, after each, go on to the
    # next with this probability (else stop), whatever the question asks.
    go_on_prob: float = 0.4
    batch_size: int = 32
    # Steps teaching the vision tower to point each cell's token at the words for its content and place.
    vision_steps: int = 300
    vision_lr: float = 3e-3
    # The captioner first learns to read on complete captions, until its captions of held-out
    # scenes name objects this precisely (checked every `check_every` steps), for at most
    # `reading_steps`; then it learns to stop early, for `stopping_steps`.
    captioner_min_precision: float = 0.9
    check_every: int = 400
    reading_steps: int = 1600
    stopping_steps: int = 300
    captioner_lr: float = 2e-3
    # The share of the captioner's reading and stopping examples that ask it to answer for itself
    # (the direct mode, the two-stage tentative answer); reading also goes on until it answers
    # held-out questions this often.
    answer_share: float = 0.25
    captioner_min_direct_accuracy: float = 0.5
    # The reasoner trains until it answers right from complete captions of held-out scenes this
    # often, and judges held-out answers and captions, answers multiple choice and the inference
    # modes' prompts this often (checked every `check_every` steps), for at most `reasoner_steps`.
    # It learns to copy and count objects only after ~1000 steps; with four skills to learn,
    # 5000 steps left counting at 0.75 and multiple choice at 0.63 (build format 12).
    reasoner_min_accuracy: float = 0.95
    reasoner_steps: int = 10000
    reasoner_lr: float = 1e-3
    # A copy of the reasoner is kept from the first check where it answers at least this often
    # (task.bundled_reasoner=partial): a weaker reasoner, for runs that train the reasoner.
    partial_reasoner_accuracy: float = 0.5

    def __post_init__(self) -> None:
        _check(0 <= self.go_on_prob <= 1, "task.warm_start.go_on_prob must be in [0, 1]")
        _check(self.num_scenes > 0 and self.batch_size > 0, "task.warm_start: num_scenes and batch_size must be > 0")
        steps = (self.vision_steps, self.reading_steps, self.stopping_steps, self.reasoner_steps)
        _check(min(steps) >= 0 and self.check_every >= 0, "task.warm_start: step counts must be >= 0")
        _check(0 <= self.captioner_min_precision <= 1, "task.warm_start.captioner_min_precision must be in [0, 1]")
        _check(0 <= self.answer_share < 1, "task.warm_start.answer_share must be in [0, 1)")
        _check(0 <= self.captioner_min_direct_accuracy <= 1, "task.warm_start.captioner_min_direct_accuracy must be in [0, 1]")
        _check(0 <= self.reasoner_min_accuracy <= 1, "task.warm_start.reasoner_min_accuracy must be in [0, 1]")
        _check(0 <= self.partial_reasoner_accuracy <= 1, "task.warm_start.partial_reasoner_accuracy must be in [0, 1]")


@dataclass
class TaskConfig:
    """The prompts: the bundled synthetic task, or your data files (README, "Your own data")."""

    # "bundled" builds the synthetic task on first use; "files" reads train_file/eval_file.
    kind: str = "bundled"
    # Training data when kind=files: our JSONL (id, image, question, answer), or ViRL39K's
    # parquet (the release or the mirrored copy). Prepared once before the run (README, "Your own data").
    train_file: str = ""
    # Held-out data when kind=files, in the same layouts.
    eval_file: str = ""
    # Training rows whose source is one of these are left out, e.g. [DeepScaleR] as RACRO trains.
    exclude_sources: list[str] = field(default_factory=list)
    # Only training rows of these categories are used; empty = every category.
    categories: list[str] = field(default_factory=list)
    # Rows whose image declares more pixels are left out (decoding one takes seconds and GBs;
    # Qwen2.5-VL's resizing caps what the model sees at 12.8M pixels anyway).
    max_image_pixels: int = 6000 * 6000
    # Where the bundled task (dataset and tiny checkpoints) is built and cached.
    cache_dir: str = "~/.cache/caption-reward-rl"
    # Seed of the bundled task's data and tiny checkpoints.
    seed: int = 0
    # Bundled task sizes.
    num_train: int = 2048
    num_eval: int = 256
    warm_start: WarmStartConfig = field(default_factory=WarmStartConfig)
    # Which bundled reasoner a run uses where models.reasoner is empty: "trained" (its whole warm
    # start) or "partial" (a copy from early in it: a weaker reasoner, for policy.role=reasoner).
    bundled_reasoner: str = "trained"

    def __post_init__(self) -> None:
        _check(self.kind in ("bundled", "files"), f"task.kind must be 'bundled' or 'files', got {self.kind!r}")
        _check(self.bundled_reasoner in ("trained", "partial"), f"task.bundled_reasoner must be 'trained' or 'partial', got {self.bundled_reasoner!r}")
        _check(self.kind == "bundled" or bool(self.train_file), "task.train_file is required when task.kind=files")
        _check(self.num_train > 0 and self.num_eval > 0, "task.num_train and task.num_eval must be > 0")
        _check(self.max_image_pixels >= 1, "task.max_image_pixels must be >= 1")


@dataclass
class ModelsConfig:
    """Checkpoints (Hugging Face folders). Empty = the bundled tiny models."""

    # Qwen2.5-VL captioner checkpoint (the policy unless policy.role=reasoner).
    captioner: str = ""
    # Text-only reasoner checkpoint (frozen unless policy.role=reasoner).
    reasoner: str = ""


@dataclass
class SamplingConfig:
    """How captions are sampled. The behaviour logprobs are those of exactly this distribution, and
    the learner computes its logprobs under it too (vlm/sampling.py: temperature, then top-k, then top-p)."""

    temperature: float = 1.0
    # Sample from the k most likely tokens only; 0 = off (the full tempered softmax).
    top_k: int = 0
    # Then from the most likely tokens up to cumulative probability top_p (nucleus); 1 = off.
    top_p: float = 1.0
    max_new_tokens: int = 32

    def __post_init__(self) -> None:
        # vLLM samples greedily below 1e-5 (a distribution no learner logprob describes) and
        # refuses above 2: refused here, naming the key, for both engines alike.
        _check(1e-5 <= self.temperature <= 2, "rollout.sampling.temperature must be in [1e-5, 2]")
        _check(self.top_k >= 0 and 0 < self.top_p <= 1, "rollout.sampling: top_k >= 0 and 0 < top_p <= 1")
        _check(self.max_new_tokens > 0, "rollout.sampling.max_new_tokens must be > 0")


@dataclass
class VllmConfig:
    """vLLM engine settings (used where a role's `engine` is "vllm")."""

    # "float32" makes CPU logprobs match the learner's to ~1e-6; "bfloat16" on GPUs.
    dtype: str = "float32"
    tensor_parallel_size: int = 1
    # KV cache size in bytes; 0 sizes it as a fraction of GPU memory instead (below).
    kv_cache_memory_bytes: int = 64 * 2**20
    gpu_memory_utilization: float = 0.85
    max_model_len: int = 512
    # torch.compile and CUDA graphs: faster on GPUs; off on CPU, where compiling costs more than it saves.
    compile: bool = False
    # Run a synchronous engine (the reasoner's) in the calling process rather than a subprocess.
    single_process: bool = True

    def __post_init__(self) -> None:
        _check(self.tensor_parallel_size >= 1 and self.max_model_len > 0, "vllm: tensor_parallel_size >= 1, max_model_len > 0")
        _check(0 < self.gpu_memory_utilization <= 1, "vllm.gpu_memory_utilization must be in (0, 1]")
        _check(self.kv_cache_memory_bytes >= 0, "vllm.kv_cache_memory_bytes must be >= 0")


ENGINES = ("transformers", "vllm")
# The reasoner may also be any OpenAI-compatible endpoint served elsewhere.
REASONER_ENGINES = (*ENGINES, "openai")
WEIGHT_SYNC_BACKENDS = ("zmq", "gloo", "nccl")


@dataclass
class PlacementConfig:
    """Which nodes of a Ray cluster one role's processes run on (README, "Multi-node")."""

    # Node labels the role's nodes must carry (`ray start --labels=role=rollout`), e.g.
    # {role: rollout}; empty = any node.
    node_labels: dict[str, str] = field(default_factory=dict)
    # Custom resources each of the role's processes takes (`ray start --resources='{"rollout_slot": 2}'`).
    resources: dict[str, float] = field(default_factory=dict)
    # At most this many of the role's processes on one node; 0 = no limit.
    per_node: int = 0

    def __post_init__(self) -> None:
        _check(self.per_node >= 0, "placement.per_node must be >= 0 (0 = no limit)")
        _check(all(v >= 0 for v in self.resources.values()), "placement.resources must be >= 0")


@dataclass
class RolloutConfig:
    """Rollout actors: generate caption groups continuously and send them, scored, to the learner."""

    # Number of rollout actors (Ray actors). One per device: on the bundled 2-core default, one
    # actor making 4 groups a call generated 1.5x the groups per CPU second of two making 2
    # (BENCHMARKS.md, "Pipeline"); on a cluster, one per inference GPU.
    num_actors: int = 1
    # G: captions sampled per prompt (one GRPO group).
    group_size: int = 8
    # Prompts one actor generates for in one engine call (fewer when the staleness gate admits fewer).
    prompts_per_call: int = 4
    # Caption engine: "transformers" or "vllm" (CPU build or GPU).
    engine: str = "transformers"
    vllm: VllmConfig = field(default_factory=VllmConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    # Caption groups an actor may have out for scoring at once while it keeps generating.
    max_groups_scoring: int = 4
    # Tries per group at the reasoner pool before the group is given up as lost (its admission
    # goes back to the staleness gate); the wait before try n+1 is score_retry_backoff_s * 2**n.
    score_attempts: int = 5
    score_retry_backoff_s: float = 0.5
    # Seconds one scoring try may take (a replica that hangs) before it counts as failed and is retried.
    score_timeout_s: float = 300.0
    # Times Ray restarts each actor that died (its process crashed or its node went away); the restarted actor takes the current weights and the prompts not yet delivered. With
    # a broadcast weight sync (gloo, nccl) an actor cannot rejoin the broadcast group, so a
    # death ends the run whatever this says.
    max_restarts: int = 3
    # Logical CPUs reserved per actor; fractional so small machines can schedule every role.
    num_cpus: float = 0.25
    num_gpus: float = 0.0
    # torch intra-op threads per actor.
    torch_threads: int = 1
    # Which nodes the actors run on; per_node = actors per node.
    placement: PlacementConfig = field(default_factory=PlacementConfig)

    def __post_init__(self) -> None:
        _check(self.num_actors >= 1, "rollout.num_actors must be >= 1")
        _check(self.group_size >= 2, "rollout.group_size must be >= 2 (GRPO compares samples within a group)")
        _check(self.prompts_per_call >= 1 and self.max_groups_scoring >= 1, "rollout: prompts_per_call and max_groups_scoring must be >= 1")
        _check(self.score_attempts >= 1 and self.score_retry_backoff_s >= 0, "rollout: score_attempts >= 1, score_retry_backoff_s >= 0")
        _check(self.max_restarts >= 0 and self.score_timeout_s > 0, "rollout: max_restarts >= 0 and score_timeout_s > 0")
        _check(self.engine in ENGINES, f"rollout.engine must be one of {ENGINES}, got {self.engine!r}")


@dataclass
class OpenAIEndpointConfig:
    """An OpenAI-compatible chat endpoint used as the reasoner (serve.engine=openai)."""

    # e.g. http://127.0.0.1:8000/v1 (another `launch.py serve`, a vLLM server).
    base_url: str = ""
    # The model name the endpoint serves.
    model: str = ""
    # Name of the environment variable holding the API key (never the key itself: configs get
    # shared). Unset variable = no key sent.
    api_key_env: str = "REASONER_API_KEY"
    # Seconds one chat completion may take before the scoring call fails (and is retried).
    timeout_s: float = 120.0

    def __post_init__(self) -> None:
        _check(self.timeout_s > 0, "serve.openai.timeout_s must be > 0")


@dataclass
class AutoscalingConfig:
    """Ray Serve autoscaling of the reasoner pool; max_replicas 0 = off (serve.num_replicas fixed)."""

    min_replicas: int = 1
    max_replicas: int = 0
    # Ongoing requests per replica Serve aims for when it adds or removes replicas.
    target_ongoing_requests: float = 8.0

    def __post_init__(self) -> None:
        _check(self.max_replicas == 0 or 1 <= self.min_replicas <= self.max_replicas,
               "serve.autoscaling: need 1 <= min_replicas <= max_replicas (max_replicas 0 = off)")
        _check(self.target_ongoing_requests > 0, "serve.autoscaling.target_ongoing_requests must be > 0")


@dataclass
class ApiConfig:
    """The live service: OpenAI-compatible API, two-stage inference, demo page."""

    # Model id of the pool's reasoner in /v1/models and requests.
    reasoner_model: str = "reasoner"
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
    max_tokens: int = 256
    max_n: int = 8
    max_stop: int = 4
    # Most captions one POST /reasoner request may ask to score.
    max_captions: int = 64
    # Largest request body and decoded image (pixels, width x height; checked before decoding).
    max_body_bytes: int = 8 * 2**20
    max_image_pixels: int = 4096 * 4096
    # http(s) image URLs are fetched only when enabled (else only data: URLs are taken).
    allow_remote_images: bool = False
    # serve.http_host beyond loopback with no token (api_key_env unset) refuses to start unless
    # this is true (a network you trust); configs/exposure.py.
    allow_insecure: bool = False
    # Fair sharing of a replica's engine (serve/engine_queue.py): live jobs in a row before a
    # waiting training job runs, and live jobs waiting beyond which a request gets 429.
    live_burst: int = 4
    max_live_waiting: int = 16
    # Seconds an HTTP request may take before it is answered with an error (a replica that died
    # or hangs mid-request): a caller gets an answer, never a hang.
    request_timeout_s: float = 300.0

    def __post_init__(self) -> None:
        _check(bool(self.reasoner_model), "serve.api.reasoner_model must be a non-empty model id")
        _check(self.two_stage_model != self.reasoner_model, "serve.api: two_stage_model and reasoner_model must differ")
        for name, endpoint in self.reasoners.items():
            _check(name not in (self.reasoner_model, self.two_stage_model), f"serve.api.reasoners.{name}: the id is taken by the pool's own models")
            _check(bool(endpoint.base_url and endpoint.model), f"serve.api.reasoners.{name} needs base_url and model")
        _check(min(self.max_tokens, self.max_n, self.max_captions, self.max_body_bytes, self.max_image_pixels) >= 1 and self.max_stop >= 0,
               "serve.api: max_tokens, max_n, max_captions, max_body_bytes and max_image_pixels must be >= 1")
        _check(self.live_burst >= 1 and self.max_live_waiting >= 1, "serve.api: live_burst and max_live_waiting must be >= 1")
        _check(self.request_timeout_s > 0, "serve.api.request_timeout_s must be > 0")


@dataclass
class ServeConfig:
    """Reasoner pool: a Ray Serve application that answers from captions and grades the answers."""

    # Reasoner engine: "transformers" or "vllm" in the pool's replicas, or "openai": an
    # OpenAI-compatible endpoint served elsewhere (serve.openai), the replicas then only batch and grade.
    engine: str = "transformers"
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
    num_replicas: int = 1
    # Which nodes the replicas run on; per_node = replicas per node (spreads a GPU pool over nodes).
    placement: PlacementConfig = field(default_factory=PlacementConfig)
    # k: reasoner answers sampled per caption; reward = their mean correctness.
    samples_per_caption: int = 1
    # Requests (caption groups) batched into one reasoner call.
    max_batch_size: int = 8
    batch_wait_timeout_s: float = 0.02
    # Reasoner sampling temperature; 0 answers greedily (k copies of one answer).
    temperature: float = 1.0
    max_new_tokens: int = 40
    num_cpus: float = 0.25
    num_gpus: float = 0.0
    torch_threads: int = 1
    # HTTP address of the live service; loopback unless configured otherwise.
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    # Which nodes serve HTTP: "HeadOnly" (http_host is then an address of the head) or
    # "EveryNode" (each node with a replica; http_host must then be 0.0.0.0 or 127.0.0.1).
    proxy_location: str = "HeadOnly"
    # Fault drill: each scoring call fails with this probability before any work (0 = never), to
    # see a run survive failing scoring and count what it lost. Never set it for real training.
    inject_failure_prob: float = 0.0

    def __post_init__(self) -> None:
        _check(self.engine in REASONER_ENGINES, f"serve.engine must be one of {REASONER_ENGINES}, got {self.engine!r}")
        _check(self.engine != "openai" or bool(self.openai.base_url and self.openai.model),
               "serve.engine=openai needs serve.openai.base_url and serve.openai.model")
        _check(1 <= self.http_port <= 65535, "serve.http_port must be in [1, 65535]")
        _check(self.proxy_location in ("HeadOnly", "EveryNode"), "serve.proxy_location must be HeadOnly or EveryNode")
        _check(self.proxy_location == "HeadOnly" or self.http_host in ("0.0.0.0", "127.0.0.1"),
               "serve.proxy_location=EveryNode binds http_host on every node: it must be 0.0.0.0 or 127.0.0.1")
        _check(self.num_replicas >= 1 and self.samples_per_caption >= 1, "serve: num_replicas and samples_per_caption must be >= 1")
        _check(self.temperature >= 0, "serve.temperature must be >= 0 (0 = greedy)")
        _check(self.max_batch_size >= 1 and self.batch_wait_timeout_s >= 0, "serve: max_batch_size >= 1, batch_wait_timeout_s >= 0")
        _check(0 <= self.inject_failure_prob <= 1, "serve.inject_failure_prob must be in [0, 1]")


REWARD_KINDS = ("verifiable", "mcq", "judge")
JUDGE_TARGETS = ("answer", "caption")


@dataclass
class McqRewardConfig:
    """CapRL's multiple-choice reward: questions about the caption's image, answered from the caption."""

    # Questions asked per caption, drawn (seeded) from its record's question set.
    questions_per_caption: int = 3
    # The option every question gains (after its own, shuffled ones), for a caption that does not say.
    cannot_answer: str = "It cannot be answered from the caption."

    def __post_init__(self) -> None:
        _check(self.questions_per_caption >= 1, "reward.mcq.questions_per_caption must be >= 1")
        _check(bool(self.cannot_answer.strip()), "reward.mcq.cannot_answer must be non-empty")


@dataclass
class JudgeRewardConfig:
    """Perception-R1's judge: an LLM grades a response against a reference, "Score: N" (0-10)."""

    # "answer": the reasoner's answers to the prompt's question, against the record's answer;
    # "caption": the caption itself, against the record's reference facts (its `reference`).
    target: str = "answer"
    # The judge: an OpenAI-compatible endpoint (base_url, model, api_key_env); empty base_url =
    # the pool's own reasoner model.
    openai: OpenAIEndpointConfig = field(default_factory=OpenAIEndpointConfig)
    # 0 = greedy.
    temperature: float = 0.0
    # Room for the reply: a judge may reason before its verdict (the bundled one, judging
    # captions, walks the reference's objects and then the caption's invented ones first: up to
    # about 85 tokens when all four cells are wrong); generation stops at the end of the reply.
    max_new_tokens: int = 96

    def __post_init__(self) -> None:
        _check(self.target in JUDGE_TARGETS, f"reward.judge.target must be one of {JUDGE_TARGETS}, got {self.target!r}")
        _check(self.temperature >= 0 and self.max_new_tokens >= 1, "reward.judge: temperature >= 0 and max_new_tokens >= 1")
        _check(not self.openai.base_url or bool(self.openai.model), "reward.judge.openai.base_url needs reward.judge.openai.model")


@dataclass
class ShapingConfig:
    """Terms added to every caption's reward; all off by default (README, "Rewards")."""

    # CapRL's length budget: each caption token beyond `length_budget` costs
    # length_penalty / length_budget (a caption twice the budget loses length_penalty). 0 = off.
    length_budget: int = 0
    length_penalty: float = 0.0
    # Perception-R1's repetition penalty: the share of the caption's word n-grams that repeat an
    # earlier one, times repetition_penalty. n = 0 is off.
    repetition_ngram: int = 0
    repetition_penalty: float = 0.0
    # A caption that does not match this regular expression (as a whole) loses format_penalty. "" = off.
    # Matched with the `regex` package under a time bound (serve/rewards.py): a caption on which
    # the pattern backtracks past it counts as out of format.
    format_pattern: str = ""
    format_penalty: float = 0.0

    def __post_init__(self) -> None:
        _check(min(self.length_budget, self.repetition_ngram) >= 0, "reward.shaping: length_budget and repetition_ngram must be >= 0")
        _check(min(self.length_penalty, self.repetition_penalty, self.format_penalty) >= 0, "reward.shaping: penalties must be >= 0")
        if self.format_pattern:
            # Compiled by the engine that will match it (the `regex` package, not `re`).
            import regex

            try:
                regex.compile(self.format_pattern, regex.DOTALL)
            except regex.error as err:
                raise ValueError(f"reward.shaping.format_pattern is not a regular expression: {err}") from None


@dataclass
class RewardConfig:
    """What a caption is rewarded for (README, "Rewards"): computed by the reasoner pool."""

    # "verifiable": the reasoner's answer to the prompt's question, graded against its answer
    # (RACRO); "mcq": its answers to multiple-choice questions about the image (CapRL);
    # "judge": an LLM's grade of the answer (or of the caption) against a reference (Perception-R1).
    kind: str = "verifiable"
    # Several kinds mixed: each kind's weight, e.g. {verifiable: 0.5, mcq: 0.5}; empty = `kind` alone.
    weights: dict[str, float] = field(default_factory=dict)
    mcq: McqRewardConfig = field(default_factory=McqRewardConfig)
    judge: JudgeRewardConfig = field(default_factory=JudgeRewardConfig)
    shaping: ShapingConfig = field(default_factory=ShapingConfig)

    def __post_init__(self) -> None:
        _check(self.kind in REWARD_KINDS, f"reward.kind must be one of {REWARD_KINDS}, got {self.kind!r}")
        unknown = [k for k in self.weights if k not in REWARD_KINDS]
        _check(not unknown, f"reward.weights: unknown kind(s) {unknown} (kinds: {REWARD_KINDS})")
        _check(all(w >= 0 for w in self.weights.values()) and (not self.weights or sum(self.weights.values()) > 0),
               "reward.weights must be >= 0 with a positive sum")

    def mix(self) -> dict[str, float]:
        """Each kind in the reward and its weight, the weights scaled to sum to 1 (so a reward
        before shaping stays in [0, 1], as the wire requires)."""
        if not self.weights:
            return {self.kind: 1.0}
        total = sum(self.weights.values())
        return {k: w / total for k, w in self.weights.items() if w > 0}


@dataclass
class ReplayConfig:
    """The learner's replay queue: a ZeroMQ PULL socket the actors connect to."""

    # Bind address; loopback by default. Set to an interface address (or 0.0.0.0) for multi-node.
    host: str = "127.0.0.1"
    # A host beyond loopback without curve.keys_dir refuses to start unless this is true.
    allow_insecure: bool = False
    # 0 picks a free port. Only learner rank 0 binds; it hands the other ranks their share.
    port: int = 0
    # Scored groups held in memory; beyond it the socket stops reading and actors block.
    capacity_groups: int = 32
    # And their encoded bytes (large images make a group large): whichever bound is reached first.
    capacity_bytes: int = 256 * 2**20
    # A frame larger than this is refused by ZeroMQ before it is buffered (the sender is
    # disconnected, and a real actor reconnects); no group of a real run comes near it.
    max_frame_bytes: int = 64 * 2**20

    def __post_init__(self) -> None:
        _check(self.capacity_groups >= 1 and self.capacity_bytes >= 1, "learner.replay: capacity_groups and capacity_bytes must be >= 1")
        _check(self.max_frame_bytes >= 2**16, "learner.replay.max_frame_bytes must be >= 65536")


CORRECTION_KINDS = ("none", "tis", "mask", "decoupled")


@dataclass
class CorrectionConfig:
    """How a token sampled by an older policy counts in the update (learner/corrections.py).

    pi_b: the policy that sampled the token; pi_prox: the learner's weights before the step.
    none: PPO clip of pi / pi_b. The others clip pi / pi_prox and weight each token by
    tis: min(pi_prox / pi_b, tis_cap); mask: 1 if mask_low <= pi_prox / pi_b <= mask_high, else 0;
    decoupled (AReaL): pi_prox / pi_b, or 0 above decoupled_cap.
    """

    kind: str = "none"
    # For negative advantages a token's loss is at most -A * dual_clip, so a stale token with a
    # huge ratio cannot dominate a batch (every kind). 0 = off, else > 1 + learner.clip_high.
    dual_clip: float = 3.0
    tis_cap: float = 2.0
    mask_low: float = 0.5
    mask_high: float = 2.0
    decoupled_cap: float = 5.0

    def __post_init__(self) -> None:
        _check(self.kind in CORRECTION_KINDS, f"learner.correction.kind must be one of {', '.join(CORRECTION_KINDS)}, got {self.kind!r}")
        _check(self.tis_cap >= 1 and self.decoupled_cap >= 1, "learner.correction: tis_cap and decoupled_cap must be >= 1")
        _check(0 <= self.mask_low <= 1 <= self.mask_high, "learner.correction: need 0 <= mask_low <= 1 <= mask_high")


@dataclass
class WeightSyncConfig:
    """How new policy versions reach the actors."""

    # "zmq": raw tensor buffers over a ZeroMQ PUB socket, to any engine; the learner never waits.
    # "nccl" (GPUs) / "gloo" (CPUs): broadcast from learner rank 0 straight into every vLLM
    # engine's workers (rollout.engine=vllm); each publish waits until all engines have loaded it.
    backend: str = "zmq"
    # Where rank 0 binds its socket (and, for broadcasts, hosts the group): a cluster-reachable
    # address for multi-node runs.
    host: str = "127.0.0.1"
    port: int = 0
    # A host beyond loopback without curve.keys_dir refuses to start unless this is true.
    allow_insecure: bool = False
    # Publish after every k-th learner step.
    every_steps: int = 1
    # Broadcasts: seconds to wait for the actors to join, and to acknowledge each update.
    timeout_s: float = 300.0

    def __post_init__(self) -> None:
        _check(self.backend in WEIGHT_SYNC_BACKENDS, f"learner.weight_sync.backend must be one of {WEIGHT_SYNC_BACKENDS}, got {self.backend!r}")
        _check(self.every_steps >= 1, "learner.weight_sync.every_steps must be >= 1")
        _check(self.timeout_s > 0, "learner.weight_sync.timeout_s must be > 0")


@dataclass
class LearnerConfig:
    """GRPO learner under DeepSpeed."""

    # Data-parallel ranks (Ray actors, one DeepSpeed process each).
    num_ranks: int = 1
    total_steps: int = 200
    # Caption groups per learner step (split evenly across ranks).
    groups_per_step: int = 8
    # Caption groups in one forward and backward pass (a micro-batch): more uses more memory
    # (activations grow with it) and fewer, larger passes; the gradient is the same.
    groups_per_micro_batch: int = 1
    lr: float = 3e-4
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    # PPO clip range of the importance ratio (against pi_b or pi_prox: see CorrectionConfig).
    clip_low: float = 0.2
    clip_high: float = 0.2
    # Coefficient of the low-variance KL to the frozen initial policy; 0 builds no reference.
    kl_coef: float = 0.0
    # eta: max versions between a sample's generation and its use; 0 = synchronous on-policy.
    max_staleness: int = 2
    # Drop groups whose rewards are all equal (zero advantage, no signal).
    drop_uniform_groups: bool = False
    # Divide advantages by the group's reward std (GRPO) or only centre them.
    scale_advantages: bool = True
    freeze_vision: bool = True
    zero_stage: int = 1
    # "fp32" | "bf16"
    dtype: str = "fp32"
    # Save a DeepSpeed checkpoint every k steps (0 = only at the end).
    checkpoint_every: int = 0
    # Write every k-th step's caption groups (prompt, captions, rewards, answers, versions) to
    # rollouts.jsonl in the run directory (0 = never).
    rollout_log_every: int = 1
    num_cpus: float = 0.5
    num_gpus: float = 0.0
    torch_threads: int = 1
    # Which nodes the ranks run on; per_node = ranks per node.
    placement: PlacementConfig = field(default_factory=PlacementConfig)
    # Seconds to wait for a batch before reporting a stall.
    batch_timeout_s: float = 300.0
    correction: CorrectionConfig = field(default_factory=CorrectionConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    weight_sync: WeightSyncConfig = field(default_factory=WeightSyncConfig)

    def __post_init__(self) -> None:
        _check(self.num_ranks >= 1, "learner.num_ranks must be >= 1")
        _check(self.total_steps >= 1 and self.lr > 0, "learner: total_steps >= 1 and lr > 0")
        _check(self.groups_per_step % self.num_ranks == 0, "learner.groups_per_step must be a multiple of learner.num_ranks")
        _check(self.groups_per_micro_batch >= 1, "learner.groups_per_micro_batch must be >= 1")
        _check(self.max_staleness >= 0, "learner.max_staleness must be >= 0")
        _check(self.kl_coef >= 0 and 0 < self.clip_low < 1 and self.clip_high > 0, "learner: kl_coef >= 0, 0 < clip_low < 1, clip_high > 0")
        dual = self.correction.dual_clip
        _check(dual == 0 or dual > 1 + self.clip_high, "learner.correction.dual_clip must be 0 (off) or > 1 + learner.clip_high")
        _check(self.zero_stage in (0, 1, 2, 3), "learner.zero_stage must be 0, 1, 2 or 3")
        _check(self.dtype in ("fp32", "bf16"), "learner.dtype must be 'fp32' or 'bf16'")
        _check(self.checkpoint_every >= 0 and self.rollout_log_every >= 0, "learner: checkpoint_every and rollout_log_every must be >= 0")


@dataclass
class EvalConfig:
    """Evaluation: held-out accuracy of a run's captioner, and benchmarks in the paper's three modes (`launch.py eval`)."""

    # Evaluate the initial and the trained captioner when a training run ends.
    at_end: bool = True
    # While training: the weights published at every this many learner steps (and the initial
    # and final ones) are evaluated on a fixed held-out subset by an evaluator with engines of its
    # own, beside training (0 = off). 25: a default run (200 steps) gets 9 points.
    every_steps: int = 25
    # That subset: the eval split's first prompts, captions sampled per prompt.
    subset_prompts: int = 64
    subset_samples: int = 2
    # Captions sampled per held-out prompt (rollout sampling settings), one answer each.
    samples_per_prompt: int = 4
    # 0 = every prompt of the eval split.
    max_prompts: int = 0
    prompts_per_batch: int = 16
    # `launch.py eval data=PATH out=DIR`: a benchmark file (MathVista .json, VLMEvalKit .tsv)
    # and the folder its results go to (README, "Your own data").
    data: str = ""
    out: str = ""
    # The paper's three modes: the captioner answering itself ("direct"), caption -> reasoner
    # ("caption"), and caption + the captioner's tentative answer -> reasoner ("two_stage").
    modes: list[str] = field(default_factory=lambda: ["direct", "caption", "two_stage"])
    # Captioner checkpoint for data=: "" = models.captioner (or the bundled one).
    captioner: str = ""
    # Reasoners that answer from the same captions, by name, e.g. eval.reasoners.big=/ckpt/72B;
    # empty = models.reasoner (or the bundled one) as "reasoner".
    reasoners: dict[str, str] = field(default_factory=dict)
    # Where captioner outputs are cached by (captioner, prompt, seed); "" = task.cache_dir/captions.
    caption_cache: str = ""
    # Tokens the captioner may write per caption or answer on a benchmark; 0 = rollout.sampling.max_new_tokens.
    max_new_tokens: int = 0

    def __post_init__(self) -> None:
        _check(self.samples_per_prompt >= 1 and self.prompts_per_batch >= 1, "eval: samples_per_prompt and prompts_per_batch must be >= 1")
        _check(self.max_prompts >= 0 and self.max_new_tokens >= 0, "eval: max_prompts and max_new_tokens must be >= 0")
        _check(self.every_steps >= 0, "eval.every_steps must be >= 0 (0 = no evaluation while training)")
        _check(self.subset_prompts >= 1 and self.subset_samples >= 1, "eval: subset_prompts and subset_samples must be >= 1")
        modes = ("direct", "caption", "two_stage")
        _check(bool(self.modes) and all(m in modes for m in self.modes), f"eval.modes must be a non-empty list of {modes}, got {self.modes}")
        _check(all(bool(path) for path in self.reasoners.values()), "eval.reasoners: every reasoner needs a checkpoint")


@dataclass
class BenchConfig:
    """`launch.py bench`: synchronous and asynchronous training and each stage alone, on one config.

    Each role's processes are pinned to its cores, so that roles on different cores model
    separate devices (as on a cluster) and a stage measured alone gets what it gets in the
    pipeline. Cores are given as "0" or "0,1"; every core must exist on this machine.
    """

    # Learner steps before measuring (the first steps pay for warm-up), then steps measured.
    warmup_steps: int = 5
    steps: int = 30
    learner_cores: str = "0"
    rollout_cores: str = "1"
    serve_cores: str = "1"
    # Train with a vanishing learning rate (every computation and weight push unchanged), so
    # that every phase does the same work per group: a policy that learns changes its captions
    # (the bundled task's grow from ~10 to ~24 tokens), and with them the cost of the later steps.
    hold_policy: bool = True
    # The unpinned asynchronous run once more with evaluation while training every this many steps,
    # to measure what it costs the run's throughput (0 = not measured). Shorter than a default
    # run's eval.every_steps so that the measured steps hold several evaluations.
    eval_every_steps: int = 10
    # Also write the table into this checkout's BENCHMARKS.md.
    record: bool = False

    def __post_init__(self) -> None:
        _check(self.warmup_steps >= 1 and self.steps >= 2, "bench: warmup_steps >= 1 and steps >= 2")
        _check(self.eval_every_steps >= 0, "bench: eval_every_steps >= 0")
        for role in ("learner", "rollout", "serve"):
            _check(bool(parse_cores(getattr(self, f"{role}_cores"))), f"bench.{role}_cores must name cores, e.g. '0' or '0,1'")


def parse_cores(text: str) -> tuple[int, ...]:
    """'0,2' -> (0, 2); anything else than non-negative integers -> ()."""
    parts = [p.strip() for p in str(text).split(",")]
    return tuple(int(p) for p in parts) if all(p.isdigit() for p in parts) else ()


@dataclass
class SoakConfig:
    """`launch.py soak out=PATH`: train the configured run for a fixed time while faults are injected."""

    # The soak's run directory (soak.json, summary.json and the run's own files).
    out: str = ""
    duration_s: float = 300.0
    # Seconds into the soak of the first fault; then each kind at its own interval (0 = never).
    first_fault_s: float = 45.0
    actor_kill_every_s: float = 100.0
    replica_kill_every_s: float = 100.0
    garbage_every_s: float = 30.0
    # Plausible groups with one defect each, one of every class the replay queue refuses
    # (learner/admission.py), sent to it at this interval.
    poison_every_s: float = 30.0
    # Also write the soak's table into this checkout's BENCHMARKS.md ("Reliability").
    record: bool = False

    def __post_init__(self) -> None:
        _check(self.duration_s > 0 and self.first_fault_s >= 0, "soak: duration_s > 0 and first_fault_s >= 0")
        _check(
            min(self.actor_kill_every_s, self.replica_kill_every_s, self.garbage_every_s, self.poison_every_s) >= 0,
            "soak: the *_every_s intervals must be >= 0 (0 = never)",
        )


@dataclass
class CurveConfig:
    """ZeroMQ CURVE (encryption, and only known actors admitted) on the replay and weight sockets."""

    # A directory made by `python launch.py keys out=DIR` and readable on every node; empty = off
    # (loopback needs none). It holds the secret keys: keep it out of the repository and configs.
    keys_dir: str = ""


@dataclass
class RayConfig:
    """Where the roles run."""

    # Empty starts a local Ray; "auto" or "host:port" joins an existing cluster.
    address: str = ""
    # Logical CPUs of a local Ray (empty = detected).
    num_cpus: int | None = None
    # Seconds the roles' processes may take to be placed on nodes and start (models loaded)
    # before the run stops, naming the role still waiting and what it asked for.
    start_timeout_s: float = 900.0


POLICY_ROLES = ("captioner", "reasoner")


@dataclass
class PolicyConfig:
    """Which model learns (README, "Rewards and recipes"); the other is frozen and served by the pool."""

    # "captioner": the captioner learns from the frozen reasoner's grades (RACRO, CapRL).
    # "reasoner": the reasoner learns to answer from the frozen captioner's captions, the pool
    # serving the captioner and grading the answers (PRA-GRPO's second stage).
    role: str = "captioner"
    # `python launch.py alternate`: the roles trained in turn, each stage starting from the
    # latest checkpoint of both models (the exported one of the stage before), e.g.
    # [captioner, reasoner]. Each stage runs learner.total_steps steps.
    stages: list[str] = field(default_factory=lambda: ["captioner", "reasoner"])

    def __post_init__(self) -> None:
        _check(self.role in POLICY_ROLES, f"policy.role must be one of {POLICY_ROLES}, got {self.role!r}")
        unknown = [r for r in self.stages if r not in POLICY_ROLES]
        _check(bool(self.stages) and not unknown, f"policy.stages must be a non-empty list of {POLICY_ROLES}, got {self.stages}")


@dataclass
class TrainConfig:
    """A whole run."""

    # Where the run writes metrics, TensorBoard logs, checkpoints and the exported captioner.
    # Empty = runs/<timestamp>.
    run_dir: str = ""
    # A run directory to continue from its latest checkpoint (`python launch.py resume=RUN_DIR`):
    # its config.yaml is the config, and the command line may change keys of it.
    resume: str = ""
    # The run's seed: every random choice of the run (prompt order, caption sampling in every
    # actor, reasoner sampling, the learner, the evaluation) is derived from it (configs/seeds.py).
    seed: int = 0
    task: TaskConfig = field(default_factory=TaskConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)
    soak: SoakConfig = field(default_factory=SoakConfig)
    curve: CurveConfig = field(default_factory=CurveConfig)
    ray: RayConfig = field(default_factory=RayConfig)

    def __post_init__(self) -> None:
        if self.task.kind == "files":
            # Your data, so your checkpoints: never a silent fall back to the bundled tiny models.
            for role in ("captioner", "reasoner"):
                _check(
                    bool(getattr(self.models, role)),
                    f"models.{role} is empty: task.kind=files needs your checkpoint (the bundled tiny models "
                    "come only with task.kind=bundled)",
                )
            _check(not self.eval.at_end or bool(self.task.eval_file), "task.eval_file is required when task.kind=files and eval.at_end")
        if self.policy.role == "reasoner":
            mix = self.reward.mix()
            _check("mcq" not in mix, "reward.kind=mcq rewards captions: it needs policy.role=captioner")
            _check(
                "judge" not in mix or self.reward.judge.target == "answer",
                "policy.role=reasoner: the judge grades the reasoner's answers (reward.judge.target=answer)",
            )
        broadcast = self.learner.weight_sync.backend != "zmq"
        _check(
            not broadcast or self.rollout.engine == "vllm",
            f"learner.weight_sync.backend={self.learner.weight_sync.backend} broadcasts into vLLM engines: "
            "it needs rollout.engine=vllm",
        )
        _check(
            self.learner.weight_sync.backend != "nccl" or (self.learner.num_gpus > 0 and self.rollout.num_gpus > 0),
            "learner.weight_sync.backend=nccl broadcasts between GPUs: it needs learner.num_gpus and rollout.num_gpus > 0",
        )
