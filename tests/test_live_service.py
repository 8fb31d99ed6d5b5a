"""The live service as users reach it: `launch.py serve` on loopback, called with the official
`openai` client, plain HTTP, `launch.py infer`, a headless browser on the demo page, and a
training run that scores through it (serve.engine=openai)."""

from __future__ import annotations

import base64
import io
import time
from pathlib import Path

import openai
import pytest
import requests
from PIL import Image

from learner.metrics import read_metrics
from records.vqa import read_records
from tests.launched import Launched
from tests.ports import unclaimed_port
from tests.tiny_task import TINY_TASK_OVERRIDES
from wire import metric_names as names

pytestmark = pytest.mark.integration
KEY = "test-key-9f2c"
REASONER_PROMPT = (
    "Question: How many red circles are there?\nImage description: top left: a red circle.\n"
    "Think step by step, then give the final answer in \\boxed{}."
)


class Service:
    def __init__(self, cache: Path):
        self.cache = cache
        self.port = unclaimed_port()
        self.base = f"http://127.0.0.1:{self.port}"
        args = [
            "serve",
            f"task.cache_dir={cache}",
            *TINY_TASK_OVERRIDES,
            f"serve.http_port={self.port}",
            "serve.api.max_image_pixels=40000",
            "serve.api.request_timeout_s=30",
            # A second reasoner, served elsewhere: here the service itself, over HTTP (plug-and-play).
            f"serve.api.reasoners.echo.base_url={self.base}/v1",
            "serve.api.reasoners.echo.model=reasoner",
        ]
        self.run = Launched(args, env={"CAPTION_RL_API_KEY": KEY, "REASONER_API_KEY": KEY})

    def wait_ready(self, timeout: float = 420) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.run.proc.poll() is None, self.run.output()[-4000:]
            try:
                if requests.get(f"{self.base}/health", timeout=2).ok and self.client().models.list().data:
                    return
            except (requests.RequestException, openai.APIError):
                pass
            time.sleep(2)
        raise TimeoutError(self.run.output()[-4000:])

    def client(self, key: str = KEY) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.base}/v1", api_key=key, max_retries=0, timeout=120)

    def eval_item(self) -> tuple[Path, str]:
        """An image file and its question from the bundled task's held-out set."""
        data = next(self.cache.rglob("eval.jsonl"))
        record = read_records(data)[0]
        return data.parent / record.image, record.question


@pytest.fixture(scope="module")
def service(tiny_cache):
    started = Service(tiny_cache)
    try:
        started.wait_ready()
        yield started
    finally:
        started.run.kill()


def image_message(path: Path, question: str) -> list[dict]:
    url = "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()
    return [
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": question}],
        }
    ]


def test_models_lists_the_reasoner_and_the_two_stage_model(service):
    models = {m.id: m.kind for m in service.client().models.list().data}
    assert models == {"reasoner": "reasoner", "echo": "reasoner", "caption-reason": "two-stage"}


def test_chat_completion_honours_the_sampling_settings_and_counts_tokens(service):
    client, messages = service.client(), [{"role": "user", "content": REASONER_PROMPT}]
    greedy = client.chat.completions.create(model="reasoner", messages=messages, temperature=0, max_tokens=24)
    text = greedy.choices[0].message.content
    assert greedy.usage.total_tokens == greedy.usage.prompt_tokens + greedy.usage.completion_tokens
    assert 1 <= greedy.usage.completion_tokens <= 24
    # n choices; max_tokens bounds each, and usage counts them all.
    sampled = client.chat.completions.create(model="reasoner", messages=messages, n=3, max_tokens=4, seed=11)
    assert [c.index for c in sampled.choices] == [0, 1, 2]
    assert sampled.usage.completion_tokens <= 3 * 4
    assert all(c.finish_reason in ("stop", "length") for c in sampled.choices)
    # The same seed, the same choices.
    again = client.chat.completions.create(model="reasoner", messages=messages, n=3, max_tokens=4, seed=11)
    assert [c.message.content for c in again.choices] == [c.message.content for c in sampled.choices]
    # A stop string taken from the greedy answer cuts it just before its first occurrence.
    assert len(text) >= 4, text
    stop = text[2:4]
    cut = client.chat.completions.create(model="reasoner", messages=messages, temperature=0, max_tokens=24, stop=[stop])
    assert cut.choices[0].message.content == text[: text.index(stop)]
    # top_p near 0 keeps only the most likely token: sampling then gives the greedy answer.
    nucleus = client.chat.completions.create(model="reasoner", messages=messages, top_p=1e-6, max_tokens=24, seed=3)
    assert nucleus.choices[0].message.content == text


