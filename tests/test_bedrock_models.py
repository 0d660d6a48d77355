"""The local models behind offline Bedrock, driven directly (no botocore)."""

from __future__ import annotations

import numpy as np
import pytest

from labkit.bedrock import embeddings, eventstream, guardrails, responder, tokens, vectors
from labkit.bedrock.kb_stores import s3_vectors_filter as translate_filter
from labkit.bedrock.knowledge_bases import chunk_text

SENTENCES = ["The cat sits on the mat.", "A dog plays in the park.",
             "Machine learning infrastructure on AWS.", "SageMaker trains models on managed instances."]
# First six components of sentence-transformers' own encode() of SENTENCES
# (sentence-transformers 6.2.0 loading the same packaged model), recorded once.
REFERENCE = np.array([[0.134177, -0.0329, -0.024804, 0.041439, -0.036348, 0.041814],
                      [0.062188, -0.069094, 0.06567, -0.011325, 0.026188, 0.020289],
                      [-0.039317, -0.058409, 0.024266, 0.032993, 0.062959, -0.012069],
                      [-0.061843, -0.114012, 0.011588, 0.111216, 0.024497, -0.010921]])


def test_minilm_matches_sentence_transformers():
    v = embeddings.model().encode(SENTENCES)
    assert v.shape == (4, 384)
    np.testing.assert_allclose(v[:, :6], REFERENCE, atol=2e-5)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)


def test_identical_texts_identical_vectors_across_batches():
    a = embeddings.embed(["same text", "other"], 1024)[0]
    b = embeddings.embed(["same text"], 1024)[0]
    assert np.array_equal(a, b)


@pytest.mark.parametrize("dim", [512, 1024, 1536])
def test_projection_up_preserves_similarity_exactly(dim):
    native = embeddings.embed(SENTENCES, 384)
    mapped = embeddings.embed(SENTENCES, dim)
    assert mapped.shape == (4, dim)
    np.testing.assert_allclose(mapped @ mapped.T, native @ native.T, atol=1e-5)


def test_projection_down_keeps_similarity_structure():
    texts = SENTENCES + ["A kitten rests on a rug.", "Puppies run around the garden.",
                         "Training jobs run on EC2 instances.", "Cloud infrastructure for ML."]
    native = embeddings.embed(texts, 384)
    small = embeddings.embed(texts, 256)
    iu = np.triu_indices(len(texts), 1)
    a, b = (native @ native.T)[iu], (small @ small.T)[iu]
    assert np.corrcoef(a, b)[0, 1] > 0.95
    assert np.abs(a - b).max() < 0.15
    # nearest neighbours unchanged
    assert ((native @ native.T - 2 * np.eye(8)).argmax(1) == (small @ small.T - 2 * np.eye(8)).argmax(1)).all()


def test_normalize_false_returns_the_unnormalised_vector():
    v = embeddings.embed(["hello world"], 1024, normalize=False)[0]
    assert abs(np.linalg.norm(v) - 1.0) > 0.05


def test_tokens_are_real_word_pieces():
    assert tokens.count("tokenization!") == 3  # token ##ization !
    text, n, cut = tokens.truncate("one two three four five", 3)
    assert (text, n, cut) == ("one two three", 3, True)
    assert "".join(tokens.chunks("Spot training saves money.")) == "Spot training saves money."


CONTEXT = ("SageMaker Managed Spot Training can reduce training cost by up to 90%. "
           "Checkpoints are saved to S3 so that interrupted jobs resume. Endpoints serve real-time predictions.")


def test_responder_answers_from_context_and_is_labelled():
    prompt = responder.Prompt(turns=[("user", f"Context:\n{CONTEXT}\n\nQuestion: How much can spot training save?\n"
                                              "Answer only from the context.")])
    gen = responder.respond(prompt, 200)
    assert gen.text.startswith(responder.LABEL)
    assert "90%" in gen.text and "Endpoints" not in gen.text
    assert gen.stop_reason == "end_turn" and gen.found
    assert gen.input_tokens == tokens.count(prompt.text())
    assert gen.output_tokens == tokens.count(gen.text)


def test_responder_says_when_the_context_lacks_the_answer():
    gen = responder.respond(responder.Prompt(system=[CONTEXT], turns=[("user", "What is the capital of France?")]), 100)
    assert gen.text == responder.LABEL + responder.NOT_FOUND and not gen.found
    gen = responder.respond(responder.Prompt(turns=[("user", "Explain ML infrastructure")]), 100)
    assert not gen.found


def test_responder_reads_passages_formatted_in_as_a_python_list():
    """A template's ``{contexts}`` of a list gives the model the list's repr: one line, ``\\n`` for line breaks
    (the Bedrock workshop's Retrieve-then-Converse notebook). The passages are read; other lists are left as text."""
    passages = ["Letter 2023\nThe company invested in its cloud services and thanked its\nemployees.\n"
                "In generative AI, the company designs its own training chips and offers\nfoundation models.",
                "Letter 2022\nThe company's stores grew."]
    prompt = responder.Prompt(system=["Use the information in <context> tags to answer."],
                              turns=[("user", f"<context>\n{passages}\n</context>\n<query>\n"
                                              "What is the company doing in generative AI?\n</query>")])
    gen = responder.respond(prompt, 200)
    assert gen.found and gen.text == (responder.LABEL + "In generative AI, the company designs its own training "
                                      "chips and offers foundation models.")
    _, context = responder.split_question(responder.Prompt(turns=[("user", "x = [1, 2]\n['a', 3]\n"
                                                                           "What is in the list?")]))
    assert context == ["x = [1, 2]", "['a', 3]"]


