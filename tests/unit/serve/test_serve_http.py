"""attnlab serve over real HTTP on 127.0.0.1: answers, streaming, 60 malformed requests, limits, disconnects.

The servers (conftest.py) run uvicorn in a background thread on an OS-chosen loopback port. The
generation model sleeps 25 ms per forward pass and has no eos token, so a request of N tokens holds
its slot for about N x 25 ms: long enough to fill the slots deterministically.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from typing import Any

import pytest

httpx = pytest.importorskip("httpx")


def wait_until(condition: Any, timeout: float = 5.0, step: float = 0.02) -> float:
    """Seconds until ``condition()`` held; fails after ``timeout`` (bounded loop)."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(step)
    return time.monotonic() - start


def in_threads(jobs: list[Any]) -> list[Any]:
    """Run the callables at once (a thread each, released together); their results in order."""
    results: list[Any] = [None] * len(jobs)
    barrier = threading.Barrier(len(jobs))

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = jobs[i]()
        except Exception as e:  # noqa: BLE001 - the test inspects it
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def sse(url: str, body: dict[str, Any]) -> list[Any]:
    """The data payloads of a server-sent-event response (JSON decoded; the final "[DONE]" kept)."""
    out = []
    with httpx.stream("POST", url, json=body, timeout=30) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: "):
                data = line[len("data: "):]
                out.append(data if data == "[DONE]" else json.loads(data))
    return out


def streamed_texts(events: list[Any]) -> tuple[dict[int, str], dict[int, str]]:
    texts: dict[int, str] = {}
    reasons: dict[int, str] = {}
    for e in events[:-1]:
        for c in e["choices"]:
            texts[c["index"]] = texts.get(c["index"], "") + c["text"]
            if c["finish_reason"]:
                reasons[c["index"]] = c["finish_reason"]
    return texts, reasons


def health(server: Any) -> dict[str, Any]:
    r = httpx.get(f"{server.url}/health", timeout=5)
    assert r.status_code == 200
    return r.json()


# ---- valid requests ------------------------------------------------------------------------------


def test_health_and_models(gen_server: Any) -> None:
    assert gen_server.url.startswith("http://127.0.0.1:")
    h = health(gen_server)
    assert h == {"status": "ok", "task": "text-generation", "model": "tiny-gpt", "active_requests": 0,
                 "max_concurrency": 2}
    models = httpx.get(f"{gen_server.url}/v1/models").json()
    assert models["data"][0]["id"] == "tiny-gpt"


def test_completion_matches_the_pipeline(gen_server: Any) -> None:
    body = {"model": "tiny-gpt", "prompt": "the cat", "max_tokens": 8, "temperature": 0}
    r = httpx.post(f"{gen_server.url}/v1/completions", json=body, timeout=30)
    assert r.status_code == 200
    out = r.json()
    expected = gen_server.pipe.complete(["the cat"], max_new_tokens=8)[0][0]
    assert out["object"] == "text_completion" and out["model"] == "tiny-gpt"
    assert out["choices"] == [{"text": expected.text, "index": 0, "logprobs": None, "finish_reason": "length"}]
    n_prompt = len(gen_server.pipe.tokenizer.encode("the cat"))
    assert out["usage"] == {"prompt_tokens": n_prompt, "completion_tokens": 8, "total_tokens": n_prompt + 8}
    echoed = httpx.post(f"{gen_server.url}/v1/completions", json={**body, "echo": True}, timeout=30).json()
    assert echoed["choices"][0]["text"] == "the cat" + expected.text


def test_streaming_equals_the_plain_answer(gen_server: Any) -> None:
    url = f"{gen_server.url}/v1/completions"
    body = {"prompt": ["the cat", "a dog"], "max_tokens": 8, "n": 2, "temperature": 0.9, "seed": 5}
    plain = httpx.post(url, json=body, timeout=30).json()
    events = sse(url, {**body, "stream": True})
    assert events[-1] == "[DONE]" and all(e["id"] == events[0]["id"] for e in events[:-1])
    texts, reasons = streamed_texts(events)
    assert [texts[i] for i in range(4)] == [c["text"] for c in plain["choices"]]
    assert reasons == {i: "length" for i in range(4)}


