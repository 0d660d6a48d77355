"""Lab 07's plausible mistakes."""

from wrong_answers import Mistake, edit

LAB = "07-rag"

MISTAKES = [
    # Exercise 1: fixed-size windows
    Mistake(
        "no overlap: the next window starts where the last ended",
        {"ex1-answer": edit(LAB, "ex1-answer", ("nxt = end - overlap", "nxt = end"))},
        {"ex1-tests": 0},
        {"ex1-tests": "consecutive windows must overlap"},
    ),
    Mistake(
        "windows cut in the middle of words",
        {"ex1-answer": edit(LAB, "ex1-answer", ('''        if end < len(text):
            cut = max(text.rfind(" ", start + size // 2, end), text.rfind("\\n", start + size // 2, end))
            if cut > start:
                end = cut
''', ""))},
        {"ex1-tests": 0},
        {"ex1-tests": "end at word boundaries"},
    ),
    Mistake(
        "chunk text not stripped",
        {"ex1-answer": edit(LAB, "ex1-answer", ('"text": text[start:end].strip()})', '"text": text[start:end]})'))},
        {"ex1-tests": 0},
        {"ex1-tests": "text is the stripped slice"},
    ),
    # Exercise 2: chunks that follow the structure
    Mistake(
        "small blocks never merged",
        {"ex2-answer": edit(LAB, "ex2-answer", (
            "if merged and merged[-1][2] == headings and end - merged[-1][0] <= max_chars:",
            "if False:"))},
        {"ex2-tests": 0},
        {"ex2-tests": "merge small neighbouring blocks"},
    ),
    Mistake(
        "headings left out of the chunk text",
        {"ex2-answer": edit(LAB, "ex2-answer", ('"text": "\\n".join([*headings, body])})', '"text": body})'))},
        {"ex2-tests": 0},
        {"ex2-tests": "text must be its headings, then its span"},
    ),
    Mistake(
        "blocks of different sections merged",
        {"ex2-answer": edit(LAB, "ex2-answer", (
            "if merged and merged[-1][2] == headings and end - merged[-1][0] <= max_chars:",
            "if merged and end - merged[-1][0] <= max_chars:"))},
        {"ex2-tests": 0},
        {"ex2-tests": "crosses into another section"},
    ),
    # Exercise 3: embeddings
    Mistake(
        "a float64 array",
        {"ex3-answer": edit(LAB, "ex3-answer", ("np.asarray([r[0] for r in results], dtype=np.float32)",
                                                "np.asarray([r[0] for r in results])"))},
        {"ex3-tests": 0},
        {"ex3-tests": "expected a float32 array"},
    ),
    Mistake(
        "tokens of one call, not of all",
        {"ex3-answer": edit(LAB, "ex3-answer", ("return vectors, sum(r[1] for r in results)", "return vectors, results[0][1]"))},
        {"ex3-tests": 0},
        {"ex3-tests": "the sum of every call's inputTextTokenCount"},
    ),
    Mistake(
        "dimensions argument ignored",
        {"ex3-answer": edit(LAB, "ex3-answer", ('{"inputText": text, "dimensions": dimensions, "normalize": True}',
                                                '{"inputText": text, "dimensions": DIM, "normalize": True}'),
                            ("reshape(len(texts), dimensions)", "reshape(len(texts), DIM)"))},
        {"ex3-tests": 0},
        {"ex3-tests": "the dimensions asked for"},
    ),
    # Exercise 4: the S3 Vectors index
    Mistake(
        "the chunk text left filterable",
        {"ex4-answer": edit(LAB, "ex4-answer", ('''dimension=int(vectors.shape[1]), distanceMetric="cosine",
                     metadataConfiguration={"nonFilterableMetadataKeys": ["text"]})''',
                                                '''dimension=int(vectors.shape[1]), distanceMetric="cosine")'''))},
        {"ex4-tests": 0},
        {"ex4-tests": "non-filterable"},
    ),
    Mistake(
        "retrieve ignores k",
        {"ex4-answer": edit(LAB, "ex4-answer", ("indexName=index_name, topK=k,", "indexName=index_name, topK=5,"))},
        {"ex4-tests": 0},
        {"ex4-tests": "pass k to QueryVectors as topK"},
    ),
    Mistake(
        "similarity returned as the distance",
        {"ex4-answer": edit(LAB, "ex4-answer", ('"distance": v["distance"]}', '"distance": 1 - v["distance"]}'))},
        {"ex4-tests": 0},
        {"ex4-tests": "nearest first"},
    ),
    # Exercise 5: recall@k and MRR
    Mistake(
        "relevant when from the right document, answer or not",
        {"ex5-answer": edit(LAB, "ex5-answer", ('if hit["doc"] == question["doc"] and question["answer"] in hit["text"]:',
                                                'if hit["doc"] == question["doc"]:'))},
        {"ex5-tests": 0, "ex5-recall": 0},  # recall needs the learner's own metrics
        {"ex5-tests": "the right document AND contains the answer"},
    ),
    Mistake(
        "MRR averaged over the questions found only",
        {"ex5-answer": edit(LAB, "ex5-answer", ("return sum(1 / r for r in ranks if r is not None) / len(ranks)",
                                                "return sum(1 / r for r in ranks if r is not None) / len([r for r in ranks if r])"))},
        {"ex5-tests": 0, "ex5-recall": 0},  # recall needs the learner's own metrics
        {"ex5-tests": "mrr("},
    ),
    Mistake(
        "recall@k counts ranks below k only",
        {"ex5-answer": edit(LAB, "ex5-answer", ("if r is not None and r <= k", "if r is not None and r < k"))},
        {"ex5-tests": 0, "ex5-recall": 0},  # recall needs the learner's own metrics
        {"ex5-tests": "AssertionError"},
    ),
    # Exercise 6: strategy and k
    Mistake(
        "the highest recall, whatever it costs",
        {"ex6-answer": edit(LAB, "ex6-answer", ('''    good = [o for o in options if o["recall"] >= target]
    if good:
        return min(good, key=lambda o: (o["usd_per_1000"], -o["recall"]))
''', ""))},
        {"ex6-tests": 0, "ex6-choice": 0},
        {"ex6-tests": "more recall than the target", "ex6-choice": "cheapest pair"},
    ),
    Mistake(
        "the target must be beaten, not reached",
        {"ex6-answer": edit(LAB, "ex6-answer", ('good = [o for o in options if o["recall"] >= target]',
                                                'good = [o for o in options if o["recall"] > target]'))},
        {"ex6-tests": 0, "ex6-choice": 0},
        {"ex6-tests": "equal to the target counts", "ex6-choice": "cheapest pair"},
    ),
    Mistake(
        "the fewest chunks, whatever their size",
        {"ex6-answer": edit(LAB, "ex6-answer", ('return min(good, key=lambda o: (o["usd_per_1000"], -o["recall"]))',
                                                'return min(good, key=lambda o: (o["k"], -o["recall"]))'))},
        {"ex6-tests": 0},
        {"ex6-tests": "fewer tokens per chunk can beat fewer chunks"},
    ),
    Mistake(
        "the cost of one chunk, not of k",
        {"ex6-answer": edit(LAB, "ex6-answer", ("usd = 1000 * k * chunk_tokens[strategy] / 1000 * usd_per_1k_input",
                                                "usd = 1000 * chunk_tokens[strategy] / 1000 * usd_per_1k_input"))},
        {"ex6-tests": 0, "ex6-choice": 0},
        {"ex6-tests": "chunks of", "ex6-choice": "cheapest pair"},
    ),
    # Exercise 7: grounded answers
    Mistake(
        "no refusal before the model",
        {"ex7-answer": edit(LAB, "ex7-answer", ('if not hits or hits[0]["distance"] > MAX_DISTANCE:', "if not hits:"))},
        {"ex7-tests": 0},
        {"ex7-tests": "must not call the model"},
    ),
    Mistake(
        "sources numbered from 0",
        {"ex7-answer": edit(LAB, "ex7-answer", ('for i, h in enumerate(hits, 1))', "for i, h in enumerate(hits))"))},
        {"ex7-tests": 0},
        {"ex7-tests": "Sources:"},
    ),
    Mistake(
        "the model's temperature left at its default",
        {"ex7-answer": edit(LAB, "ex7-answer", ('inferenceConfig={"maxTokens": 300, "temperature": 0})',
                                                'inferenceConfig={"maxTokens": 300})'))},
        {"ex7-tests": 0},
        {"ex7-tests": "temperature 0"},
    ),
    # Exercise 8: faithfulness
    Mistake(
        "a claim supported by any hit, not by those it cites",
        {"ex8-answer": edit(LAB, "ex8-answer", (
            'cited = [content_words(result["hits"][n - 1]["text"]) for n in numbers if 1 <= n <= len(result["hits"])]',
            'cited = [content_words(h["text"]) for h in result["hits"]]'))},
        {"ex8-tests": 0},
        {"ex8-tests": "supported by the chunk it cites"},
    ),
    Mistake(
        "the whole answer judged as one claim",
        {"ex8-answer": edit(LAB, "ex8-answer", ('found = claims(result["text"])',
                                                'found = [(c, [n for _, ns in claims(result["text"]) for n in ns]) '
                                                'for c in [" ".join(c for c, _ in claims(result["text"]))] if c]'))},
        {"ex8-tests": 0},
        {"ex8-tests": "one of two claims is unsupported"},
    ),
    Mistake(
        "a citation number outside the hits crashes",
        {"ex8-answer": edit(LAB, "ex8-answer", ('for n in numbers if 1 <= n <= len(result["hits"])]', "for n in numbers]"))},
        {"ex8-tests": 0},
        {"ex8-tests": "must not crash"},
    ),
    # Exercise 9: the knowledge base that ingests nothing
    Mistake(
        "the data source still reads the teammate's prefix",
        {"ex9-answer": edit(LAB, "ex9-answer", ('"inclusionPrefixes": [KB_PREFIX]}', '"inclusionPrefixes": ["07-rag/kb_chunks/"]}'))},
        {"ex9-tests": 0, "ex9-config": 0},
        {"ex9-tests": "scanned no document", "ex9-config": "exactly KB_PREFIX"},
    ),
    Mistake(
        "the vector bucket named as the data source's bucket",
        {"ex9-answer": edit(LAB, "ex9-answer", ('"bucketArn": f"arn:aws:s3:::{lab.bucket}"', '"bucketArn": f"arn:aws:s3:::{BUCKET}"'))},
        {"ex9-tests": 0},
        {"ex9-tests": "does not exist"},
    ),
    Mistake(
        "the index widened to 1,024 dimensions instead",
        {"ex9-answer": edit(LAB, "ex9-answer", ('s3v.create_index(vectorBucketName=BUCKET, indexName=KB_INDEX, dataType="float32", dimension=DIM,',
                                                's3v.create_index(vectorBucketName=BUCKET, indexName=KB_INDEX, dataType="float32", dimension=1024,'),
                            ('''            "embeddingModelArn": EMBED_ARN,
            "embeddingModelConfiguration": {"bedrockEmbeddingModelConfiguration": {"dimensions": DIM}}}},''',
                             '''            "embeddingModelArn": EMBED_ARN}},'''))},
        {"ex9-config": 0},
        {"ex9-config": "512 dimensions"},
    ),
    Mistake(
        "Bedrock's default chunking over the chunks",
        {"ex9-answer": edit(LAB, "ex9-answer", ('''        vectorIngestionConfiguration={"chunkingConfiguration": {"chunkingStrategy": "NONE"}},
''', ""))},
        {"ex9-config": 0},
        {"ex9-config": "keep chunking NONE"},
    ),
    # Exercise 10: the knowledge base's retrieval, filtered
    Mistake(
        "the team's filter key kept",
        {"ex10-answer": edit(LAB, "ex10-answer", ('{"equals": {"key": "doc", "value": doc}}', '{"equals": {"key": "document", "value": doc}}'))},
        {"ex10-filter": 0},
        {"ex10-filter": "compare your filter's key and value"},
    ),
    Mistake(
        "the document filtered without its extension",
        {"ex10-answer": edit(LAB, "ex10-answer", ('{"equals": {"key": "doc", "value": doc}}',
                                                  '{"equals": {"key": "doc", "value": doc.removesuffix(".md")}}'))},
        {"ex10-filter": 0},
        {"ex10-filter": "with doc='002-sagemaker-guide.md'"},
    ),
    Mistake(
        "hit ids taken from the S3 location",
        {"ex10-answer": edit(LAB, "ex10-answer", ('return [{"id": x["metadata"]["chunk_id"],', 'return [{"id": x["location"]["s3Location"]["uri"],'))},
        {"ex10-tests": 0},
        {"ex10-tests": "share only"},
    ),
    Mistake(
        "Claude named by its foundation-model ARN",
        {"ex10-answer": edit(LAB, "ex10-answer", ('"knowledgeBaseId": KB_ID, "modelArn": HAIKU_ARN}})',
                                                  '"knowledgeBaseId": KB_ID,\n            "modelArn": f"arn:aws:bedrock:{lab.region}::foundation-model/{HAIKU.removeprefix(\'us.\')}"}})'))},
        {"ex10-tests": 0},
        {"ex10-tests": "inference profile"},
    ),
]