def test_a_streamed_completion_says_what_the_whole_one_says(service):
    client, messages = service.client(), [{"role": "user", "content": REASONER_PROMPT}]
    whole = client.chat.completions.create(model="reasoner", messages=messages, temperature=0, max_tokens=24)
    chunks = list(
        client.chat.completions.create(
            model="reasoner",
            messages=messages,
            temperature=0,
            max_tokens=24,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(pieces) == whole.choices[0].message.content
    # One choice on the transformers engine streams as it is generated: a piece per token or so.
    assert len(pieces) >= min(2, whole.usage.completion_tokens - 1), pieces
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        whole.choices[0].finish_reason
    ]
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_an_image_chat_runs_the_two_stage_model(service):
    image, question = service.eval_item()
    client = service.client()
    # The captioner samples as in training; a seed makes its caption repeatable.
    response = client.chat.completions.create(
        model="caption-reason", messages=image_message(image, question), temperature=0, max_tokens=24, seed=5
    )
    message = response.choices[0].message
    assert message.caption and message.tentative_answer and message.content
    # Streamed: the caption and tentative answer arrive before the final answer, and agree with it.
    chunks = list(
        client.chat.completions.create(
            model="caption-reason",
            messages=image_message(image, question),
            temperature=0,
            max_tokens=24,
            seed=5,
            stream=True,
        )
    )
    fields = [
        k for c in chunks for k, v in c.choices[0].delta.model_dump(exclude_none=True).items() if v and k != "role"
    ]
    assert fields.index("caption") < fields.index("content")
    streamed = {
        k: "".join(getattr(c.choices[0].delta, k, None) or "" for c in chunks)
        for k in ("caption", "tentative_answer", "content")
    }
    assert streamed == {
        "caption": message.caption,
        "tentative_answer": message.tentative_answer,
        "content": message.content,
    }
    # The reasoner swapped per request: "echo" is the same model reached over HTTP, so it agrees.
    swapped = client.chat.completions.create(
        model="caption-reason",
        messages=image_message(image, question),
        temperature=0,
        max_tokens=24,
        seed=5,
        extra_body={"reasoner": "echo"},
    )
    assert (swapped.choices[0].message.caption, swapped.choices[0].message.content) == (
        message.caption,
        message.content,
    )


def test_errors_come_in_openai_shape(service):
    client, messages = service.client(), [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.NotFoundError, match="model 'nope' does not exist"):
        client.chat.completions.create(model="nope", messages=messages)
    with pytest.raises(openai.BadRequestError, match="over this server's limit of 256"):
        client.chat.completions.create(model="reasoner", messages=messages, max_tokens=257)
    with pytest.raises(openai.AuthenticationError, match="bearer token"):
        service.client(key="wrong").models.list()
    image, question = service.eval_item()
    with pytest.raises(openai.BadRequestError, match="reads text only"):
        client.chat.completions.create(model="reasoner", messages=image_message(image, question))
    remote = [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "https://example.invalid/a.png"}},
                {"type": "text", "text": "?"},
            ],
        }
    ]
    with pytest.raises(openai.BadRequestError, match="remote image URLs are refused"):
        client.chat.completions.create(model="caption-reason", messages=remote)


def test_plain_http_gets_clear_errors_for_bad_bodies(service):
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    url = f"{service.base}/v1/chat/completions"
    bad_json = requests.post(url, data=b"{oops", headers=headers, timeout=30)
    assert bad_json.status_code == 400 and "Invalid JSON" in bad_json.json()["error"]["message"]
    huge = requests.post(url, data=b" " * (8 * 2**20 + 1), headers=headers, timeout=60)
    assert huge.status_code == 413 and "serve.api.max_body_bytes" in huge.json()["error"]["message"]
    # The service was started with a 40000-pixel bound: a 201 x 200 image is one column over it.
    out = io.BytesIO()
    Image.new("RGB", (201, 200)).save(out, format="PNG")
    big = {
        "model": "caption-reason",
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()},
                    },
                    {"type": "text", "text": "?"},
                ],
            }
        ],
    }
    refused = requests.post(url, json=big, headers=headers, timeout=30)
    assert refused.status_code == 413 and "201x200 = 40200 pixels" in refused.json()["error"]["message"]


def test_the_scoring_endpoint_and_health_keep_working(service):
    body = {"question": "How many red circles are there?", "answer": "1", "captions": ["top left: a red circle.", ""]}
    scored = requests.post(
        f"{service.base}/reasoner", json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=60
    )
    assert scored.status_code == 200, scored.text
    assert len(scored.json()["rewards"]) == 2 and all(0 <= r <= 1 for r in scored.json()["rewards"])
    assert requests.post(f"{service.base}/reasoner", json=body, timeout=30).status_code == 401
    many = {**body, "captions": ["top left: a red circle."] * 65}  # serve.api.max_captions is 64
    refused = requests.post(
        f"{service.base}/reasoner", json=many, headers={"Authorization": f"Bearer {KEY}"}, timeout=30
    )
    assert refused.status_code == 400 and "65 captions in one request, at most 64" in refused.json()["error"]["message"]
    assert requests.get(f"{service.base}/health", timeout=10).json()["status"] == "ok"
    assert "<title>Caption, then reason</title>" in requests.get(service.base, timeout=10).text


