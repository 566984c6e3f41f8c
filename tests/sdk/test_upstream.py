"""Glimpse in front of an engine that already runs the model (a `[[model]]` with `upstream`): the engine generates,
Glimpse plans and resizes the images with the model's own processor (`processor`: no weights), counts tokens,
constrains detections and converts their boxes into Gemini's `box_2d`.

Two real engines stand behind the front, each serving the bundled `shapes` model (Qwen2.5-VL):
- llama.cpp's `llama-server` (built from PyPI's llama-cpp-python source release by scripts/peer/llama-server.sh),
  on `fixtures/peer/shapes*.gguf`: the model converted by llama.cpp's own converter (scripts/peer/convert-shapes.sh);
- another Glimpse process (`--model shapes --no-grounding`) on its OpenAI route, the same wire format vLLM and
  SGLang answer with.
Both require the API key the front is configured with. Answers are checked against what the shapes model is known
to answer in-process (tests/sdk/test_shapes.py) and against the scene's true boxes; failures of the engine
(unreachable, silent, refusing) against Google's error statuses."""

from __future__ import annotations

import hashlib
import json
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
from google.genai import errors, types

import sdkutil
import services
from conftest import start_server, stop_server
from test_shapes import APART, RED_CIRCLE, assert_covers, scenes

MODEL = "shapes"
PEER_KEY = "peer-secret"
KEY_VARIABLE = "GLIMPSE_TEST_PEER_KEY"
HEADERS = {"x-goog-api-key": sdkutil.API_KEY}
GGUF = sdkutil.ROOT / "fixtures" / "peer"


@dataclass
class Peer:
    name: str
    base_url: str  # the engine's OpenAI-compatible base, as a config's `upstream`
    stop: object


def start_llama_server(**options) -> services.Service:
    return services.start_llama_server(GGUF / "shapes.gguf", GGUF / "shapes-mmproj.gguf", PEER_KEY, **options)


def shapes_template_for_llama_cpp(tmp: Path) -> tuple[str, ...]:
    """llama-server's flags for `shapes`'s chat template without its newlines. llama-server feeds the assistant
    header (`<|im_start|>assistant` and a newline) to its grammar before a constrained answer, and `shapes`'s
    448-token vocabulary has no newline token, so with the template as it is every constrained request fails
    ("Unexpected empty grammar stack after accepting piece: W (30)"; a published Qwen vocabulary has one). The
    model never saw those newlines: its tokenizer drops what it cannot encode, so the prompt is the same."""
    template = tmp / "shapes-chat-template.jinja"
    template.write_text((sdkutil.ROOT / "models" / "shapes" / "chat_template.jinja").read_text().replace("\n", ""))
    return ("--jinja", "--chat-template-file", str(template))


def start_peer(kind: str, tmp: Path) -> Peer:
    if kind == "llama.cpp":
        server = start_llama_server(extra=shapes_template_for_llama_cpp(tmp))
        return Peer(kind, f"{server.url}/v1", server.stop)
    server = start_server(tmp, "peer", ["--model", MODEL, "--no-grounding", "--api-key", PEER_KEY])
    return Peer(kind, f"{server.url}/v1beta/openai", lambda: stop_server(server))


def front_config(tmp: Path, upstream: str, processor: Path = sdkutil.ROOT / "models" / "shapes", extra: str = "") -> Path:
    config = tmp / "front.toml"
    config.write_text(
        f'[[model]]\nname = "{MODEL}"\nupstream = "{upstream}"\nupstream_model = "{MODEL}"\n'
        f'upstream_api_key_env = "{KEY_VARIABLE}"\nprocessor = "{processor}"\n{extra}'
    )
    return config


def start_front(tmp: Path, name: str, config: Path, key: str = PEER_KEY):
    import os

    return start_server(tmp, name, ["--config", str(config)], env={**os.environ, KEY_VARIABLE: key})


@pytest.fixture(scope="module", params=["llama.cpp", "glimpse"])
def front(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"upstream-{request.param}")
    peer = start_peer(request.param, tmp)
    server = start_front(tmp, "front", front_config(tmp, peer.base_url))
    yield server
    stop_server(server)
    peer.stop()


