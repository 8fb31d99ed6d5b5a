"""The OpenAI chat-completions protocol as the pool speaks it: requests in, responses and errors out.

Responses are the `openai` package's own types (ChatCompletion, ChatCompletionChunk, Model), so
what we send is what the official client parses. Requests are written here: the package types
them as TypedDicts for its client, which validate nothing. vLLM's protocol models would validate,
but importing them loads vLLM (and torch) into the HTTP path, and the transformers backend must
serve without vLLM installed; Ray Serve's LLM components serve vLLM engines only.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any, Literal

from openai.types import CompletionUsage, Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessage
from openai.types.chat.chat_completion import Choice
from openai.types.chat.chat_completion_chunk import Choice as ChunkChoice
from openai.types.chat.chat_completion_chunk import ChoiceDelta
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request

from serve.completion import CompletionParams, Completions

log = logging.getLogger(__name__)

OWNER = "caption-reward-rl"


class ApiError(Exception):
    """An error the client caused or must hear about, in OpenAI's error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        kind: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.kind, self.param, self.code = status, message, kind, param, code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


def internal_error(path: str, error: BaseException | None = None) -> ApiError:
    """A 500 for `error` (default: the one being handled): logged with its traceback under a new
    error id, which is all the client hears (exception text can name files, models, keys)."""
    error_id = uuid.uuid4().hex[:12]
    log.error("request to %s failed (error id %s)", path, error_id, exc_info=error or True)
    return ApiError(500, f"internal error (error id {error_id}); the server's log has the details", kind="server_error")


class ImageUrl(BaseModel):
    url: str
    detail: str | None = None


class ContentPart(BaseModel):
    type: Literal["text", "image_url"]
    text: str | None = None
    image_url: ImageUrl | None = None


class Message(BaseModel):
    role: Literal["system", "user", "assistant", "developer"]
    content: str | list[ContentPart] | None = None


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatRequest(BaseModel):
    # Fields this server does not use (user, metadata, ...) are accepted and ignored, as OpenAI's own.
    model_config = ConfigDict(extra="ignore")

    model: str
    messages: list[Message] = Field(min_length=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    n: int = Field(1, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    # Two-stage model only: which reasoner answers (a reasoner model id of /v1/models).
    reasoner: str | None = None

    def stop_strings(self) -> tuple[str, ...]:
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())

    def params(self, default_max_tokens: int) -> CompletionParams:
        return CompletionParams(
            temperature=self.temperature,
            top_p=self.top_p,
            n=self.n,
            stop=self.stop_strings(),
            seed=self.seed,
            max_tokens=self.max_completion_tokens or self.max_tokens or default_max_tokens,
        )


def parse_chat_request(body: bytes) -> ChatRequest:
    """The request in `body`, or a 400 naming the first bad field (bad JSON included)."""
    try:
        return ChatRequest.model_validate_json(body)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise ApiError(400, f"invalid request: {where}: {first['msg']}", param=where) from None


def text_of(message: Message) -> str:
    """A message's text; image parts are the caller's business."""
    if isinstance(message.content, str) or message.content is None:
        return message.content or ""
    return "".join(part.text or "" for part in message.content if part.type == "text")


def images_of(message: Message) -> list[str]:
    if isinstance(message.content, list):
        return [part.image_url.url for part in message.content if part.type == "image_url" and part.image_url]
    return []


def model_card(model_id: str, kind: str) -> dict[str, Any]:
    # `kind` (reasoner / two-stage) lets a client (the demo page) tell the models apart.
    return Model(id=model_id, created=int(time.time()), object="model", owned_by=OWNER, kind=kind).model_dump()


def new_completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def usage(prompt_tokens: int, completion_tokens: int) -> CompletionUsage:
    return CompletionUsage(
        prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, total_tokens=prompt_tokens + completion_tokens
    )


def chat_completion(
    completion_id: str,
    model: str,
    result: Completions,
    extra_prompt: int = 0,
    extra_completion: int = 0,
    **message_extra: str,
) -> dict[str, Any]:
    """The whole response; `message_extra` adds fields to every choice's message (the two-stage
    model's caption and tentative answer)."""
    choices = [
        Choice(
            index=i,
            finish_reason=c.finish_reason,
            logprobs=None,
            message=ChatCompletionMessage(role="assistant", content=c.text, **message_extra),
        )
        for i, c in enumerate(result.choices)
    ]
    response = ChatCompletion(
        id=completion_id,
        choices=choices,
        created=int(time.time()),
        model=model,
        object="chat.completion",
        usage=usage(result.prompt_tokens + extra_prompt, result.completion_tokens + extra_completion),
    )
    return response.model_dump(exclude_none=True)


def chunk(
    completion_id: str,
    model: str,
    deltas: list[tuple[int, dict[str, Any], str | None]],
    tokens: CompletionUsage | None = None,
) -> str:
    """One server-sent event: a chunk with a (choice index, delta fields, finish reason) per choice."""
    choices = [ChunkChoice(index=i, delta=ChoiceDelta(**delta), finish_reason=finish) for i, delta, finish in deltas]
    body = ChatCompletionChunk(
        id=completion_id,
        choices=choices,
        created=int(time.time()),
        model=model,
        object="chat.completion.chunk",
        usage=tokens,
    )
    return f"data: {body.model_dump_json(exclude_none=True)}\n\n"


def error_event(error: ApiError) -> str:
    """An error after the stream began: sent as an event, as OpenAI does, then the stream ends."""
    return f"data: {json.dumps(error.body())}\n\n"


STREAM_END = "data: [DONE]\n\n"


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, refused (413) as soon as it passes `max_bytes`, before all of it is read."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(
            413, f"request body of {declared} bytes is over the limit of {max_bytes} (serve.api.max_body_bytes)"
        )
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > max_bytes:
            raise ApiError(413, f"request body is over the limit of {max_bytes} bytes (serve.api.max_body_bytes)")
    return bytes(body)