def test_the_openai_engine_answers_through_the_service(service, monkeypatch):
    from configs.schema import OpenAIEndpointConfig
    from serve.openai_reasoner import OpenAIReasoner
    from vlm.reasoner_prompt import reasoner_messages

    prompts = [("top left: a red circle.", "How many red circles are there?"), ("", "How many squares are there?")]
    endpoint = OpenAIEndpointConfig(base_url=f"{service.base}/v1", model="reasoner")
    monkeypatch.setenv("REASONER_API_KEY", KEY)
    answers = OpenAIReasoner(endpoint).answer(prompts, k=3, temperature=0, max_new_tokens=24)
    direct = [
        service.client()
        .chat.completions.create(model="reasoner", messages=reasoner_messages(*p), temperature=0, max_tokens=24)
        .choices[0]
        .message.content
        for p in prompts
    ]
    assert answers == [[text] * 3 for text in direct]
    monkeypatch.delenv("REASONER_API_KEY")  # the key comes from the environment only
    with pytest.raises(openai.AuthenticationError):
        OpenAIReasoner(endpoint).answer(prompts, k=1, temperature=0, max_new_tokens=4)


def test_infer_prints_the_caption_the_tentative_answer_and_the_final_answer(service, run_launch):
    image, question = service.eval_item()
    args = [
        "infer",
        "--image",
        str(image),
        "--question",
        question,
        f"task.cache_dir={service.cache}",
        *TINY_TASK_OVERRIDES,
    ]
    code, out = run_launch(args).finish(timeout=300)
    assert code == 0, out[-4000:]
    printed = [
        line.split(":", 1)
        for line in out.splitlines()
        if line.startswith(("caption:", "tentative answer:", "final answer:"))
    ]
    # In this order; what the barely trained tiny models of this test say may be empty.
    assert [label for label, _ in printed] == ["caption", "tentative answer", "final answer"]


# A training run of its own (~1 minute); the default set runs the same client against the service
# (test_the_openai_engine_answers_through_the_service) and the same training on the pool's engine.
@pytest.mark.slow
def test_the_openai_engine_trains_against_the_service(service, tmp_path, run_launch):
    run_dir = tmp_path / "run"
    args = [
        f"run_dir={run_dir}",
        f"task.cache_dir={service.cache}",
        *TINY_TASK_OVERRIDES,
        "learner.total_steps=4",
        "learner.groups_per_step=2",
        "rollout.sampling.max_new_tokens=8",
        "eval.at_end=false",
        "serve.engine=openai",
        f"serve.openai.base_url={service.base}/v1",
        "serve.openai.model=reasoner",
    ]
    code, out = run_launch(args, env={"REASONER_API_KEY": KEY}).finish(timeout=600)
    assert code == 0, out[-4000:]
    metrics = read_metrics(run_dir / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [0, 1, 2, 3]
    assert all(0 <= m[names.REWARD_MEAN] <= 1 for m in metrics)


def test_the_demo_page_answers_an_uploaded_image_in_a_browser(service, tmp_path):
    from tests.browser import ask_demo
    from vlm.reasoner_prompt import two_stage_messages

    image, question = service.eval_item()
    shown = ask_demo(service.base, image, question, tmp_path / "demo.png", key=KEY)
    assert shown["status"] == "done", shown
    assert shown["reasoners"] == ["reasoner", "echo"] and shown["reasoner"] == "reasoner"
    assert shown["caption"] and shown["tentative"] and shown["final"]
    # The final answer shown is the reasoner's greedy answer to exactly the caption and tentative
    # answer shown (the page asks at temperature 0, at the server's default max_tokens of 40).
    messages = two_stage_messages(shown["caption"], question, shown["tentative"])
    direct = service.client().chat.completions.create(model="reasoner", messages=messages, temperature=0, max_tokens=40)
    assert shown["final"] == direct.choices[0].message.content
    assert (tmp_path / "demo.png").stat().st_size > 10_000


def test_a_replica_killed_under_requests_answers_them_with_an_error_or_a_reply_never_a_hang(service):
    """Last in this module: it kills the service's one reasoner replica while requests are in
    flight. Each gets an answer, an error or a reply, within serve.api.request_timeout_s (30 s
    here); Serve replaces the replica and the service answers again."""
    from concurrent.futures import ThreadPoolExecutor

    def replicas() -> list:
        return [p for p in service.run.session() if "ServeReplica:reasoner:ReasonerPool" in " ".join(p.cmdline())]

    def ask() -> tuple[float, int]:
        started = time.monotonic()
        reply = requests.post(
            f"{service.base}/v1/chat/completions",
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=120,
            json={
                "model": "reasoner",
                "messages": [{"role": "user", "content": REASONER_PROMPT}],
                "max_tokens": 256,
                "n": 4,
            },
        )
        return time.monotonic() - started, reply.status_code

    victims = replicas()
    assert len(victims) == 1
    with ThreadPoolExecutor(4) as pool:
        asked = [pool.submit(ask) for _ in range(4)]
        time.sleep(0.5)
        victims[0].kill()
        answered = [a.result() for a in asked]
    assert all(seconds < 30 + 15 for seconds, _ in answered), answered
    assert all(status == 200 or status >= 500 for _, status in answered), answered
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not (replicas() and ask()[1] == 200):
        time.sleep(2)
    assert ask()[1] == 200  # replaced, and serving again
