"""Lab 06's plausible mistakes."""

from wrong_answers import Mistake, edit

LAB = "06-bedrock"

MISTAKES = [
    # Exercise 1: the bodies Bedrock rejects
    Mistake(
        "Claude's system prompt left as a message role",
        {"ex1-answer": edit(LAB, "ex1-answer", (
            '''                "messages": [{"role": "user", "content": [{"type": "text", "text": prompt}]}]}
        if system:
            body["system"] = system
        return body
    if kind == "nova":''',
            '''                "messages": [{"role": "user", "content": [{"type": "text", "text": prompt}]}]}
        if system:
            body["messages"].insert(0, {"role": "system", "content": system})
        return body
    if kind == "nova":'''))},
        {"ex1-tests": 0},
        {"ex1-tests": 'Unexpected role "system"'},
    ),
    Mistake(
        "top_p kept beside temperature for Claude 4.5",
        {"ex1-answer": edit(LAB, "ex1-answer", (
            '''body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": max_tokens, "temperature": temperature,''',
            '''body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": max_tokens, "temperature": temperature,
                "top_p": 0.9,'''))},
        {"ex1-tests": 0},
        {"ex1-tests": "cannot both be specified"},
    ),
    Mistake(
        "Nova's system prompt sent as a string",
        {"ex1-answer": edit(LAB, "ex1-answer", ('body["system"] = [{"text": system}]', 'body["system"] = system'))},
        {"ex1-tests": 0},
        {"ex1-tests": "a system block needs text"},
    ),
    Mistake(
        "Llama sent the bare prompt (accepted, and still wrong)",
        {"ex1-answer": edit(LAB, "ex1-answer", (
            'return {"prompt": chat, "max_gen_len": max_tokens, "temperature": temperature}',
            'return {"prompt": prompt, "max_gen_len": max_tokens, "temperature": temperature}'))},
        {"ex1-llama": 0},
        {"ex1-llama": "bare prompt"},
    ),
    # Exercise 2: parsing each family's answer
    Mistake(
        "Llama's stop reason not translated",
        {"ex2-answer": edit(LAB, "ex2-answer", ('reason = {"stop": "end_turn", "length": "max_tokens"}[body["stop_reason"]]',
                                                'reason = body["stop_reason"]'))},
        {"ex2-tests": 0},
        {"ex2-tests": "expected 'max_tokens'"},
    ),
    Mistake(
        "only Nova's first text block",
        {"ex2-answer": edit(LAB, "ex2-answer", (
            'text = "".join(block.get("text", "") for block in body["output"]["message"]["content"])',
            'text = body["output"]["message"]["content"][0]["text"]'))},
        {"ex2-tests": 0},
        {"ex2-tests": "join every text block"},
    ),
    Mistake(
        "every stop reason collapsed to end_turn or max_tokens",
        {"ex2-answer": edit(LAB, "ex2-answer", (
            '''                     body["stop_reason"])
    if kind == "nova":''',
            '''                     "max_tokens" if body["stop_reason"] == "max_tokens" else "end_turn")
    if kind == "nova":'''))},
        {"ex2-tests": 0},
        {"ex2-tests": "stop_sequence is already in Converse's vocabulary"},
    ),
    # Exercise 3: streaming
    Mistake(
        "whole text printed at the end",
        {"ex3-answer": edit(LAB, "ex3-answer", ('            out(delta, end="", flush=True)\n', ""),
                            ('out("", flush=True)', 'out("".join(parts), flush=True)'))},
        {"ex3-tests": 0},
        {"ex3-tests": "print each delta as it arrives"},
    ),
    Mistake(
        "max_tokens not passed to ConverseStream",
        {"ex3-answer": edit(LAB, "ex3-answer", (
            '''messages=[{"role": "user", "content": [{"text": prompt}]}],
                                       inferenceConfig={"maxTokens": max_tokens})''',
            '''messages=[{"role": "user", "content": [{"text": prompt}]}])'''))},
        {"ex3-tests": 0},
        {"ex3-tests": "pass max_tokens as inferenceConfig.maxTokens"},
    ),
    Mistake(
        "input tokens not read from the metadata event",
        {"ex3-answer": edit(LAB, "ex3-answer", ('int(usage.get("inputTokens", 0))', "0"))},
        {"ex3-tests": 0},
        {"ex3-tests": "token counts come from the metadata event"},
    ),
    # Exercise 4: retries
    Mistake(
        "every ClientError retried",
        {"ex4-answer": edit(LAB, "ex4-answer", ('if err.response["Error"]["Code"] not in RETRYABLE or attempt == max_attempts - 1:',
                                                "if attempt == max_attempts - 1:"))},
        {"ex4-tests": 0},
        {"ex4-tests": "never retry a ValidationException"},
    ),
    Mistake(
        "exponential backoff without jitter",
        {"ex4-answer": edit(LAB, "ex4-answer", ("sleep(random.uniform(0, min(max_delay, base_delay * 2 ** attempt)))",
                                                "sleep(min(max_delay, base_delay * 2 ** attempt))"))},
        {"ex4-jitter": 0},
        {"ex4-jitter": "delays must be random (jitter)"},
    ),
    Mistake(
        "a sleep after the last attempt",
        {"ex4-answer": edit(LAB, "ex4-answer", (
            '''            if err.response["Error"]["Code"] not in RETRYABLE or attempt == max_attempts - 1:
                raise
            sleep(random.uniform(0, min(max_delay, base_delay * 2 ** attempt)))''',
            '''            if err.response["Error"]["Code"] not in RETRYABLE:
                raise
            last = err
            sleep(random.uniform(0, min(max_delay, base_delay * 2 ** attempt)))
    raise last'''))},
        {"ex4-tests": 0},
        {"ex4-tests": "never after the last attempt"},
    ),
    # Exercise 5: what each call costs
    Mistake(
        "prices read as per million tokens",
        {"ex5-answer": edit(LAB, "ex5-answer", (
            'return input_tokens / 1000 * p["input"] + output_tokens / 1000 * p["output"]',
            'return input_tokens / 1_000_000 * p["input"] + output_tokens / 1_000_000 * p["output"]'))},
        {"ex5-tests": 0},
        {"ex5-tests": "1,200 in + 300 out should cost"},
    ),
    Mistake(
        "inference profile ids not resolved to their model",
        {"ex5-answer": edit(LAB, "ex5-answer", ('''    for prefix in PROFILE_PREFIXES:
        base = base.removeprefix(prefix)
''', ""))},
        {"ex5-tests": 0},
        {"ex5-tests": "an inference profile is billed as the foundation model"},
    ),
    Mistake(
        "no output price for embedding models",
        {"ex5-answer": edit(LAB, "ex5-answer", ('prices.setdefault(entry["model_id"], {"input": 0.0, "output": 0.0})[side]',
                                                'prices.setdefault(entry["model_id"], {})[side]'))},
        {"ex5-tests": 0},
        {"ex5-tests": "an embedding model has no output price"},
    ),
    # Exercise 6: which model, which mode
    Mistake(
        "the cheapest model whatever its quality",
        {"ex6-answer": edit(LAB, "ex6-answer", ("        if QUALITY[workload][model_id] >= BAR[workload]:\n", "        if True:\n"))},
        {"ex6-assistant": 0, "ex6-digest": 0},
        {"ex6-assistant": "no bargain if it is not good enough", "ex6-digest": "the bar is 80%"},
    ),
    Mistake(
        "batch for the interactive assistant too",
        {"ex6-answer": edit(LAB, "ex6-answer", (
            '''assistant_model, assistant_usd = cheapest_fit("assistant")''',
            '''assistant_model, assistant_usd = cheapest_fit("assistant", batch=True)'''),
            ('"assistant": (assistant_model, "on demand", assistant_usd)', '"assistant": (assistant_model, "batch", assistant_usd)'))},
        {"ex6-assistant": 0},
        {"ex6-assistant": "answers engineers while they wait"},
    ),
    Mistake(
        "the nightly digest on demand",
        {"ex6-answer": edit(LAB, "ex6-answer", (
            '''digest_model, digest_usd = cheapest_fit("digest", batch=True)''',
            '''digest_model, digest_usd = cheapest_fit("digest")'''),
            ('"digest": (digest_model, "batch", digest_usd)', '"digest": (digest_model, "on demand", digest_usd)'))},
        {"ex6-digest": 0},
        {"ex6-digest": "read the next day"},
    ),
    Mistake(
        "output tokens left out of the monthly cost",
        {"ex6-answer": edit(LAB, "ex6-answer", ("call_cost(model_id, tokens_in, tokens_out, prices)",
                                                "call_cost(model_id, tokens_in, 0, prices)"))},
        {"ex6-cost": 0, "ex6-assistant": 0, "ex6-digest": 0},
        {"ex6-cost": "30 days of 40,000 requests", "ex6-assistant": "the assistant's monthly cost",
         "ex6-digest": "the digest's monthly cost"},
    ),
    # Exercise 7: the guardrail that blocks everything
    Mistake(
        "only the errors AWS reported fixed: the broad topics stay",
        {"ex7-config": edit(LAB, "ex7-config", (
            '''        {"name": "Financial Advice", "definition": "Providing specific financial or investment advice",
         "examples": ["Should I invest in this stock?", "What is the best investment strategy?"], "type": "DENY"},
        {"name": "Medical Advice", "definition": "Providing medical diagnosis or treatment recommendations",
         "examples": ["What medication should I take?", "Do I have this disease?"], "type": "DENY"},''',
            '''        {"name": "Money", "type": "DENY",
         "definition": "Anything about money, prices, costs, budgets, savings or spending",
         "examples": ["How much does it cost?", "How can I save money?", "Should I invest in this stock?"]},
        {"name": "Health", "type": "DENY",
         "definition": "Anything about health, the body, pain, illness or wellbeing",
         "examples": ["Is this healthy?", "What medication should I take?", "Do I have this disease?"]},'''))},
        {"ex7-guardrail": 0},
        {"ex7-guardrail": "topicPolicy: Money"},
    ),
    Mistake(
        "API-key regex not anchored",
        {"ex7-config": edit(LAB, "ex7-config", ('"pattern": r"\\b[A-Za-z0-9]{32}\\b"', '"pattern": r"[A-Za-z0-9]{32}"'))},
        {"ex7-guardrail": 0},
        {"ex7-guardrail": "regex API-Key"},
    ),
    Mistake(
        "denied topics removed altogether",
        {"ex7-config": edit(LAB, "ex7-config", (
            '''    topicPolicyConfig={"topicsConfig": [
        {"name": "Financial Advice", "definition": "Providing specific financial or investment advice",
         "examples": ["Should I invest in this stock?", "What is the best investment strategy?"], "type": "DENY"},
        {"name": "Medical Advice", "definition": "Providing medical diagnosis or treatment recommendations",
         "examples": ["What medication should I take?", "Do I have this disease?"], "type": "DENY"},
    ]},
''', ""))},
        {"ex7-guardrail": 0},
        {"ex7-guardrail": "(topicPolicy)"},
    ),
    Mistake(
        "the model called even when the guardrail blocks",
        {"ex7-answer": edit(LAB, "ex7-answer", ('''    if check["action"] == "GUARDRAIL_INTERVENED":
        return " ".join(o["text"] for o in check["outputs"]), True
''', ""))},
        {"ex7-tests": 0},
        {"ex7-tests": "must not reach the model"},
    ),
    Mistake(
        "the model called without guardrailConfig",
        {"ex7-answer": edit(LAB, "ex7-answer", (
            '''r = runtime.converse(modelId=model_id, messages=[{"role": "user", "content": [{"text": question}]}],
                         guardrailConfig={"guardrailIdentifier": guardrail_id, "guardrailVersion": version})''',
            '''r = runtime.converse(modelId=model_id, messages=[{"role": "user", "content": [{"text": question}]}])'''))},
        {"ex7-tests": 0},
        {"ex7-tests": "call the model with guardrailConfig"},
    ),
    Mistake(
        "the assessment's outputs returned instead of the message",
        {"ex7-answer": edit(LAB, "ex7-answer", ('return " ".join(o["text"] for o in check["outputs"]), True',
                                                'return check["outputs"], True'))},
        {"ex7-tests": 0},
        {"ex7-tests": "return the guardrail's message"},
    ),
    # Exercise 8: the tool-use loop
    Mistake(
        "toolResult with a toolUseId of its own",
        {"ex8-answer": edit(LAB, "ex8-answer", (
            'results.append({"toolResult": {"toolUseId": use["toolUseId"], "content": [{"json": output}]}})',
            'results.append({"toolResult": {"toolUseId": str(uuid.uuid4()), "content": [{"json": output}]}})'))},
        {"ex8-tests": 0},
        {"ex8-tests": "Expected toolResult blocks"},
    ),
    Mistake(
        "the model's toolUse message not sent back",
        {"ex8-answer": edit(LAB, "ex8-answer", ("        messages.append(message)\n", ""))},
        {"ex8-tests": 0},
        {"ex8-tests": "ValidationException"},
    ),
    Mistake(
        "a failing tool crashes the loop",
        {"ex8-answer": edit(LAB, "ex8-answer", (
            '''            try:
                output = tools[use["name"]](**use["input"])
                results.append({"toolResult": {"toolUseId": use["toolUseId"], "content": [{"json": output}]}})
            except Exception as err:
                results.append({"toolResult": {"toolUseId": use["toolUseId"], "status": "error",
                                               "content": [{"text": f"{type(err).__name__}: {err}"}]}})''',
            '''            output = tools[use["name"]](**use["input"])
            results.append({"toolResult": {"toolUseId": use["toolUseId"], "content": [{"json": output}]}})'''))},
        {"ex8-tests": 0},
        {"ex8-tests": "must not crash your loop"},
    ),
    Mistake(
        "a schema that accepts any string",
        {"ex8-answer": edit(LAB, "ex8-answer", ('"pattern": r"^ml\\.", ', ""))},
        {"ex8-schema": 0},
        {"ex8-schema": "with an EC2 instance type"},
    ),
    # Exercise 9: the agent
    Mistake(
        "a new session for the returned results",
        {"ex9-answer": edit(LAB, "ex9-answer", (
            "        response = agent_runtime.invoke_agent(agentId=agent_id, agentAliasId=alias_id, sessionId=session_id, **request)",
            "        response = agent_runtime.invoke_agent(agentId=agent_id, agentAliasId=alias_id,\n"
            "                                              sessionId=str(uuid.uuid4()), **request)"))},
        {"ex9-tests": 0, "ex9-failure": 0},
        {"ex9-tests": "no pending action", "ex9-failure": "in the same session"},
    ),
    Mistake(
        "a failed function reported as a success",
        {"ex9-answer": edit(LAB, "ex9-answer", ('                result["responseState"] = "FAILURE"\n', ""))},
        {"ex9-failure": 0},
        {"ex9-failure": "responseState FAILURE"},
    ),
    Mistake(
        "the agent never prepared",
        {"ex9-answer": edit(LAB, "ex9-answer", (
            '''    bedrock_agent.prepare_agent(agentId=agent_id)
    while bedrock_agent.get_agent(agentId=agent_id)["agent"]["agentStatus"] != "PREPARED":
        time.sleep(2)
''', ""))},
        {"ex9-tests": 0, "ex9-failure": 0},
        {"ex9-tests": "PrepareAgent", "ex9-failure": "build_agent did not finish"},
    ),
]