@pytest.fixture(scope="module")
def in_process(tmp_path_factory):
    """The shapes model in Glimpse's own engine: what the front's answers are compared with."""
    server = start_server(tmp_path_factory.mktemp("in-process"), "in-process", ["--model", MODEL])
    yield sdkutil.make_client(server.url)
    stop_server(server)


def ask(client, scene, question: str, **config) -> types.GenerateContentResponse:
    part = types.Part.from_bytes(data=scene.png(), mime_type="image/png")
    return client.models.generate_content(
        model=MODEL, contents=[part, question], config=types.GenerateContentConfig(**config) if config else None
    )


def generate_text(front_url: str, text: str = "Caption this image.") -> httpx.Response:
    """A text-only generateContent through the front, as raw HTTP (the error bodies are what is checked)."""
    return httpx.post(f"{front_url}/v1beta/models/{MODEL}:generateContent", headers=HEADERS, timeout=60,
                      json={"contents": [{"parts": [{"text": text}]}]})


def test_the_committed_gguf_is_the_bundled_model_converted():
    """fixtures/peer holds llama.cpp's conversion of models/shapes; a retrained model must be converted again."""
    source = json.loads((GGUF / "source.json").read_text())
    weights = (sdkutil.ROOT / "models" / "shapes" / "model.safetensors").read_bytes()
    assert hashlib.sha256(weights).hexdigest() == source["model.safetensors"], "run scripts/peer/convert-shapes.sh"
    for name in ("shapes.gguf", "shapes-mmproj.gguf"):
        assert hashlib.sha256((GGUF / name).read_bytes()).hexdigest() == source[name]


def test_answers_are_the_models(front):
    client = sdkutil.make_client(front.url)
    assert ask(client, RED_CIRCLE, "Caption this image.").text.strip() == "A red circle."
    assert ask(client, RED_CIRCLE, "How many shapes are there?").text.strip() == "1"
    left, right = sorted(APART.objects, key=lambda o: o.center[0])
    assert ask(client, APART, f"Is the {left.label} to the left of the {right.label}?").text.strip() == "Yes"
    assert ask(client, APART, f"Is the {right.label} to the left of the {left.label}?").text.strip() == "No"


def test_detections_are_gemini_boxes_where_the_shapes_are(front, in_process):
    """The engine answers Qwen2.5-VL's pixel `bbox_2d` on the image Glimpse resized; the front rewrites it into
    `box_2d` on the original's 0-1000 grid. Each box covers its shape, and lies within 2% of the picture of the
    box the in-process engine gives."""
    prompt = f"Detect all shapes in the image. {scenes.GEMINI_BOX}"
    found = {item["label"]: item["box_2d"] for item in json.loads(ask(sdkutil.make_client(front.url), APART, prompt).text)}
    local = {item["label"]: item["box_2d"] for item in json.loads(ask(in_process, APART, prompt).text)}
    assert sorted(found) == sorted(o.label for o in APART.objects) == sorted(local)
    for obj in APART.objects:
        assert_covers(found[obj.label], APART, obj)
        assert max(abs(a - b) for a, b in zip(found[obj.label], local[obj.label])) <= 20, (found, local)


def test_tokens_are_counted_as_in_process(front, in_process):
    client = sdkutil.make_client(front.url)
    part = types.Part.from_bytes(data=RED_CIRCLE.png(), mime_type="image/png")
    counted = client.models.count_tokens(model=MODEL, contents=[part, "Caption this image."]).total_tokens
    assert counted == in_process.models.count_tokens(model=MODEL, contents=[part, "Caption this image."]).total_tokens
    usage = ask(client, RED_CIRCLE, "Caption this image.").usage_metadata
    assert usage.prompt_token_count == counted
    assert usage.candidates_token_count >= 4  # "A red circle." and the end of turn, as the engine counted them
    # The engine's own prompt count is the same (the front logs any difference): its processor took the image
    # at the size Glimpse planned, so the boxes it answers are on the grid Glimpse converts from.
    assert "counted the prompt differently" not in front.log_text(limit=1 << 20)


