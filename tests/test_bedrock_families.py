"""Every model family's InvokeModel body and response, streamed and not, and what AWS refuses."""

from __future__ import annotations

import base64
import io
import json

import pytest
from botocore.exceptions import ClientError

CONTEXT = ("Managed Spot Training uses spare EC2 capacity and can reduce training cost by up to 90%. "
           "Checkpoints are saved to S3 so that interrupted jobs resume.")
QUESTION = "How much can spot training save?"
PROMPT = f"Context: {CONTEXT}\nQuestion: {QUESTION}"


def _invoke(rt, model, body):
    r = rt.invoke_model(modelId=model, body=json.dumps(body))
    return json.loads(r["body"].read()), r["ResponseMetadata"]["HTTPHeaders"]


def _stream(rt, model, body):
    r = rt.invoke_model_with_response_stream(modelId=model, body=json.dumps(body))
    return [json.loads(e["chunk"]["bytes"]) for e in r["body"]]


def _error(call, *a, **kw):
    with pytest.raises(ClientError) as err:
        call(*a, **kw)
    return err.value.response["Error"]


# (model id, request body, how to read the answer's text from the body)
TEXT_CASES = {
    "anthropic": ("us.anthropic.claude-sonnet-4-5-20250929-v1:0",
                  {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 300, "system": "Answer briefly.",
                   "messages": [{"role": "user", "content": [{"type": "text", "text": PROMPT}]}]},
                  lambda b: b["content"][0]["text"]),
    "nova": ("us.amazon.nova-pro-v1:0",
             {"schemaVersion": "messages-v1", "system": [{"text": "Answer briefly."}],
              "messages": [{"role": "user", "content": [{"text": PROMPT}]}],
              "inferenceConfig": {"max_new_tokens": 300, "temperature": 0.2}},
             lambda b: b["output"]["message"]["content"][0]["text"]),
    "titan-text": ("amazon.titan-text-express-v1",
                   {"inputText": PROMPT, "textGenerationConfig": {"maxTokenCount": 300}},
                   lambda b: b["results"][0]["outputText"]),
    "llama3": ("us.meta.llama3-1-8b-instruct-v1:0",
               {"prompt": "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"
                          f"{PROMPT}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n", "max_gen_len": 300},
               lambda b: b["generation"]),
    "llama4": ("us.meta.llama4-scout-17b-instruct-v1:0",
               {"prompt": f"<|begin_of_text|><|header_start|>user<|header_end|>\n\n{PROMPT}<|eot|>"
                          "<|header_start|>assistant<|header_end|>\n\n", "max_gen_len": 300},
               lambda b: b["generation"]),
    "mistral": ("mistral.mistral-7b-instruct-v0:2", {"prompt": f"<s>[INST] {PROMPT} [/INST]", "max_tokens": 300},
                lambda b: b["outputs"][0]["text"]),
    "mistral-chat": ("us.mistral.pixtral-large-2502-v1:0",
                     {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": 300},
                     lambda b: b["choices"][0]["message"]["content"]),
    "cohere": ("cohere.command-r-plus-v1:0",
               {"message": QUESTION, "documents": [{"title": "spot", "snippet": CONTEXT}], "max_tokens": 300},
               lambda b: b["text"]),
    "ai21": ("ai21.jamba-1-5-large-v1:0", {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": 300},
             lambda b: b["choices"][0]["message"]["content"]),
    "deepseek": ("us.deepseek.r1-v1:0",
                 {"prompt": f"<｜begin▁of▁sentence｜><｜User｜>{PROMPT}<｜Assistant｜><think>\n", "max_tokens": 500},
                 lambda b: b["choices"][0]["text"].split("</think>")[-1]),
}


@pytest.mark.parametrize("family", list(TEXT_CASES))
def test_text_family_answers_in_its_own_shape(bedrock_clients, family):
    _, rt = bedrock_clients
    model, body, text_of = TEXT_CASES[family]
    answer, headers = _invoke(rt, model, body)
    text = text_of(answer)
    assert text.startswith("(offline stand-in)") or "(offline stand-in)" in text
    assert "90%" in text, answer
    assert "labkit" not in answer, "nothing outside the provider's response shape"
    assert "stand-in" in headers["x-labkit-stand-in"]
    assert int(headers["x-amzn-bedrock-input-token-count"]) > 0 and int(headers["x-amzn-bedrock-output-token-count"]) > 0


@pytest.mark.parametrize("family", list(TEXT_CASES))
def test_text_family_streams_chunks_that_add_up(bedrock_clients, family):
    _, rt = bedrock_clients
    model, body, text_of = TEXT_CASES[family]
    whole = text_of(_invoke(rt, model, body)[0])
    chunks = _stream(rt, model, body)
    assert len(chunks) > 2
    assert "amazon-bedrock-invocationMetrics" in chunks[-1]
    pieces = {
        "anthropic": lambda c: c.get("delta", {}).get("text", ""),
        "nova": lambda c: c.get("contentBlockDelta", {}).get("delta", {}).get("text", ""),
        "titan-text": lambda c: c["outputText"],
        "llama3": lambda c: c["generation"], "llama4": lambda c: c["generation"],
        "mistral": lambda c: c["outputs"][0]["text"],
        "mistral-chat": lambda c: c["choices"][0]["message"]["content"],
        "cohere": lambda c: c.get("text", "") if c["event_type"] == "text-generation" else "",
        "ai21": lambda c: c["choices"][0]["delta"].get("content", ""),
        "deepseek": lambda c: c["choices"][0]["text"],
    }[family]
    streamed = "".join(pieces(c) for c in chunks)
    assert streamed.split("</think>")[-1].lstrip("\n") == whole.lstrip("\n")


def test_claude_multi_turn_with_an_image_and_stop_reasons(bedrock_clients):
    _, rt = bedrock_clients
    png = base64.b64encode(_png()).decode()
    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 5, "messages": [
        {"role": "user", "content": "Remember: checkpoints go to S3."},
        {"role": "assistant", "content": "Noted."},
        {"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                                   "data": png}},
                                     {"type": "text", "text": PROMPT}]}]}
    answer, _ = _invoke(rt, "us.anthropic.claude-haiku-4-5-20251001-v1:0", body)
    assert answer["stop_reason"] == "max_tokens" and answer["usage"]["output_tokens"] == 5
    assert answer["model"] == "claude-haiku-4-5-20251001"


