"""Tool use offline: Converse and ConverseStream, Claude's and Nova's native bodies, the stand-in's policy."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError
from jsonschema import Draft202012Validator

from labkit.bedrock import tools
from labkit.bedrock.chat import ChatRequest, Message, ToolResult, ToolSpec, ToolUse

CLAUDE = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
NOVA = "us.amazon.nova-lite-v1:0"
WEATHER = {"type": "object", "properties": {"city": {"type": "string", "description": "The city"},
                                            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
           "required": ["city"]}
PRICE = {"type": "object", "properties": {"instance_type": {"type": "string", "pattern": r"^ml\."},
                                          "hours": {"type": "number", "minimum": 0}},
         "required": ["instance_type"]}
TOOLS = {"tools": [
    {"toolSpec": {"name": "get_weather", "description": "Get the current weather for a city.",
                  "inputSchema": {"json": WEATHER}}},
    {"toolSpec": {"name": "get_instance_price",
                  "description": "Look up the on-demand hourly price in USD of a SageMaker instance type.",
                  "inputSchema": {"json": PRICE}}}]}
SCHEMAS = {"get_weather": WEATHER, "get_instance_price": PRICE}


def _ask(rt, text, config=TOOLS, model=CLAUDE, **kw):
    return rt.converse(modelId=model, messages=[{"role": "user", "content": [{"text": text}]}], toolConfig=config,
                       **kw)


def _error(call, *a, **kw):
    with pytest.raises(ClientError) as err:
        call(*a, **kw)
    return err.value.response["Error"]


def _tool_use(response):
    blocks = response["output"]["message"]["content"]
    uses = [b["toolUse"] for b in blocks if "toolUse" in b]
    assert len(uses) == 1, blocks
    return uses[0]


# --- auto ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", [CLAUDE, NOVA, "us.meta.llama3-3-70b-instruct-v1:0", "cohere.command-r-v1:0",
                                   "mistral.mistral-large-2402-v1:0", "ai21.jamba-1-5-mini-v1:0"])
def test_auto_calls_the_tool_that_fits_with_arguments_from_the_question(bedrock_clients, model):
    _, rt = bedrock_clients
    r = _ask(rt, "What's the weather in Seattle, in fahrenheit?", model=model)
    assert r["stopReason"] == "tool_use"
    use = _tool_use(r)
    assert use["name"] == "get_weather" and use["input"] == {"city": "Seattle", "unit": "fahrenheit"}
    assert use["toolUseId"].startswith("tooluse_")
    r = _ask(rt, "How much does an ml.g5.xlarge cost for 10 hours?", model=model)
    use = _tool_use(r)
    assert use["name"] == "get_instance_price" and use["input"] == {"instance_type": "ml.g5.xlarge", "hours": 10}


def test_auto_answers_in_text_when_no_tool_fits(bedrock_clients):
    _, rt = bedrock_clients
    r = _ask(rt, "Context: Checkpoints are saved to S3 so that interrupted jobs resume.\n"
                 "Question: Where are checkpoints saved?")
    assert r["stopReason"] == "end_turn"
    assert "S3" in r["output"]["message"]["content"][0]["text"]


def test_auto_asks_for_a_required_argument_it_cannot_find(bedrock_clients):
    _, rt = bedrock_clients
    r = _ask(rt, "What is the weather like?")
    assert r["stopReason"] == "end_turn"
    text = r["output"]["message"]["content"][0]["text"]
    assert "get_weather" in text and "city" in text


def test_the_tool_result_round_trip_gives_a_grounded_answer(bedrock_clients):
    _, rt = bedrock_clients
    question = [{"role": "user", "content": [{"text": "What's the weather in Seattle?"}]}]
    first = rt.converse(modelId=CLAUDE, messages=question, toolConfig=TOOLS)
    use = _tool_use(first)
    messages = [*question, first["output"]["message"],
                {"role": "user", "content": [{"toolResult": {"toolUseId": use["toolUseId"], "content": [
                    {"json": {"city": "Seattle", "temperature_c": 12, "conditions": "light rain"}}]}}]}]
    second = rt.converse(modelId=CLAUDE, messages=messages, toolConfig=TOOLS)
    assert second["stopReason"] == "end_turn"
    text = second["output"]["message"]["content"][0]["text"]
    assert "12" in text and "light rain" in text and "get_weather" in text
    # A text result is quoted too.
    messages[2]["content"][0]["toolResult"]["content"] = [{"text": "It is 12 degrees and raining in Seattle."}]
    assert "12 degrees" in rt.converse(modelId=CLAUDE, messages=messages,
                                       toolConfig=TOOLS)["output"]["message"]["content"][0]["text"]


# --- forced choices --------------------------------------------------------------------------------


def test_tool_choice_any_always_calls_a_tool_and_tool_calls_the_named_one(bedrock_clients):
    _, rt = bedrock_clients
    r = _ask(rt, "What does ml.m5.large cost?", {**TOOLS, "toolChoice": {"any": {}}})
    assert _tool_use(r)["name"] == "get_instance_price"
    r = _ask(rt, "Tell me a joke.", {**TOOLS, "toolChoice": {"any": {}}})
    use = _tool_use(r)
    assert r["stopReason"] == "tool_use"
    assert not list(Draft202012Validator(SCHEMAS[use["name"]]).iter_errors(use["input"]))
    r = _ask(rt, "What does ml.m5.large cost in Paris?", {**TOOLS, "toolChoice": {"tool": {"name": "get_weather"}}})
    use = _tool_use(r)
    assert use["name"] == "get_weather" and use["input"]["city"] == "Paris"


def test_forced_choices_keep_calling_after_a_result(bedrock_clients):
    _, rt = bedrock_clients
    config = {**TOOLS, "toolChoice": {"tool": {"name": "get_weather"}}}
    first = _ask(rt, "Weather in Oslo?", config)
    messages = [{"role": "user", "content": [{"text": "Weather in Oslo?"}]}, first["output"]["message"],
                {"role": "user", "content": [{"toolResult": {"toolUseId": _tool_use(first)["toolUseId"],
                                                             "content": [{"text": "cold"}]}}]}]
    assert rt.converse(modelId=CLAUDE, messages=messages, toolConfig=config)["stopReason"] == "tool_use"
    assert rt.converse(modelId=CLAUDE, messages=messages, toolConfig=TOOLS)["stopReason"] == "end_turn"


@pytest.mark.parametrize("model,choice", [("cohere.command-r-v1:0", "any"), ("us.meta.llama3-3-70b-instruct-v1:0",
                                                                            "tool")])
def test_models_refuse_tool_choices_they_do_not_support(bedrock_clients, model, choice):
    _, rt = bedrock_clients
    value = {"name": "get_weather"} if choice == "tool" else {}
    err = _error(_ask, rt, "x", {**TOOLS, "toolChoice": {choice: value}}, model=model)
    assert err["Message"] == (f"This model doesn't support the toolConfig.toolChoice.{choice} field. Remove "
                              f"toolConfig.toolChoice.{choice} and try again.")


# --- no tool ------------------------------------------------------------------------------------------


def test_no_tool_config_and_models_without_tool_use(bedrock_clients):
    _, rt = bedrock_clients
    r = rt.converse(modelId=CLAUDE, messages=[{"role": "user", "content": [{"text": "Weather in Seattle?"}]}])
    assert r["stopReason"] == "end_turn" and "toolUse" not in r["output"]["message"]["content"][0]
    for model in ("amazon.titan-text-express-v1", "us.deepseek.r1-v1:0"):
        assert _error(_ask, rt, "x", model=model)["Message"] == "This model doesn't support tool use."
    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 200, "tool_choice": {"type": "none"},
            "tools": [{"name": "get_weather", "input_schema": WEATHER}],
            "messages": [{"role": "user", "content": "What's the weather in Seattle?"}]}
    answer = json.loads(rt.invoke_model(modelId=CLAUDE, body=json.dumps(body))["body"].read())
    assert answer["stop_reason"] == "end_turn" and answer["content"][0]["type"] == "text"


# --- bad arguments and bad conversations ----------------------------------------------------------------


@pytest.mark.parametrize("schema,message", [
    ({"type": "object", "properties": {"a": {"type": "strng"}}}, "is not a valid JSON schema"),
    ({"type": "array", "items": {"type": "string"}}, "type must be one of the following: object"),
    ({"type": "object", "required": "city"}, "is not a valid JSON schema"),
])
def test_input_schemas_must_be_json_schemas_of_objects(bedrock_clients, schema, message):
    _, rt = bedrock_clients
    config = {"tools": [{"toolSpec": {"name": "t", "inputSchema": {"json": schema}}}]}
    err = _error(_ask, rt, "x", config)
    assert err["Code"] == "ValidationException" and message in err["Message"], err["Message"]


def test_tool_errors_are_reported_and_results_must_match_uses(bedrock_clients):
    _, rt = bedrock_clients
    question = {"role": "user", "content": [{"text": "What's the weather in Atlantis?"}]}
    first = rt.converse(modelId=CLAUDE, messages=[question], toolConfig=TOOLS)
    use = _tool_use(first)
    failed = {"role": "user", "content": [{"toolResult": {"toolUseId": use["toolUseId"], "status": "error",
                                                          "content": [{"text": "unknown city: Atlantis"}]}}]}
    r = rt.converse(modelId=CLAUDE, messages=[question, first["output"]["message"], failed], toolConfig=TOOLS)
    text = r["output"]["message"]["content"][0]["text"]
    assert "failed" in text and "unknown city: Atlantis" in text
    empty = {"role": "user", "content": [{"toolResult": {"toolUseId": use["toolUseId"], "status": "error",
                                                         "content": []}}]}
    err = _error(rt.converse, modelId=CLAUDE, messages=[question, first["output"]["message"], empty], toolConfig=TOOLS)
    assert err["Message"] == ("The content field at messages.2.content.0.toolResult cannot be empty when status "
                              "value is error.")
    other = {"role": "user", "content": [{"text": "never mind"}]}
    err = _error(rt.converse, modelId=CLAUDE, messages=[question, first["output"]["message"], other], toolConfig=TOOLS)
    assert err["Message"].startswith("Expected toolResult blocks at messages.2.content for the following Ids:")
    stray = [question, {"role": "assistant", "content": [{"text": "ok"}]},
             {"role": "user", "content": [{"toolResult": {"toolUseId": "tooluse_x", "content": [{"text": "y"}]}}]}]
    err = _error(rt.converse, modelId=CLAUDE, messages=stray, toolConfig=TOOLS)
    assert err["Message"] == ("The number of toolResult blocks at messages.2.content exceeds the number of toolUse "
                              "blocks of previous turn.")
    err = _error(rt.converse, modelId=CLAUDE, messages=[question, first["output"]["message"], failed])
    assert err["Message"] == "The toolConfig field must be defined when using toolUse and toolResult content blocks."


def test_claude_native_tool_pairs_are_checked_as_anthropic_checks_them(bedrock_clients):
    _, rt = bedrock_clients
    base = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 200,
            "tools": [{"name": "get_weather", "description": "Get the weather for a city.", "input_schema": WEATHER}]}
    body = {**base, "messages": [{"role": "user", "content": "Weather in Rome?"},
                                 {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1",
                                                                    "name": "get_weather", "input": {"city": "Rome"}}]},
                                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_2",
                                                               "content": "sunny"}]}]}
    err = _error(rt.invoke_model, modelId=CLAUDE, body=json.dumps(body))
    assert "`tool_use` ids were found without `tool_result` blocks immediately after: toolu_1" in err["Message"]
    stray = {**base, "messages": [{"role": "user", "content": "Weather in Rome?"},
                                  {"role": "assistant", "content": "Let me think."},
                                  {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_2",
                                                                "content": "sunny"}]}]}
    err = _error(rt.invoke_model, modelId=CLAUDE, body=json.dumps(stray))
    assert "unexpected `tool_use_id` found in `tool_result` blocks: toolu_2" in err["Message"]
    body["messages"][2]["content"][0]["tool_use_id"] = "toolu_1"
    answer = json.loads(rt.invoke_model(modelId=CLAUDE, body=json.dumps(body))["body"].read())
    assert answer["stop_reason"] == "end_turn" and "sunny" in answer["content"][0]["text"]
    err = _error(rt.invoke_model, modelId=CLAUDE, body=json.dumps({**base, "tool_choice": {"type": "tool",
                                                                                          "name": "nope"},
                                                                   "messages": [{"role": "user", "content": "x"}]}))
    assert "Tool 'nope' not found" in err["Message"]


# --- streaming ----------------------------------------------------------------------------------------


def test_converse_stream_sends_tool_use_as_start_and_input_deltas(bedrock_clients):
    _, rt = bedrock_clients
    r = rt.converse_stream(modelId=CLAUDE, messages=[{"role": "user", "content": [
        {"text": "How much does ml.p4d.24xlarge cost for 3 hours? Quote it in \"USD per hour\"."}]}], toolConfig=TOOLS)
    assert "stand-in" in r["ResponseMetadata"]["HTTPHeaders"]["x-labkit-stand-in"]
    events = list(r["stream"])
    names = [next(iter(e)) for e in events]
    assert names[0] == "messageStart" and names[-2:] == ["messageStop", "metadata"]
    (start,) = [e["contentBlockStart"] for e in events if "contentBlockStart" in e]
    assert start["start"]["toolUse"]["name"] == "get_instance_price"
    deltas = [e["contentBlockDelta"]["delta"]["toolUse"]["input"] for e in events if "contentBlockDelta" in e]
    assert len(deltas) > 1, "the input JSON arrives in pieces"
    arguments = json.loads("".join(deltas))
    assert arguments["instance_type"] == "ml.p4d.24xlarge" and arguments["hours"] == 3
    assert events[names.index("messageStop")]["messageStop"]["stopReason"] == "tool_use"


def test_streaming_tool_use_is_refused_where_aws_refuses_it(bedrock_clients):
    _, rt = bedrock_clients
    err = _error(rt.converse_stream, modelId="us.meta.llama4-maverick-17b-instruct-v1:0",
                 messages=[{"role": "user", "content": [{"text": "x"}]}], toolConfig=TOOLS)
    assert err["Message"] == "This model doesn't support tool use in streaming mode."


def test_claude_and_nova_native_streams_carry_tool_use(bedrock_clients):
    _, rt = bedrock_clients
    claude = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 300,
              "tools": [{"name": "get_weather", "description": "Get the current weather for a city.",
                         "input_schema": WEATHER}],
              "messages": [{"role": "user", "content": "What's the weather in Lisbon?"}]}
    chunks = [json.loads(e["chunk"]["bytes"]) for e in
              rt.invoke_model_with_response_stream(modelId=CLAUDE, body=json.dumps(claude))["body"]]
    start = next(c for c in chunks if c["type"] == "content_block_start")
    assert start["content_block"]["type"] == "tool_use" and start["content_block"]["id"].startswith("toolu_bdrk_")
    partial = "".join(c["delta"]["partial_json"] for c in chunks if c["type"] == "content_block_delta")
    assert json.loads(partial) == {"city": "Lisbon"}
    assert next(c for c in chunks if c["type"] == "message_delta")["delta"]["stop_reason"] == "tool_use"
    nova = {"messages": [{"role": "user", "content": [{"text": "What's the weather in Lisbon?"}]}],
            "toolConfig": {"tools": TOOLS["tools"]}, "inferenceConfig": {"max_new_tokens": 300}}
    whole = json.loads(rt.invoke_model(modelId=NOVA, body=json.dumps(nova))["body"].read())
    assert whole["stopReason"] == "tool_use"
    assert whole["output"]["message"]["content"][0]["toolUse"]["input"] == {"city": "Lisbon"}
    chunks = [json.loads(e["chunk"]["bytes"]) for e in
              rt.invoke_model_with_response_stream(modelId=NOVA, body=json.dumps(nova))["body"]]
    assert any("contentBlockStart" in c and "toolUse" in c["contentBlockStart"]["start"] for c in chunks)


# --- the policy, without HTTP ---------------------------------------------------------------------------


@pytest.mark.parametrize("question,schema,expected", [
    ("Book a table for 4 at \"Chez Panisse\" in Berkeley", {"type": "object", "properties": {
        "restaurant": {"type": "string"}, "city": {"type": "string"}, "people": {"type": "integer"}},
        "required": ["restaurant", "people"]}, {"restaurant": "Chez Panisse", "people": 4, "city": "Berkeley"}),
    ("Search the docs for spot training checkpoints", {"type": "object", "properties": {"query": {"type": "string"}},
                                                       "required": ["query"]},
     {"query": "Search the docs for spot training checkpoints"}),
    ("Compare ml.g5.xlarge and ml.g5.2xlarge", {"type": "object", "properties": {
        "instance_types": {"type": "array", "items": {"type": "string"}}}},
     {"instance_types": ["ml.g5.xlarge", "ml.g5.2xlarge"]}),
    ("Is it raining in New York? Answer in celsius", WEATHER, {"city": "New York", "unit": "celsius"}),
])
def test_fill_arguments_follows_the_documented_policy(lab, question, schema, expected):
    args, missing = tools.fill_arguments(schema, question)
    assert args == expected and missing == []
    assert not tools.validate_input(schema, args)


def test_forced_fill_always_validates_and_auto_refuses_incomplete_calls(lab):
    schema = {"type": "object", "properties": {"order_id": {"type": "string", "pattern": "^ORD-"},
                                               "count": {"type": "integer", "minimum": 1},
                                               "mode": {"type": "string", "enum": ["fast", "slow"]}},
              "required": ["order_id", "count", "mode"]}
    args, missing = tools.fill_arguments(schema, "hello there", forced=True)
    assert set(missing) == {"order_id", "count"} and tools.validate_input(schema, args)[0].startswith("order_id")
    spec = ToolSpec("track_order", "Track an order by its id.", schema)
    request = ChatRequest(messages=[Message("user", ["Track my order please"])], tools=[spec])
    assert tools.decide(request, "tooluse_1") is None
    request.messages[0].content = ["Track order ORD-17, 2 parcels, fast please"]
    call = tools.decide(request, "tooluse_1")
    assert call.input == {"order_id": "ORD-17", "count": 2, "mode": "fast"}


def test_auto_does_not_call_again_once_results_are_in(lab):
    spec = ToolSpec("get_weather", "Get the current weather for a city.", WEATHER)
    request = ChatRequest(messages=[Message("user", ["Weather in Oslo?"]),
                                    Message("assistant", [ToolUse("tooluse_1", "get_weather", {"city": "Oslo"})]),
                                    Message("user", [ToolResult("tooluse_1", [{"text": "cold"}])])], tools=[spec])
    assert tools.decide(request, "tooluse_2") is None
    request.tool_choice = "any"
    assert tools.decide(request, "tooluse_2").name == "get_weather"