def test_responder_honours_max_tokens_and_stop_sequences():
    prompt = responder.Prompt(system=[CONTEXT], turns=[("user", "Where are checkpoints saved?")])
    short = responder.respond(prompt, 6)
    assert short.stop_reason == "max_tokens" and short.output_tokens == 6
    stopped = responder.respond(prompt, 100, ["S3"])
    assert stopped.stop_reason == "stop_sequence" and stopped.stop_sequence == "S3"
    assert "S3" not in stopped.text and stopped.text.endswith("saved to ")


def test_eventstream_round_trip_through_botocore():
    from botocore.eventstream import EventStreamBuffer

    msg = eventstream.event("chunk", {"bytes": "e30="})
    buf = EventStreamBuffer()
    buf.add_data(msg)
    (decoded,) = list(buf)
    assert decoded.headers[":event-type"] == "chunk"
    assert decoded.payload == b'{"bytes": "e30="}'
    corrupted = msg[:-1] + bytes([msg[-1] ^ 1])
    buf = EventStreamBuffer()
    buf.add_data(corrupted)
    with pytest.raises(Exception, match="[Cc]hecksum|CRC"):
        list(buf)


def _pii_config(**extra):
    return {"name": "g", "blockedInputMessaging": "no", "blockedOutputsMessaging": "no out", **extra}


def test_guardrail_pii_luhn_and_anonymize():
    cfg = _pii_config(sensitiveInformationPolicyConfig={"piiEntitiesConfig": [
        {"type": "CREDIT_DEBIT_CARD_NUMBER", "action": "BLOCK"}, {"type": "PHONE", "action": "ANONYMIZE"},
        {"type": "EMAIL", "action": "ANONYMIZE"}]})
    assert guardrails.evaluate(cfg, "INPUT", ["card 4111 1111 1111 1111"]).blocked
    assert guardrails.evaluate(cfg, "INPUT", ["card 4111 1111 1111 1112"]).action == "NONE"
    r = guardrails.evaluate(cfg, "INPUT", ["call 555-123-4567 or mail a.b@example.org"])
    assert r.action == "GUARDRAIL_INTERVENED" and not r.blocked
    assert r.outputs == [{"text": "call {PHONE} or mail {EMAIL}"}]


def test_guardrail_content_filter_strength_thresholds():
    def verdict(strength):
        cfg = _pii_config(contentPolicyConfig={"filtersConfig": [
            {"type": "INSULTS", "inputStrength": strength, "outputStrength": "NONE"}]})
        return guardrails.evaluate(cfg, "INPUT", ["that was dumb"])  # a LOW-confidence insult

    assert verdict("HIGH").blocked
    assert not verdict("MEDIUM").blocked
    assert verdict("MEDIUM").assessment["contentPolicy"]["filters"][0]["confidence"] == "LOW"


def test_guardrail_denied_topic_by_embedding_similarity():
    cfg = _pii_config(topicPolicyConfig={"topicsConfig": [{
        "name": "Investment", "definition": "Providing specific financial or investment advice",
        "examples": ["Should I invest in this stock?"], "type": "DENY"}]})
    assert guardrails.evaluate(cfg, "INPUT", ["Should I buy Tesla shares right now?"]).blocked
    assert not guardrails.evaluate(cfg, "INPUT", ["How do I deploy a SageMaker endpoint?"]).blocked


def test_ann_index_agrees_with_exact_search_and_handles_deletes():
    rng = np.random.default_rng(0)
    data = rng.standard_normal((3000, 32)).astype(np.float32)
    keys = [f"k{i}" for i in range(3000)]
    for metric in ("cosine", "euclidean"):
        ann = vectors.AnnIndex(32, metric)
        ann.upsert(keys, data, [{"i": i} for i in range(3000)])
        q = rng.standard_normal(32).astype(np.float32)
        approx = [r for r, _ in ann.search(q, 10)]
        exact = [r for r, _ in ann.search(q, 10, exact=True)]
        assert len(set(approx) & set(exact)) >= 8
        ann.delete([keys[exact[0]]])
        assert exact[0] not in [r for r, _ in ann.search(q, 10)]
    d = ann.search(data[5], 1, exact=True)
    assert d[0][1] == pytest.approx(0.0, abs=1e-4)  # euclidean distance, not squared


def test_metadata_filter_semantics():
    md = {"genre": "drama", "year": 2020, "tags": ["a", "b"]}
    assert vectors.matches(md, {"genre": "drama"})
    assert vectors.matches(md, {"year": {"$gte": 2020, "$lt": 2021}})
    assert vectors.matches(md, {"tags": "b"})
    assert vectors.matches(md, {"$or": [{"genre": "comedy"}, {"year": {"$in": [2019, 2020]}}]})
    assert not vectors.matches(md, {"$and": [{"genre": "drama"}, {"missing": {"$exists": True}}]})
    assert vectors.matches(md, {"genre": {"$nin": ["comedy"]}})
    with pytest.raises(Exception, match="unsupported operator"):
        vectors.validate_filter({"year": {"$regex": "x"}})
    assert translate_filter({"andAll": [{"equals": {"key": "g", "value": 1}},
                                        {"greaterThan": {"key": "y", "value": 2}}]}) == \
        {"$and": [{"g": {"$eq": 1}}, {"y": {"$gt": 2}}]}


def test_fixed_size_chunking_respects_max_tokens_and_overlaps():
    text = " ".join(f"word{i}" for i in range(200))  # each wordN is several word pieces
    chunks = chunk_text(text, 40, 25)
    assert len(chunks) > 3
    assert all(tokens.count(c) <= 40 for c in chunks)
    first, second = chunks[0].split(), chunks[1].split()
    assert set(first) & set(second)  # overlap
    assert chunks[-1].split()[-1] == "word199"
