"""Chat completions on the pool: the reasoner model, and the two-stage model (captioner, then reasoner).

Every engine call goes through the replica's EngineQueue as a live job, so people are served
ahead of training's backlog (serve/engine_queue.py says how fairly).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import openai
from starlette.responses import JSONResponse, Response, StreamingResponse

from configs.schema import ApiConfig
from coordination.handles import CaptionServiceHandle
from serve.api_images import check_image, image_bytes
from serve.api_protocol import (
    STREAM_END,
    ApiError,
    ChatRequest,
    chat_completion,
    chunk,
    error_event,
    images_of,
    internal_error,
    model_card,
    new_completion_id,
    text_of,
    usage,
)
from serve.completion import (
    CompletionParams,
    Completions,
    Conversation,
    ReasonerEngine,
    TextSink,
)
from serve.engine_queue import EngineBusy, EngineQueue
from serve.openai_reasoner import OpenAIReasoner
from vlm.reasoner_prompt import two_stage_messages
from wire.inference import DescribeRequest, Description


class ChatService:
    def __init__(
        self,
        api: ApiConfig,
        engine: ReasonerEngine,
        queue: EngineQueue,
        captioner: CaptionServiceHandle | None,
        default_max_tokens: int,
    ):
        self.api, self.engine, self.queue, self.captioner = api, engine, queue, captioner
        self.default_max_tokens = min(default_max_tokens, api.max_tokens)
        # Reasoners served elsewhere, by model id: called directly, they never hold this replica's engine.
        self.remote: dict[str, ReasonerEngine] = {
            name: OpenAIReasoner(endpoint) for name, endpoint in api.reasoners.items()
        }

    def models(self) -> dict[str, Any]:
        cards = [model_card(name, "reasoner") for name in (self.api.reasoner_model, *self.remote)]
        if self.captioner is not None:
            cards.append(model_card(self.api.two_stage_model, "two-stage"))
        return {"object": "list", "data": cards}

    async def respond(self, chat: ChatRequest) -> Response:
        params = self._params(chat)
        feed = StreamFeed() if chat.stream else None
        on_text = feed.text if feed else None
        if chat.model == self.api.reasoner_model or chat.model in self.remote:
            conversation = reasoner_conversation(chat)
            await self._check_context(chat.model, conversation, params)
            stages = self._reasoner_stages(chat.model, conversation, params, on_text)
        elif chat.model == self.api.two_stage_model and self.captioner is not None:
            reasoner = chat.reasoner or self.api.reasoner_model
            # Decoding and checking the image takes a while: off the event loop.
            question, image = await asyncio.to_thread(self._image_question, chat)
            stages = self._two_stage(reasoner, question, image, chat.seed, params, on_text)
        else:
            raise ApiError(
                404,
                f"model {chat.model!r} does not exist; GET /v1/models lists them",
                param="model",
                code="model_not_found",
            )
        if feed is not None:
            include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
            return StreamingResponse(
                self._events(chat.model, stages, feed, include_usage), media_type="text/event-stream"
            )
        return JSONResponse(await self._whole(chat.model, stages))

    def _params(self, chat: ChatRequest) -> CompletionParams:
        api = self.api
        params = chat.params(self.default_max_tokens)
        if params.max_tokens > api.max_tokens:
            raise ApiError(
                400,
                f"max_tokens {params.max_tokens} is over this server's limit of {api.max_tokens} "
                "(serve.api.max_tokens)",
                param="max_tokens",
            )
        if params.n > api.max_n:
            raise ApiError(400, f"n {params.n} is over this server's limit of {api.max_n} (serve.api.max_n)", param="n")
        if len(params.stop) > api.max_stop:
            raise ApiError(400, f"{len(params.stop)} stop strings, at most {api.max_stop} allowed", param="stop")
        if chat.reasoner not in (None, api.reasoner_model, *self.remote):
            raise ApiError(
                404,
                f"reasoner {chat.reasoner!r} does not exist; GET /v1/models lists the reasoners",
                param="reasoner",
                code="model_not_found",
            )
        return params

    async def _check_context(self, reasoner: str, conversation: Conversation, params: CompletionParams) -> None:
        engine = self.remote.get(reasoner, self.engine)  # a remote one knows neither: its server checks
        # Tokenizing a long message takes seconds (4 MB: 6 s): off the event loop.
        prompt, limit = await asyncio.to_thread(engine.prompt_tokens, conversation), engine.max_context
        if prompt is not None and limit and prompt + params.max_tokens > limit:
            raise ApiError(
                400,
                f"the prompt's {prompt} tokens plus max_tokens {params.max_tokens} exceed the model's context of "
                f"{limit} tokens",
                param="messages",
                code="context_length_exceeded",
            )

    async def _complete(
        self, reasoner: str, conversation: Conversation, params: CompletionParams, on_text: TextSink | None
    ) -> Completions:
        if reasoner in self.remote:
            try:
                return (await asyncio.to_thread(self.remote[reasoner].complete, [conversation], params))[0]
            except openai.APIError as err:
                raise ApiError(
                    502, f"reasoner {reasoner!r} failed: {err}", kind="server_error", code="upstream_error"
                ) from None
        try:
            return (await self.queue.live(lambda: self.engine.complete([conversation], params, on_text)))[0]
        except EngineBusy as err:
            raise ApiError(429, str(err), kind="rate_limit_error", code="rate_limit_exceeded") from None

    async def _reasoner_stages(
        self, reasoner: str, conversation: Conversation, params: CompletionParams, on_text: TextSink | None = None
    ) -> AsyncIterator[tuple[str, Any]]:
        yield "answer", await self._complete(reasoner, conversation, params, on_text)

    async def _two_stage(
        self,
        reasoner: str,
        question: str,
        image: bytes,
        seed: int | None,
        params: CompletionParams,
        on_text: TextSink | None = None,
    ) -> AsyncIterator[tuple[str, Any]]:
        description: Description = await self.captioner.describe(DescribeRequest(image, question, seed))
        yield "description", description
        conversation = two_stage_messages(description.caption, question, description.tentative_answer)
        await self._check_context(reasoner, conversation, params)
        yield "answer", await self._complete(reasoner, conversation, params, on_text)

    async def infer(self, question: str, image: bytes, seed: int | None) -> dict[str, str]:
        """The two-stage inference of one image and question, greedy: caption, tentative answer, answer."""
        if self.captioner is None:
            raise ApiError(404, "no captioner is deployed (serve.api.two_stage_model is empty)")
        await asyncio.to_thread(check_image, image, self.api.max_image_pixels)
        greedy = CompletionParams(temperature=0, max_tokens=self.default_max_tokens)
        stages = [v async for _, v in self._two_stage(self.api.reasoner_model, question, image, seed, greedy)]
        description, answer = stages
        return {
            "caption": description.caption,
            "tentative_answer": description.tentative_answer,
            "answer": answer.choices[0].text,
        }

    def _image_question(self, chat: ChatRequest) -> tuple[str, bytes]:
        user = [m for m in chat.messages if m.role == "user"]
        images = images_of(user[-1]) if user else []
        question = text_of(user[-1]).strip() if user else ""
        if len(images) != 1 or not question:
            raise ApiError(
                400,
                f"model {chat.model!r} takes a last user message with one image_url part and the question as text",
                param="messages",
            )
        api = self.api
        return question, image_bytes(images[0], api.max_image_pixels, api.max_body_bytes, api.allow_remote_images)

    async def _whole(self, model: str, stages: AsyncIterator[tuple[str, Any]]) -> dict[str, Any]:
        description = None
        async for kind, value in stages:
            if kind == "description":
                description = value
        extra = (
            {}
            if description is None
            else {"caption": description.caption, "tentative_answer": description.tentative_answer}
        )
        tokens = (0, 0) if description is None else (description.prompt_tokens, description.completion_tokens)
        return chat_completion(new_completion_id(), model, value, *tokens, **extra)

    async def _events(
        self, model: str, stages: AsyncIterator[tuple[str, Any]], feed: StreamFeed, include_usage: bool
    ) -> AsyncIterator[str]:
        """Each stage's output as it comes: the caption and tentative answer when the captioner is
        done (two-stage), the answer's text as it is generated where the engine streams (else
        when it is done), every choice's finish; usage last when asked for."""
        cid, prompt_tokens, completion_tokens, sent = new_completion_id(), 0, 0, ""
        yield chunk(cid, model, [(0, {"role": "assistant", "content": ""}, None)])
        running = asyncio.ensure_future(feed.run(stages))
        try:
            while (item := await feed.items.get())[0] != "end":
                kind, value = item
                if kind == "text":
                    sent += value
                    yield chunk(cid, model, [(0, {"content": value}, None)])
                elif kind == "error":
                    yield error_event(
                        value
                        if isinstance(value, ApiError)
                        else internal_error(f"/v1/chat/completions ({model}, streamed)", value)
                    )
                elif kind == "description":
                    prompt_tokens, completion_tokens = (
                        prompt_tokens + value.prompt_tokens,
                        completion_tokens + value.completion_tokens,
                    )
                    yield chunk(
                        cid, model, [(0, {"caption": value.caption, "tentative_answer": value.tentative_answer}, None)]
                    )
                else:
                    prompt_tokens, completion_tokens = (
                        prompt_tokens + value.prompt_tokens,
                        completion_tokens + value.completion_tokens,
                    )
                    for i, choice in enumerate(value.choices):
                        rest = choice.text[len(sent) :] if i == 0 and choice.text.startswith(sent) else choice.text
                        if rest:
                            yield chunk(cid, model, [(i, {"content": rest}, None)])
                        yield chunk(cid, model, [(i, {}, choice.finish_reason)])
        finally:
            running.cancel()  # the client went away: stop following the stages
        if include_usage:
            yield chunk(cid, model, [], usage(prompt_tokens, completion_tokens))
        yield STREAM_END


class StreamFeed:
    """What a streamed response sends, in order: text pieces from the engine's worker thread as
    they are generated, then each finished stage. Both reach one queue through the event loop
    in the order they happened (a job's pieces are handed over before its result)."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.items: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def text(self, piece: str) -> None:
        self.loop.call_soon_threadsafe(self.items.put_nowait, ("text", piece))

    async def run(self, stages: AsyncIterator[tuple[str, Any]]) -> None:
        try:
            async for kind, value in stages:
                await self.items.put((kind, value))
        except Exception as err:  # noqa: BLE001 - the stream has begun: the failure goes out as an event
            await self.items.put(("error", err))
        await self.items.put(("end", None))


def reasoner_conversation(chat: ChatRequest) -> Conversation:
    """The request's messages as the reasoner's chat template takes them: text only."""
    if any(images_of(m) for m in chat.messages):
        raise ApiError(
            400, f"model {chat.model!r} reads text only; send images to the two-stage model", param="messages"
        )
    return [{"role": "system" if m.role == "developer" else m.role, "content": text_of(m)} for m in chat.messages]