def test_streams_are_reframed(front):
    client = sdkutil.make_client(front.url)
    part = types.Part.from_bytes(data=RED_CIRCLE.png(), mime_type="image/png")
    chunks = list(client.models.generate_content_stream(model=MODEL, contents=[part, "Caption this image."]))
    assert len([c for c in chunks if c.text]) >= 2, "the engine's deltas arrive as they come"
    assert "".join(c.text or "" for c in chunks).strip() == "A red circle."
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert chunks[-1].usage_metadata.candidates_token_count >= 4


def test_generation_options_reach_the_engine(front):
    client = sdkutil.make_client(front.url)
    cut = ask(client, RED_CIRCLE, "Caption this image.", max_output_tokens=2)
    assert cut.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert cut.usage_metadata.candidates_token_count == 2
    stopped = ask(client, RED_CIRCLE, "Caption this image.", stop_sequences=["circle"])
    assert stopped.text.strip() == "A red"
    chosen = ask(client, RED_CIRCLE, "Is there a red circle?", response_mime_type="text/x.enum",
                 response_schema={"type": "STRING", "enum": ["No", "Yes"]})
    assert chosen.text == "Yes"


def test_the_openai_surface(front):
    oai = openai.OpenAI(api_key=sdkutil.API_KEY, base_url=f"{front.url}/v1beta/openai/", max_retries=0)
    data_url = "data:image/png;base64," + __import__("base64").b64encode(RED_CIRCLE.png()).decode()
    r = oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": data_url}},
        {"type": "text", "text": "Caption this image."},
    ]}])
    assert r.choices[0].message.content.strip() == "A red circle."


