"""A real local model behind an OpenAI-compatible API answers offline Bedrock when one setting names it.

The server here is a small deterministic stand-in for Ollama / llama.cpp / vLLM, started on a
port the OS chooses: the tests check the translation both ways, not intelligence.
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from botocore.exceptions import ClientError

from labkit.bedrock import generation


class _Server:
    def __init__(self):
        self.requests: list[dict] = []
        self.reply: dict = {}
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                data = json.dumps(owner.reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"

    def answer(self, content=None, tool_calls=None, finish="stop", usage=(11, 7)):
        message = {"role": "assistant", "content": content}
        if tool_calls:
            message["tool_calls"] = tool_calls
        self.reply = {"id": "chatcmpl-1", "object": "chat.completion", "model": "tiny",
                      "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                      "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1],
                                "total_tokens": sum(usage)}}

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def local(monkeypatch, lab):
    server = _Server()
    monkeypatch.setenv(generation.URL_SETTING, server.url)
    monkeypatch.setenv(generation.MODEL_SETTING, "tiny")
    monkeypatch.setenv(generation.KEY_SETTING, "secret")
    yield server
    server.close()


TOOLS = {"tools": [{"toolSpec": {"name": "get_weather", "description": "Weather for a city.", "inputSchema": {
    "json": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}}]}


def test_converse_is_translated_both_ways_and_labelled(local, bedrock_clients):
    _, rt = bedrock_clients
    local.answer("Hello from the local model.")
    png = base64.b64encode(b"\x89PNG fake").decode()
    r = rt.converse(modelId="us.anthropic.claude-haiku-4-5-20251001-v1:0", system=[{"text": "Be brief."}],
                    messages=[{"role": "user", "content": [{"text": "Hi"}, {"image": {"format": "png", "source": {
                        "bytes": base64.b64decode(png)}}}]}],
                    inferenceConfig={"maxTokens": 50, "temperature": 0.3, "stopSequences": ["###"]})
    assert r["output"]["message"]["content"] == [{"text": "Hello from the local model."}]
    assert r["usage"] == {"inputTokens": 11, "outputTokens": 7, "totalTokens": 18} and r["stopReason"] == "end_turn"
    assert r["ResponseMetadata"]["HTTPHeaders"]["x-labkit-stand-in"] == \
        f"openai-compatible; model=tiny; url={local.url}"
    (sent,) = local.requests
    assert sent["path"] == "/v1/chat/completions" and sent["auth"] == "Bearer secret"
    body = sent["body"]
    assert body["model"] == "tiny" and body["max_tokens"] == 50 and body["temperature"] == 0.3
    assert body["stop"] == ["###"] and body["stream"] is False
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    parts = body["messages"][1]["content"]
    assert parts[0] == {"type": "text", "text": "Hi"}
    assert parts[1]["image_url"]["url"] == f"data:image/png;base64,{png}"


def test_tool_use_round_trip_through_the_local_model(local, bedrock_clients):
    _, rt = bedrock_clients
    local.answer(None, [{"id": "call_9", "type": "function", "function": {"name": "get_weather",
                                                                            "arguments": "{\"city\": \"Oslo\"}"}}],
                 finish="tool_calls")
    first = rt.converse(modelId="us.amazon.nova-pro-v1:0", messages=[{"role": "user", "content": [
        {"text": "Weather in Oslo?"}]}], toolConfig={**TOOLS, "toolChoice": {"any": {}}})
    assert first["stopReason"] == "tool_use"
    assert first["output"]["message"]["content"] == [{"toolUse": {"toolUseId": "call_9", "name": "get_weather",
                                                                  "input": {"city": "Oslo"}}}]
    sent = local.requests[-1]["body"]
    assert sent["tool_choice"] == "required"
    assert sent["tools"] == [{"type": "function", "function": {"name": "get_weather",
                                                               "description": "Weather for a city.",
                                                               "parameters": TOOLS["tools"][0]["toolSpec"][
                                                                   "inputSchema"]["json"]}}]
    local.answer("It is cold in Oslo.")
    second = rt.converse(modelId="us.amazon.nova-pro-v1:0", toolConfig={
        **TOOLS, "toolChoice": {"tool": {"name": "get_weather"}}}, messages=[
        {"role": "user", "content": [{"text": "Weather in Oslo?"}]}, first["output"]["message"],
        {"role": "user", "content": [{"toolResult": {"toolUseId": "call_9", "content": [{"json": {"c": -3}}]}}]}])
    assert second["output"]["message"]["content"][0]["text"] == "It is cold in Oslo."
    sent = local.requests[-1]["body"]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["messages"][1] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]}
    assert sent["messages"][2] == {"role": "tool", "tool_call_id": "call_9", "content": "{\"c\": -3}"}


@pytest.mark.parametrize("model,body,read", [
    ("us.anthropic.claude-haiku-4-5-20251001-v1:0",
     {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 30, "messages": [{"role": "user", "content": "Q?"}]},
     lambda b: b["content"][0]["text"]),
    ("amazon.titan-text-express-v1", {"inputText": "Q?"}, lambda b: b["results"][0]["outputText"]),
    ("us.meta.llama3-1-8b-instruct-v1:0", {"prompt": "<|begin_of_text|><|start_header_id|>user<|end_header_id|>"
                                                     "\n\nQ?<|eot_id|>"}, lambda b: b["generation"]),
    ("mistral.mistral-7b-instruct-v0:2", {"prompt": "<s>[INST] Q? [/INST]"}, lambda b: b["outputs"][0]["text"]),
    ("cohere.command-r-v1:0", {"message": "Q?"}, lambda b: b["text"]),
    ("ai21.jamba-1-5-mini-v1:0", {"messages": [{"role": "user", "content": "Q?"}]},
     lambda b: b["choices"][0]["message"]["content"]),
    ("us.deepseek.r1-v1:0", {"prompt": "<｜User｜>Q?<｜Assistant｜>"}, lambda b: b["choices"][0]["text"]),
    ("us.amazon.nova-micro-v1:0", {"messages": [{"role": "user", "content": [{"text": "Q?"}]}]},
     lambda b: b["output"]["message"]["content"][0]["text"]),
])
def test_every_family_is_answered_by_the_local_model(local, bedrock_clients, model, body, read):
    _, rt = bedrock_clients
    local.answer("A local answer.", usage=(5, 3))
    r = rt.invoke_model(modelId=model, body=json.dumps(body))
    answer = json.loads(r["body"].read())
    assert read(answer).endswith("A local answer.")
    headers = r["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-labkit-stand-in"].startswith("openai-compatible; model=tiny")
    assert headers["x-amzn-bedrock-input-token-count"] == "5" and headers["x-amzn-bedrock-output-token-count"] == "3"
    assert local.requests[-1]["body"]["messages"][-1]["content"] == "Q?"


def test_streaming_and_length_stops_through_the_local_model(local, bedrock_clients):
    _, rt = bedrock_clients
    local.answer("one two three four five six seven eight", finish="length")
    events = list(rt.converse_stream(modelId="us.amazon.nova-lite-v1:0", messages=[
        {"role": "user", "content": [{"text": "count"}]}])["stream"])
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)
    assert text == "one two three four five six seven eight"
    assert next(e for e in events if "messageStop" in e)["messageStop"]["stopReason"] == "max_tokens"


def test_a_local_server_that_is_down_gives_a_clear_error(monkeypatch, bedrock_clients):
    _, rt = bedrock_clients
    server = _Server()
    url = server.url
    server.close()
    monkeypatch.setenv(generation.URL_SETTING, url)
    monkeypatch.setenv(generation.MODEL_SETTING, "tiny")
    with pytest.raises(ClientError) as err:
        rt.converse(modelId="us.amazon.nova-lite-v1:0", messages=[{"role": "user", "content": [{"text": "hi"}]}])
    assert err.value.response["Error"]["Code"] == "ServiceUnavailableException"
    assert generation.URL_SETTING in err.value.response["Error"]["Message"]
    monkeypatch.delenv(generation.MODEL_SETTING)
    with pytest.raises(ClientError) as err:
        rt.converse(modelId="us.amazon.nova-lite-v1:0", messages=[{"role": "user", "content": [{"text": "hi"}]}])
    assert generation.MODEL_SETTING in err.value.response["Error"]["Message"]


def test_without_the_setting_the_stand_in_answers(monkeypatch, bedrock_clients):
    _, rt = bedrock_clients
    monkeypatch.delenv(generation.URL_SETTING, raising=False)
    r = rt.converse(modelId="us.amazon.nova-lite-v1:0", messages=[{"role": "user", "content": [{"text": "hi"}]}])
    assert "stand-in" in r["ResponseMetadata"]["HTTPHeaders"]["x-labkit-stand-in"]
