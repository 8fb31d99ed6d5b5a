"""The evaluation's captioner and reasoner as Ray actors, built by the roles' own engine factories
and placed as the roles are: on a GPU config they are vLLM engines on GPUs, like training's."""

from __future__ import annotations

from pathlib import Path

import ray
import torch

from actors.engine import (
    CaptionRequest,
    SamplingSettings,
    engine_device,
)
from actors.engine_factory import make_caption_engine
from configs.placement import ray_options
from configs.schema import RolloutConfig, ServeConfig
from learner.weight_publisher import weight_update
from records.vqa import load_image, read_records
from serve.completion import CompletionParams
from serve.grading import grade_answer
from serve.reasoner_engines import make_reasoner
from vlm.caption_prompt import answer_messages, caption_messages, encode_image_prompt


class CaptionWorker:
    """A captioner engine over the records of `records_file`, as a rollout actor builds one."""

    def __init__(self, config: RolloutConfig, checkpoint: str, records_file: str, seed: int):
        torch.set_num_threads(config.torch_threads)
        self.engine = make_caption_engine(config.engine, checkpoint, config.vllm, seed, engine_device(config.num_gpus))
        self.records = read_records(Path(records_file))
        self.root = Path(records_file).parent

    async def captions(
        self, indices: list[int], sampling: SamplingSettings, kind: str = "caption"
    ) -> list[list[tuple[str, int]]]:
        """(text, token count) of `sampling.n` generations for each record in `indices`: captions,
        or with kind="answer" the captioner's own step-by-step answers."""
        messages = caption_messages if kind == "caption" else answer_messages
        requests = [
            CaptionRequest(
                r.id, encode_image_prompt(self.engine.processor, messages(r.question), load_image(r, self.root))
            )
            for r in (self.records[i] for i in indices)
        ]
        groups = await self.engine.generate(requests, sampling)
        return [[(sample.text, len(sample.token_ids)) for sample in group] for group in groups]

    async def load_published(self, version: int, tensors: dict[str, torch.Tensor]) -> None:
        """Load the weights the learner published as `version` (evaluation while training), as an
        actor's engine loads an update."""
        await self.engine.update_weights(weight_update(version, tensors))

    def policy_version(self) -> int:
        return self.engine.policy_version

    async def close(self) -> None:
        self.engine.close()


class ReasonerWorker:
    """A reasoner engine, as a replica of the reasoner pool builds one, grading one answer per caption."""

    def __init__(self, config: ServeConfig, checkpoint: str, seed: int):
        torch.set_num_threads(config.torch_threads)
        torch.manual_seed(seed)
        self.config = config
        self.engine = make_reasoner(config, checkpoint, seed)

    def grades(self, captions: list[str], questions: list[str], answers: list[str]) -> list[float]:
        """1.0 where the reasoner, reading the caption, answers the question right, else 0.0."""
        replies = self.engine.answer(
            list(zip(captions, questions)), 1, self.config.temperature, self.config.max_new_tokens
        )
        return [grade_answer(reply, answer, question=q) for (reply,), answer, q in zip(replies, answers, questions)]

    def replies(self, conversations: list[list[dict]]) -> list[str]:
        """One reply to each conversation, sampled as the pool samples its answers."""
        params = CompletionParams(temperature=self.config.temperature, max_tokens=self.config.max_new_tokens)
        return [result.choices[0].text for result in self.engine.complete(conversations, params)]

    def close(self) -> None:
        self.engine.close()


class CaptionWorkerHandle:
    """A `CaptionWorker`'s remote surface; `actor` for placement and `ray.kill`."""

    def __init__(self, actor):
        self.actor = actor

    def captions_ref(self, indices: list[int], sampling: SamplingSettings, kind: str = "caption") -> ray.ObjectRef:
        """-> `CaptionWorker.captions`: a reference, so that the next batch generates while one is graded."""
        return self.actor.captions.remote(indices, sampling, kind)

    def captions(
        self, indices: list[int], sampling: SamplingSettings, kind: str = "caption"
    ) -> list[list[tuple[str, int]]]:
        return ray.get(self.captions_ref(indices, sampling, kind))

    def load_published(self, version: int, tensors: ray.ObjectRef) -> None:
        """Load the published weights `tensors` (a reference: Ray hands the tensors to the actor)."""
        ray.get(self.actor.load_published.remote(version, tensors))

    def policy_version(self) -> int:
        return ray.get(self.actor.policy_version.remote())

    def close(self) -> None:
        """Close the engine, then end the actor: its memory (a GPU's, on GPU configs) goes back now."""
        try:
            ray.get(self.actor.close.remote())
        finally:
            ray.kill(self.actor)


class ReasonerWorkerHandle:
    """A `ReasonerWorker`'s remote surface; `actor` for placement and `ray.kill`."""

    def __init__(self, actor):
        self.actor = actor

    def grades(self, captions: list[str], questions: list[str], answers: list[str]) -> list[float]:
        return ray.get(self.actor.grades.remote(captions, questions, answers))

    def replies(self, conversations: list[list[dict]]) -> list[str]:
        return ray.get(self.actor.replies.remote(conversations))

    def close(self) -> None:
        try:
            ray.get(self.actor.close.remote())
        finally:
            ray.kill(self.actor)


def start_caption_worker(config: RolloutConfig, checkpoint: str, records_file: str, seed: int) -> CaptionWorkerHandle:
    # On the nodes the rollout actors use (their labels and resources; no per-node plan).
    options = ray_options(config.num_cpus, config.num_gpus, config.placement)
    return CaptionWorkerHandle(
        ray.remote(CaptionWorker).options(**options).remote(config, checkpoint, records_file, seed)
    )


def start_reasoner_worker(config: ServeConfig, checkpoint: str, seed: int) -> ReasonerWorkerHandle:
    options = ray_options(config.num_cpus, config.num_gpus, config.placement)
    return ReasonerWorkerHandle(ray.remote(ReasonerWorker).options(**options).remote(config, checkpoint, seed))