@pytest.mark.parametrize("model,body,message", [
    ("us.anthropic.claude-haiku-4-5-20251001-v1:0",
     {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 10, "temperature": 0.5, "top_p": 0.9,
      "messages": [{"role": "user", "content": "hi"}]}, "cannot both be specified"),
    ("us.anthropic.claude-haiku-4-5-20251001-v1:0",
     {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 70000, "messages": [{"role": "user", "content": "hi"}]},
     "maximum allowed number of output tokens"),
    ("us.anthropic.claude-haiku-4-5-20251001-v1:0",
     {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 10,
      "messages": [{"role": "system", "content": "x"}, {"role": "user", "content": "hi"}]}, "Unexpected role"),
    ("us.anthropic.claude-haiku-4-5-20251001-v1:0", {"max_tokens": 10, "messages": []},
     "required key [anthropic_version] not found"),
    ("us.amazon.nova-lite-v1:0", {"messages": [{"role": "user", "content": [{"text": "hi"}]}],
                                   "inferenceConfig": {"max_new_tokens": 20000}}, "is not less or equal to 10000"),
    ("us.amazon.nova-lite-v1:0", {"messages": [{"role": "user", "content": [{"text": "hi"}]}], "prompt": "x"},
     "extraneous key [prompt]"),
    ("amazon.titan-text-express-v1", {"inputText": ""}, "expected minLength: 1"),
    ("us.meta.llama3-1-8b-instruct-v1:0", {"prompt": "hi", "max_gen_len": 4096}, "is not less or equal to 2048"),
    ("mistral.mistral-7b-instruct-v0:2", {"prompt": "hi", "top_k": 500}, "is not less or equal to 200"),
    ("mistral.mistral-7b-instruct-v0:2", {"messages": [{"role": "user", "content": "hi"}]}, "takes a prompt"),
    ("cohere.command-r-v1:0", {"chat_history": []}, "required key [message] not found"),
    ("ai21.jamba-1-5-mini-v1:0", {"messages": [{"role": "robot", "content": "hi"}]}, "is not a valid enum value"),
    ("us.deepseek.r1-v1:0", {"prompt": "hi", "max_tokens": 40000}, "is not less or equal to 32768"),
])
def test_bodies_aws_refuses_are_refused_with_its_words(bedrock_clients, model, body, message):
    _, rt = bedrock_clients
    err = _error(rt.invoke_model, modelId=model, body=json.dumps(body))
    assert err["Code"] == "ValidationException"
    assert message in err["Message"], err["Message"]


# --- embeddings ------------------------------------------------------------------------------------