def test_stop_strings_end_the_text_before_them(gen_server: Any) -> None:
    url = f"{gen_server.url}/v1/completions"
    full = httpx.post(url, json={"prompt": "the cat", "max_tokens": 12, "temperature": 0}, timeout=30).json()
    text = full["choices"][0]["text"]
    stop = text[len(text) // 2 : len(text) // 2 + 2]
    expected = text[: text.find(stop)]
    body = {"prompt": "the cat", "max_tokens": 12, "temperature": 0, "stop": [stop, "\x00never"]}
    cut = httpx.post(url, json=body, timeout=30).json()["choices"][0]
    assert cut == {"text": expected, "index": 0, "logprobs": None, "finish_reason": "stop"}
    texts, reasons = streamed_texts(sse(url, {**body, "stream": True}))
    assert texts == {0: expected} and reasons == {0: "stop"}


def test_pipeline_route(gen_server: Any, cls_server: Any) -> None:
    r = httpx.post(f"{gen_server.url}/v1/pipeline", json={"inputs": ["the cat"], "parameters": {"max_new_tokens": 4}})
    assert r.status_code == 200 and r.json() == gen_server.pipe(["the cat"], max_new_tokens=4)
    body = {"inputs": ["a great story", "boring and bad"], "parameters": {"top_k": None}}
    r = httpx.post(f"{cls_server.url}/v1/pipeline", json=body, timeout=30)
    assert r.status_code == 200
    assert r.json() == json.loads(json.dumps(cls_server.pipe(body["inputs"], top_k=None)))
    assert httpx.post(f"{cls_server.url}/v1/completions", json={"prompt": "x"}).status_code == 404


def test_image_classification_takes_base64(tmp_path: Any) -> None:
    import numpy as np
    import torch
    from PIL import Image

    import attnlab
    from attnlab.models import from_name
    from attnlab.models.vit import ViTForImageClassification
    from attnlab.serve import BackgroundServer, create_app

    torch.manual_seed(0)
    pipe = attnlab.pipeline("image-classification", model=ViTForImageClassification(from_name("vit-tiny")))
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    encoded = base64.b64encode(buf.getvalue()).decode()
    with BackgroundServer(create_app(pipe)) as server:
        url = f"{server.url}/v1/pipeline"
        ok = httpx.post(url, json={"inputs": f"data:image/png;base64,{encoded}", "parameters": {"top_k": 3}})
        assert ok.status_code == 200 and ok.json() == json.loads(json.dumps(pipe(image, top_k=3)))
        truncated = base64.b64encode(buf.getvalue()[: len(buf.getvalue()) // 2]).decode()
        for bad in ("not base64!", base64.b64encode(b"not an image").decode(), "/etc/passwd", truncated):
            r = httpx.post(url, json={"inputs": bad})
            assert r.status_code == 422 and "error" in r.json()


# ---- malformed requests --------------------------------------------------------------------------

C, P = "/v1/completions", "/v1/pipeline"
JSON_BAD = [
    (C, {}), (C, {"prompt": 5}), (C, {"prompt": None}), (C, {"prompt": ["a", 3]}), (C, {"prompt": []}),
    (C, {"prompt": ["a"] * 33}), (C, {"prompt": "a" * 100_001}), (C, {"prompt": "a", "max_tokens": 0}),
    (C, {"prompt": "a", "max_tokens": -5}), (C, {"prompt": "a", "max_tokens": "16"}),
    (C, {"prompt": "a", "max_tokens": 1.5}), (C, {"prompt": "a", "max_tokens": 10**9}),
    (C, {"prompt": "a", "max_tokens": True}), (C, {"prompt": "a", "temperature": -0.1}),
    (C, {"prompt": "a", "temperature": 2.5}), (C, {"prompt": "a", "temperature": "hot"}),
    (C, {"prompt": "a", "temperature": None}), (C, {"prompt": "a", "top_p": 0}), (C, {"prompt": "a", "top_p": 1.5}),
    (C, {"prompt": "a", "top_k": -1}), (C, {"prompt": "a", "top_k": 5000}), (C, {"prompt": "a", "n": 0}),
    (C, {"prompt": "a", "n": 9}), (C, {"prompt": "a", "n": 2, "temperature": 0}), (C, {"prompt": "a", "stream": "yes"}),
    (C, {"prompt": "a", "stop": ["a", "b", "c", "d", "e"]}), (C, {"prompt": "a", "stop": [""]}),
    (C, {"prompt": "a", "stop": 5}), (C, {"prompt": "a", "seed": -1}), (C, {"prompt": "a", "seed": "x"}),
    (C, {"prompt": "a", "echo": 1}), (C, {"prompt": "a", "repetition_penalty": 0}),
    (C, {"prompt": "a", "repetition_penalty": 100}), (C, {"prompt": "a", "model": 123}),
    (C, {"prompt": "a", "model": "someone-elses-model"}), (C, {"prompt": "a", "model_path": "/etc/passwd"}),
    (C, {"prompt": "a", "logprobs": 5}), (C, {"prompt": "the movie was great " * 20, "max_tokens": 60}),
    (C, {"prompt": ["a"] * 8, "n": 5}), (C, [1, 2]), (C, "hi"), (C, None),
    (P, {}), (P, {"inputs": 3}), (P, {"inputs": "a", "parameters": {"max_new_tokens": 0}}),
    (P, {"inputs": "a", "parameters": {"num_beams": 99}}), (P, {"inputs": "a", "parameters": {"temperature": 0}}),
    (P, {"inputs": "a", "parameters": {"model": "/tmp/other"}}), (P, {"inputs": "a", "parameters": "notadict"}),
    (P, {"inputs": "a", "parameters": {"max_new_tokens": 200}}),
    (P, {"inputs": "a", "parameters": {"num_return_sequences": 2}}),
    (P, {"inputs": "a", "parameters": {"do_sample": True, "top_p": 0}}), (P, {"inputs": ["a"], "unknown": 1}),
    (P, {"inputs": ["a"] * 33}), (P, {"inputs": "a", "parameters": {"stop_strings": [""]}}),
    (P, {"inputs": ["a", "a" * 100_001]}), (P, {"inputs": "a" * 1_600_000}),
]
RAW_BAD = [  # (method, path, body bytes, content type)
    ("POST", C, b"{not json", "application/json"), ("POST", C, b"", "application/json"),
    ("POST", C, b"prompt=hi", "text/plain"), ("POST", C, b"\xff\xfe\x00", "application/json"),
    ("GET", C, None, None), ("PUT", P, b"{}", "application/json"), ("GET", "/nope", None, None),
    ("POST", "/health", b"{}", "application/json"), ("DELETE", "/v1/models", None, None),
]


def test_sixty_malformed_requests_get_4xx_and_never_5xx(gen_server: Any, cls_server: Any) -> None:
    codes = []
    with httpx.Client(base_url=gen_server.url, timeout=30) as client:
        for path, body in JSON_BAD:
            r = client.post(path, json=body)
            codes.append((path, body if not isinstance(body, dict) else sorted(body), r.status_code))
            assert "error" in r.json() and r.json()["error"]["message"]
        for method, path, content, ctype in RAW_BAD:
            headers = {"content-type": ctype} if ctype else {}
            codes.append((method, path, client.request(method, path, content=content, headers=headers).status_code))
    with httpx.Client(base_url=cls_server.url, timeout=30) as client:
        for params in ({"top_k": 0}, {"function_to_apply": "tanh"}, {"max_new_tokens": 5}, {"top_k": "all"}):
            r = client.post(P, json={"inputs": "x", "parameters": params})
            codes.append(("cls", sorted(params), r.status_code))
    assert len(codes) >= 60
    assert [c for c in codes if not 400 <= c[-1] < 500] == []
    assert health(gen_server)["status"] == "ok"


def test_error_bodies_name_the_problem(gen_server: Any) -> None:
    url = f"{gen_server.url}/v1/completions"
    r = httpx.post(url, json={"prompt": "a", "max_tokens": -5})
    assert r.status_code == 422 and r.json()["error"]["param"] == "max_tokens"
    assert r.json()["detail"][0]["loc"] == ["body", "max_tokens"]
    r = httpx.post(url, json={"prompt": "the movie was great " * 20, "max_tokens": 60})
    n = len(gen_server.pipe.tokenizer.encode("the movie was great " * 20))
    assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded"
    message = r.json()["error"]["message"]
    assert f"{n} tokens" in message and "max_tokens is 60" in message and "context of 64" in message
    r = httpx.post(url, json={"prompt": "a", "model_path": "/etc/passwd"})
    assert r.status_code == 422 and "Extra inputs are not permitted" in r.json()["error"]["message"]


def test_bodies_over_1_mb_get_413(gen_server: Any) -> None:
    url = f"{gen_server.url}/v1/completions"
    big = httpx.post(url, json={"prompt": "a" * 1_100_000}, timeout=30)
    assert big.status_code == 413 and big.json()["error"]["code"] == "request_too_large"
    chunks = (b"x" * 65_536 for _ in range(20))  # no Content-Length: chunked transfer, cut off past 1 MB
    chunked = httpx.post(url, content=chunks, headers={"content-type": "application/json"}, timeout=30)
    assert chunked.status_code == 413
    assert httpx.post(url, json={"prompt": "a" * 90_000, "max_tokens": 1}).status_code == 400  # under 1 MB: parsed


# ---- concurrency and disconnects -----------------------------------------------------------------


def _complete(server: Any, max_tokens: int, timeout: float = 30) -> int:
    body = {"prompt": "the cat", "max_tokens": max_tokens, "temperature": 0}
    return httpx.post(f"{server.url}/v1/completions", json=body, timeout=timeout).status_code


def test_four_times_the_cap_at_once_gets_429_beyond_it(gen_server: Any) -> None:
    codes = in_threads([lambda: _complete(gen_server, 20)] * 8)  # cap 2; each holds its slot ~0.5 s
    assert sorted(set(codes)) == [200, 429], codes
    assert codes.count(200) >= 2 and codes.count(429) >= 4
    wait_until(lambda: health(gen_server)["active_requests"] == 0)
    assert _complete(gen_server, 2) == 200  # no crash, slots all free again


def test_stream_disconnect_frees_the_slot_and_stops_generating(gen_server: Any) -> None:
    body = {"prompt": "the cat", "max_tokens": 60, "stream": True, "temperature": 0}  # ~1.5 s each
    client = httpx.Client(timeout=30)
    opened = [client.stream("POST", f"{gen_server.url}/v1/completions", json=body) for _ in range(2)]
    responses = [cm.__enter__() for cm in opened]
    readers = [r.iter_lines() for r in responses]  # kept alive: closing an httpx line iterator drops the connection
    for r, lines in zip(responses, readers):
        assert r.status_code == 200
        while not next(lines).startswith("data: "):
            pass
    try:
        assert in_threads([lambda: _complete(gen_server, 2)] * 6) == [429] * 6  # both slots held by the streams
        assert health(gen_server)["active_requests"] == 2
    finally:
        for r in responses:
            r.close()  # the client goes away mid-stream
        client.close()
    freed = wait_until(lambda: health(gen_server)["active_requests"] == 0, timeout=1.0)
    calls = gen_server.model.calls
    time.sleep(0.2)
    assert gen_server.model.calls == calls  # the workers stopped, not just the responses
    assert freed < 1.0 and _complete(gen_server, 2) == 200


def test_plain_request_disconnect_cancels_the_work(gen_server: Any) -> None:
    start = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        _complete(gen_server, 60, timeout=0.3)  # would take ~1.5 s; the client gives up after 0.3 s
    wait_until(lambda: health(gen_server)["active_requests"] == 0, timeout=1.5)
    assert time.monotonic() - start < 1.2
    calls = gen_server.model.calls
    time.sleep(0.2)
    assert gen_server.model.calls == calls