def test_an_unreachable_engine_is_503_and_not_ready(tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    server = start_front(tmp_path, "unreachable", front_config(tmp_path, f"http://127.0.0.1:{closed}/v1"))
    try:
        client = sdkutil.make_client(server.url)
        with pytest.raises(errors.APIError) as raised:
            ask(client, RED_CIRCLE, "Caption this image.")
        assert raised.value.code == 503 and raised.value.status == "UNAVAILABLE"
        assert str(closed) not in str(raised.value.message), "the engine's address is not the client's business"
        # countTokens is the local processor's: it answers without the engine.
        part = types.Part.from_bytes(data=RED_CIRCLE.png(), mime_type="image/png")
        assert client.models.count_tokens(model=MODEL, contents=[part, "Caption this image."]).total_tokens > 0
        ready = httpx.get(f"{server.url}/readyz", timeout=10)
        assert ready.status_code == 503 and MODEL in ready.json()["error"]["message"]
    finally:
        stop_server(server)


def test_a_silent_engine_is_504(tmp_path):
    """An engine that accepts the connection and never answers: the front gives up after upstream_timeout_seconds."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # connections complete in the kernel's backlog; nothing is ever read or written
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/v1"
        server = start_front(tmp_path, "silent", front_config(tmp_path, url, extra="upstream_timeout_seconds = 2\n"))
        try:
            start = time.monotonic()
            r = generate_text(server.url)
            assert r.status_code == 504 and r.json()["error"]["status"] == "DEADLINE_EXCEEDED", r.text
            assert 1.5 < time.monotonic() - start < 10
        finally:
            stop_server(server)


def test_an_engine_that_refuses_glimpses_key_is_503(tmp_path):
    """llama-server answers a wrong key with 401: Glimpse's configuration is wrong, not the client's request."""
    peer = start_peer("llama.cpp", tmp_path)
    server = start_front(tmp_path, "wrong-key", front_config(tmp_path, peer.base_url), key="not-the-key")
    try:
        r = generate_text(server.url)
        assert r.status_code == 503 and r.json()["error"]["status"] == "UNAVAILABLE", r.text
        assert "HTTP 401" in r.json()["error"]["message"]
    finally:
        stop_server(server)
        peer.stop()


def test_the_engines_own_refusal_reaches_the_client_as_400(tmp_path):
    """A request the engine refuses (here: a prompt longer than llama-server's context) is the client's to fix:
    400 with the engine's reason."""
    server = start_llama_server(context=2048, extra=shapes_template_for_llama_cpp(tmp_path))
    front = start_front(tmp_path, "refused", front_config(tmp_path, f"{server.url}/v1"))
    try:
        r = generate_text(front.url, "circle " * 1000)  # within the model's 2,048 positions, beyond a slot's 512
        assert r.status_code == 400 and r.json()["error"]["status"] == "INVALID_ARGUMENT", r.text
        assert "refused the request" in r.json()["error"]["message"]
    finally:
        stop_server(front)
        server.stop()


def test_an_engine_that_cannot_constrain_is_sent_no_schema(tmp_path):
    """With `structured_output = false` the front sends no `response_format`, and still answers detections in
    Gemini's form from the model's own box list. The engine here refuses every schema (the model's template as it
    is: see `shapes_template_for_llama_cpp`)."""
    server = start_llama_server()
    with_schema = start_front(tmp_path, "schema", front_config(tmp_path, f"{server.url}/v1"))
    config = tmp_path / "unconstrained.toml"
    config.write_text(front_config(tmp_path, f"{server.url}/v1", extra="structured_output = false\n").read_text())
    without = start_front(tmp_path, "no-schema", config)
    prompt = f"Detect the red circle. {scenes.GEMINI_BOX}"
    try:
        with pytest.raises(errors.APIError) as refused:
            ask(sdkutil.make_client(with_schema.url), RED_CIRCLE, prompt)
        assert refused.value.code == 503
        found = json.loads(ask(sdkutil.make_client(without.url), RED_CIRCLE, prompt).text)
        assert [item["label"] for item in found] == ["red circle"]
        assert_covers(found[0]["box_2d"], RED_CIRCLE, RED_CIRCLE.objects[0])
    finally:
        stop_server(without)
        stop_server(with_schema)
        server.stop()


def test_a_client_that_goes_away_stops_the_engines_work(tmp_path):
    """The peer (a Glimpse serving the random fixture model, which answers at length) has one slot and no queue:
    while the front's request runs on it, a direct request is refused with 429. The front's client disconnects
    after the first event; the front must drop its upstream request, so the peer's slot frees at once and the
    peer never finishes the answer."""
    peer = start_server(tmp_path, "busy-peer", ["--max-concurrent", "1", "--max-queue", "0", "--api-key", PEER_KEY])
    config = front_config(tmp_path, f"{peer.url}/v1beta/openai", processor=sdkutil.MODEL_DIR).read_text()
    (tmp_path / "front.toml").write_text(config.replace(f'upstream_model = "{MODEL}"', f'upstream_model = "{sdkutil.MODEL_ID}"'))
    front = start_front(tmp_path, "gone-front", tmp_path / "front.toml")
    peer_headers = {"x-goog-api-key": PEER_KEY}
    try:
        with httpx.stream("POST", f"{front.url}/v1beta/models/{MODEL}:streamGenerateContent?alt=sse",
                          json=sdkutil.LONG_ANSWER, headers=HEADERS, timeout=60) as stream:
            assert stream.status_code == 200
            lines = stream.iter_lines()  # kept: a dropped line iterator closes the response
            next(line for line in lines if line.startswith("data:"))
            busy = httpx.post(f"{peer.url}/v1beta/models/m:generateContent", json=sdkutil.SHORT_ANSWER, headers=peer_headers, timeout=30)
            assert busy.status_code == 429, "the front's request holds the peer's only slot"
        r = sdkutil.answered_within(peer.url, 5, peer_headers)
        assert r.status_code == 200, r.text
        # Had the front kept reading, the peer would have finished the answer within about 2.5 s and counted its
        # ~1,000 tokens; output tokens are counted when an answer ends, so only the short answer's are there.
        time.sleep(4)
        metrics = httpx.get(f"{peer.url}/metrics", timeout=10).text
        output = sum(float(line.split()[-1]) for line in metrics.splitlines() if line.startswith("glimpse_output_tokens_total"))
        assert output <= 3, metrics
    finally:
        stop_server(front)
        stop_server(peer)