def _png(color=(200, 30, 30), size=(64, 48)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize("model,body,read,dims", [
    ("amazon.titan-embed-text-v2:0", {"inputText": "spot", "dimensions": 256}, lambda b: b["embedding"], 256),
    ("amazon.titan-embed-text-v1", {"inputText": "spot"}, lambda b: b["embedding"], 1536),
    ("amazon.titan-embed-g1-text-02", {"inputText": "spot"}, lambda b: b["embedding"], 1536),
    ("amazon.titan-embed-image-v1", {"inputText": "spot", "embeddingConfig": {"outputEmbeddingLength": 384}},
     lambda b: b["embedding"], 384),
    ("cohere.embed-english-v3", {"texts": ["spot"], "input_type": "search_query"}, lambda b: b["embeddings"][0], 1024),
    ("cohere.embed-v4:0", {"texts": ["spot"], "input_type": "search_document", "output_dimension": 256},
     lambda b: b["embeddings"]["float"][0], 256),
    ("amazon.nova-2-multimodal-embeddings-v1:0",
     {"taskType": "SINGLE_EMBEDDING", "singleEmbeddingParams": {
         "embeddingPurpose": "GENERIC_INDEX", "embeddingDimension": 1024,
         "text": {"truncationMode": "END", "value": "spot"}}}, lambda b: b["embeddings"][0]["embedding"], 1024),
])
def test_text_embeddings_per_family(bedrock_clients, model, body, read, dims):
    _, rt = bedrock_clients
    answer, headers = _invoke(rt, model, body)
    vec = read(answer)
    assert len(vec) == dims and abs(sum(x * x for x in vec) - 1) < 1e-3
    assert "MiniLM" in headers["x-labkit-stand-in"]


def test_titan_and_nova_embed_images_by_their_pixels(bedrock_clients):
    _, rt = bedrock_clients
    red, red2, blue = (base64.b64encode(_png(c)).decode() for c in ((200, 30, 30), (205, 30, 30), (30, 30, 200)))

    def titan(img):
        return _invoke(rt, "amazon.titan-embed-image-v1", {"inputImage": img})[0]["embedding"]

    def nova(img):
        return _invoke(rt, "amazon.nova-2-multimodal-embeddings-v1:0", {"taskType": "SINGLE_EMBEDDING",
                       "singleEmbeddingParams": {"embeddingPurpose": "IMAGE_RETRIEVAL", "embeddingDimension": 256,
                                                 "image": {"format": "png", "source": {"bytes": img}}}})[0]

    import numpy as np

    a, b, c = (np.array(titan(x)) for x in (red, red2, blue))
    assert len(a) == 1024 and a @ b > a @ c, "a near-identical image is nearer than a different one"
    answer = nova(red)
    assert answer["embeddings"][0]["embeddingType"] == "IMAGE" and len(answer["embeddings"][0]["embedding"]) == 256
    err = _error(rt.invoke_model, modelId="amazon.titan-embed-image-v1",
                 body=json.dumps({"inputImage": base64.b64encode(b"not an image").decode()}))
    assert "could not be decoded" in err["Message"]


@pytest.mark.parametrize("model,body,message", [
    ("amazon.titan-embed-text-v2:0", {"inputText": "x", "dimensions": 300}, "#/dimensions: 300 is not a valid enum"),
    ("amazon.titan-embed-g1-text-02", {"inputText": "x", "dimensions": 256}, "extraneous key [dimensions]"),
    ("amazon.titan-embed-image-v1", {"embeddingConfig": {"outputEmbeddingLength": 384}}, "at least one of"),
    ("cohere.embed-v4:0", {"texts": ["x"], "input_type": "search_document", "output_dimension": 100},
     "is not a valid enum value"),
    ("amazon.nova-2-multimodal-embeddings-v1:0", {"taskType": "SINGLE_EMBEDDING", "singleEmbeddingParams": {
        "embeddingPurpose": "GENERIC_INDEX", "text": {"truncationMode": "END", "value": "x"},
        "embeddingDimension": 500}}, "is not a valid enum value"),
])
def test_embedding_bodies_aws_refuses(bedrock_clients, model, body, message):
    _, rt = bedrock_clients
    err = _error(rt.invoke_model, modelId=model, body=json.dumps(body))
    assert err["Code"] == "ValidationException" and message in err["Message"], err["Message"]


# --- image generation ----------------------------------------------------------------------------------


def _image(b64: str):
    from PIL import Image

    return Image.open(io.BytesIO(base64.b64decode(b64)))


@pytest.mark.parametrize("model,body,read,size", [
    ("amazon.nova-canvas-v1:0", {"taskType": "TEXT_IMAGE", "textToImageParams": {"text": "a lighthouse at dawn"},
                                 "imageGenerationConfig": {"numberOfImages": 2, "width": 768, "height": 512,
                                                           "seed": 7}},
     lambda b: b["images"], (768, 512)),
    ("amazon.titan-image-generator-v2:0", {"taskType": "TEXT_IMAGE", "textToImageParams": {"text": "a lighthouse"},
                                           "imageGenerationConfig": {"width": 512, "height": 512}},
     lambda b: b["images"], (512, 512)),
    ("amazon.titan-image-generator-v1", {"taskType": "COLOR_GUIDED_GENERATION", "colorGuidedGenerationParams": {
        "text": "a lighthouse", "colors": ["#ff0000", "#00ff00"]}, "imageGenerationConfig": {"width": 512,
                                                                                           "height": 512}},
     lambda b: b["images"], (512, 512)),
    ("stability.stable-diffusion-xl-v1", {"text_prompts": [{"text": "a lighthouse"}, {"text": "fog", "weight": -1}],
                                          "seed": 3, "width": 1152, "height": 896},
     lambda b: [a["base64"] for a in b["artifacts"]], (1152, 896)),
    ("us.stability.sd3-5-large-v1:0", {"prompt": "a lighthouse", "aspect_ratio": "16:9"}, lambda b: b["images"],
     (1344, 768)),
    ("us.stability.stable-image-core-v1:1", {"prompt": "a lighthouse", "output_format": "jpeg"},
     lambda b: b["images"], (1024, 1024)),
])
def test_image_models_draw_a_labelled_deterministic_image(bedrock_clients, model, body, read, size):
    _, rt = bedrock_clients
    answer, headers = _invoke(rt, model, body)
    images = read(answer)
    assert all(_image(x).size == size for x in images)
    assert "procedural image" in headers["x-labkit-stand-in"]
    again, _ = _invoke(rt, model, body)
    assert read(again) == images, "the same request draws the same image"
    if model.startswith("amazon.nova-canvas"):
        assert len(images) == 2 and images[0] != images[1], "each image of a request has its own seed"
        assert _image(images[0]).info.get("labkit", "").startswith("offline stand-in")
    if "sdxl" in model or "diffusion-xl" in model:
        assert answer["result"] == "success" and answer["artifacts"][0]["finishReason"] == "SUCCESS"


def test_image_generation_is_metered_per_image(bedrock_clients):
    from labkit.offline import usage

    _, rt = bedrock_clients
    usage.reset()
    _invoke(rt, "amazon.nova-canvas-v1:0", {"taskType": "TEXT_IMAGE", "textToImageParams": {"text": "x"},
                                            "imageGenerationConfig": {"numberOfImages": 3, "width": 320,
                                                                      "height": 320}})
    (event,) = usage.events("bedrock:tokens")
    assert event["images"] == 3 and event["model_id"] == "amazon.nova-canvas-v1:0"


@pytest.mark.parametrize("model,body,message", [
    ("amazon.titan-image-generator-v2:0", {"taskType": "TEXT_IMAGE", "textToImageParams": {"text": "x"},
                                           "imageGenerationConfig": {"width": 500, "height": 500}}, "not supported"),
    ("amazon.nova-canvas-v1:0", {"taskType": "TEXT_IMAGE", "textToImageParams": {"text": "x"},
                                 "imageGenerationConfig": {"numberOfImages": 6}}, "is not less or equal to 5"),
    ("amazon.nova-canvas-v1:0", {"taskType": "TEXT_TO_IMAGE", "textToImageParams": {"text": "x"}},
     "is not a valid enum value"),
    ("stability.stable-diffusion-xl-v1", {"text_prompts": [{"text": "x"}], "width": 500, "height": 500},
     "not an allowed SDXL size"),
    ("us.stability.sd3-5-large-v1:0", {"prompt": "x", "aspect_ratio": "7:5"}, "is not a valid enum value"),
])
def test_image_bodies_aws_refuses(bedrock_clients, model, body, message):
    _, rt = bedrock_clients
    err = _error(rt.invoke_model, modelId=model, body=json.dumps(body))
    assert err["Code"] == "ValidationException" and message in err["Message"], err["Message"]


def test_embeddings_and_images_do_not_stream(bedrock_clients):
    _, rt = bedrock_clients
    for model, body in (("amazon.titan-embed-text-v2:0", {"inputText": "x"}),
                        ("amazon.nova-canvas-v1:0", {"taskType": "TEXT_IMAGE", "textToImageParams": {"text": "x"}})):
        err = _error(rt.invoke_model_with_response_stream, modelId=model, body=json.dumps(body))
        assert err["Message"] == "The model is unsupported for streaming."
