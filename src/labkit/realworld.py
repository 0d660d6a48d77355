"""Real, public AWS notebooks as the yardstick of the offline backend.

``labkit check --realworld DIR`` runs AWS's own example notebooks (never copied into this
repository: ``DIR`` holds local checkouts of the public repositories, one folder each, named
after the repository, with a ``.commit`` file or a ``.git`` telling its commit) offline, with
only the changes a learner would make, mechanically:

- a first cell ``import labkit; lab = labkit.connect(...)``, which also puts the small data the
  harness generates where the notebook downloads it from (a public S3 dataset becomes an object
  in the offline S3; a file the notebook would fetch from the internet is written beside it);
- ``get_execution_role()`` replaced by ``lab.role_arn`` (outside a Studio space a learner names
  their role);
- package-install lines (``!pip``, ``%pip``, ``!conda``) removed: the course environment is fixed;
- never an edit to an AWS API call.

Each notebook then runs (papermill, a timeout per cell and per notebook; notebooks written for
SDK v2 in the v2 environment the tests build), and is judged: did it run to the end, did its
outputs show what AWS would return (a trained model, a prediction of the right shape, an answer
with citations), did a job fail in the background. Every gap is classified by :data:`GAPS` (its
cause, the issue that owns it, the test that holds it in CI). The table goes to
``docs/realworld.md``; executed notebooks and logs to ``build/realworld/``.

The repositories are not in the project, so none of this runs in CI; what the notebooks reveal
is held there by our own tests (the table names them).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .authoring import REPO

BUILD = REPO / "build" / "realworld"
HOME = BUILD / "labkit-home"  # the run's own backend ($LABKIT_HOME), stopped when the run ends
TABLE = REPO / "docs" / "realworld.md"
CELL_TIMEOUT_S = 600
REPORT_TAG = "labkit-realworld-state"
SHELL_FAILURE = re.compile(r"upload failed|download failed|command not found|Could not connect to the endpoint URL|"
                           r"ModuleNotFoundError: No module named")
INSTALL = re.compile(r"^\s*[!%]\s*(pip|pip3|conda|mamba)\b")
ROLE = re.compile(r"\b(?:sagemaker\.)?get_execution_role\(\s*\)")


# --- data the notebooks would download --------------------------------------------------------


def _abalone(rows: int = 300) -> bytes:
    """A small abalone-shaped CSV (sex, 7 measures, rings), no header, as UCI's file."""
    import numpy as np

    rng = np.random.RandomState(0)
    lines = []
    for _ in range(rows):
        length = rng.uniform(0.1, 0.8)
        measures = [length, length * 0.8, length * 0.3, length ** 3 * 4, length ** 3 * 1.8, length ** 3 * 0.9,
                    length ** 3 * 1.2]
        rings = int(3 + length * 20 + rng.randint(0, 4))
        lines.append(",".join([rng.choice(["M", "F", "I"]), *(f"{m:.4f}" for m in measures), str(rings)]))
    return ("\n".join(lines) + "\n").encode()


def _abalone_libsvm(rows: int = 200) -> bytes:
    """The same data as libsvm lines (``rings 1:sex 2:length ...``), as UCI abalone's libsvm copies."""
    out = []
    for line in _abalone(rows).decode().splitlines():
        sex, *measures, rings = line.split(",")
        values = [str("MFI".index(sex) + 1), *measures]
        out.append(" ".join([rings, *(f"{i}:{v}" for i, v in enumerate(values, 1))]))
    return ("\n".join(out) + "\n").encode()


def _census(rows: int = 400) -> bytes:
    """A small census-income-shaped CSV (with a header), for the processing introduction."""
    import numpy as np

    rng = np.random.RandomState(2)
    lines = ["age,education,major industry code,class of worker,num persons worked for employer,"
             "capital gains,capital losses,dividends from stocks,income"]
    for _ in range(rows):
        age = rng.randint(18, 80)
        lines.append(f"{age},{rng.choice(['Bachelors degree', 'High school graduate', 'Masters degree'])},"
                     f"{rng.choice(['Retail trade', 'Manufacturing', 'Education'])},Private,{rng.randint(0, 7)},"
                     f"{rng.randint(0, 5000)},{rng.randint(0, 500)},{rng.randint(0, 900)},"
                     f"{'50000+.' if rng.rand() < 0.1 + age / 400 else '- 50000.'}")
    return ("\n".join(lines) + "\n").encode()


def _abalone_numeric(rows: int = 300) -> bytes:
    """Abalone as the built-in algorithms read CSV: rings first, then numbers only, no header."""
    out = []
    for line in _abalone(rows).decode().splitlines():
        sex, *measures, rings = line.split(",")
        out.append(",".join([rings, *("1" if sex == s else "0" for s in "MFI"), *measures]))
    return ("\n".join(out) + "\n").encode()


def _california_housing(folder: Path, rows: int = 400) -> None:
    """scikit-learn's cached California housing file (``cal_housing_py3.pkz``), so ``fetch_california_housing()``
    finds it in ``$SCIKIT_LEARN_DATA`` and downloads nothing: value, income, age, rooms, bedrooms,
    population, households, latitude, longitude, as scikit-learn stores them."""
    import joblib
    import numpy as np

    rng = np.random.RandomState(3)
    income = rng.uniform(1, 10, rows)
    households = rng.randint(100, 800, rows).astype(float)
    rooms = households * rng.uniform(3, 7, rows)
    table = np.column_stack([
        income * 40000 + rng.normal(0, 20000, rows), income, rng.randint(1, 52, rows), rooms, rooms * 0.2,
        households * rng.uniform(2, 4, rows), households, rng.uniform(32, 42, rows), rng.uniform(-124, -114, rows)])
    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(table, folder / "cal_housing_py3.pkz", compress=6)


def _mnist_pickle(train: int = 600) -> bytes:
    """``mnist.pkl.gz``: ((x, y) train, valid, test) of random 28x28 digits with a learnable signal."""
    import pickle

    import numpy as np

    rng = np.random.RandomState(0)

    def split(n: int) -> tuple:
        y = rng.randint(0, 10, n)
        x = rng.rand(n, 784).astype("float32") * 0.2
        x[np.arange(n), y * 70] += 1.0
        return x, y.astype("int64")

    return gzip.compress(pickle.dumps((split(train), split(100), split(100))))


def _mnist_idx(folder: Path, train: int = 600, test: int = 100) -> None:
    """torchvision's MNIST raw files (IDX format), so ``MNIST(download=True)`` finds them and downloads nothing."""
    import numpy as np

    rng = np.random.RandomState(1)
    raw = folder / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", train), ("t10k", test)):
        labels = rng.randint(0, 10, n).astype("uint8")
        images = (rng.rand(n, 28, 28) * 60).astype("uint8")
        images[np.arange(n), labels * 2 + 4, 4:24] = 255
        files = {f"{prefix}-images-idx3-ubyte": struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes(),
                 f"{prefix}-labels-idx1-ubyte": struct.pack(">II", 2049, n) + labels.tobytes()}
        for name, data in files.items():
            (raw / name).write_bytes(data)
            (raw / f"{name}.gz").write_bytes(gzip.compress(data))


def _letter_pdf(title: str) -> bytes:
    """A one-page PDF (our own words) standing in for a document a notebook downloads."""
    text = [title, "This letter reviews the year: revenue grew, the company invested in its cloud",
            "services, and it thanked its customers, employees and shareholders.",
            "The company uses technology to serve its customers better: faster delivery from",
            "regional warehouses, lower prices from automation, and more selection online.",
            "In generative AI, the company designs its own training and inference chips, offers",
            "foundation models as a managed service, and builds a coding assistant for developers."]
    lines = ["BT /F1 12 Tf 72 720 Td 16 TL"] + [f"({line}) Tj T*" for line in text] + ["ET"]
    stream = "\n".join(lines).encode()
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
               b"/Resources << /Font << /F1 5 0 R >> >> >>",
               b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _serve_downloads(files: dict[str, bytes]) -> None:
    """``urllib`` answers these URLs from the harness's files (a local mirror); any other URL still fails."""
    import email.message
    import io
    import urllib.request
    import urllib.response

    class Mirror(urllib.request.BaseHandler):
        handler_order = 100

        def _answer(self, request: urllib.request.Request) -> object:
            data = files.get(request.full_url)
            if data is None:
                return None
            headers = email.message.Message()
            headers["Content-Length"] = str(len(data))
            response = urllib.response.addinfourl(io.BytesIO(data), headers, request.full_url, 200)
            response.msg = "OK"  # type: ignore[attr-defined]  # urllib reads it; typeshed's addinfourl lacks it
            return response

        https_open = http_open = _answer

    urllib.request.install_opener(urllib.request.build_opener(Mirror()))


_started: list[float] = []


def provision(case_id: str) -> None:
    """Put the small data the harness generates where case ``case_id`` reads it (offline S3, downloads).

    Also notes when the notebook started: the backend is shared by the notebooks of a run (as an
    account is), and only what this notebook started is judged.
    """
    import boto3

    _started[:] = [time.time()]
    case = next(c for c in CASES if c.id == case_id)
    os.environ.update({k: os.path.abspath(v) for k, v in case.environment.items()})
    if case.downloads:
        _serve_downloads({url: GENERATORS[make]() if make in GENERATORS else _letter_pdf(make)
                          for url, make in case.downloads.items()})
    s3 = boto3.client("s3")
    for uri, make in case.s3.items():
        bucket, key = uri[len("s3://"):].split("/", 1)
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key=key, Body=GENERATORS[make]())


GENERATORS: dict[str, Callable[[], bytes]] = {"abalone": _abalone, "abalone-libsvm": _abalone_libsvm,
                                               "abalone-numeric": _abalone_numeric,
                                               "census": _census, "mnist-pickle": _mnist_pickle}
FOLDERS: dict[str, Callable[[Path], None]] = {"mnist-idx": _mnist_idx, "california-housing": _california_housing}


# --- the notebooks ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One public notebook, what it exercises and what AWS would answer it."""

    id: str
    repo: str
    notebook: str
    exercises: str
    sdk: str = "v3"
    expect: tuple[tuple[str, str], ...] = ()  # (what AWS returns, a regex the notebook's outputs must match)
    s3: dict[str, str] = field(default_factory=dict)  # public S3 object -> generator
    folders: dict[str, str] = field(default_factory=dict)  # folder in the work dir -> generator
    downloads: dict[str, str] = field(default_factory=dict)  # URL urllib fetches -> generator or a PDF's title
    environment: dict[str, str] = field(default_factory=dict)  # a library's data folder (relative to the notebook)
    tests: str = ""  # our tests that hold what this notebook revealed (containers, S3 locations, job status)
    timeout_s: int = 1200


SDK = "sagemaker-python-sdk"
EXAMPLES = "amazon-sagemaker-examples"
WORKSHOP = "amazon-bedrock-workshop"
WORKSHOP_2025 = "amazon-bedrock-workshop@6ee57c5"
ABALONE = {"s3://sagemaker-sample-files/datasets/tabular/uci_abalone/abalone.csv": "abalone"}

CASES: list[Case] = [
    Case("v3-train", SDK, "v3-examples/training-examples/hyperparameter-training-example.ipynb",
         "training with your own script (ModelTrainer, hyperparameters)",
         expect=(("a trained model artifact", r"s3://\S+/model\.tar\.gz|Completed"),)),
    Case("v3-tuning", SDK, "v3-examples/ml-ops-examples/v3-hyperparameter-tuning-example/"
         "v3-hyperparameter-tuning-example.ipynb", "hyperparameter tuning (HyperparameterTuner over ModelTrainer)",
         expect=(("a best training job", r"[Bb]est"),), folders={"data": "mnist-idx"}),
    Case("v3-processing", SDK, "v3-examples/ml-ops-examples/v3-processing-job-sklearn.ipynb",
         "a processing job (ScriptProcessor, scikit-learn)", s3=ABALONE,
         expect=(("the job's status", r"InProgress|Completed"),),
         tests="test_job_failures.py (a job failing in the background)"),
    Case("v3-pipeline", SDK, "v3-examples/ml-ops-examples/v3-pipeline-train-create-registry.ipynb",
         "a pipeline: processing, training, model registration", s3=ABALONE,
         expect=(("a succeeded execution", r'"status": "Succeeded"'),),
         tests="test_job_failures.py"),
    Case("v3-registry", SDK, "v3-examples/ml-ops-examples/v3-model-registry-example/v3-model-registry-example.ipynb",
         "the model registry (model package groups and versions)",
         expect=(("a model package", r"arn:aws:sagemaker:[^:]+:\d+:model-package/"),)),
    Case("v3-inference-spec", SDK, "v3-examples/inference-examples/inference-spec-example.ipynb",
         "ModelBuilder deployment with an InferenceSpec (the TorchServe path)",
         expect=(("a prediction of 2 probabilities", r"Single Prediction: \[\[[-\d.e]+, [-\d.e]+\]\]"),),
         tests="test_hosting_sdk.py::test_model_builder_deploys_an_inference_spec; "
               "test_hosting_sdk.py::test_model_builder_refuses_a_torch_without_a_dlc_before_any_request_as_on_aws; "
               "test_user_config.py (the region of the SDK's dependency capture); "
               "test_hosting_containers.py::test_model_server_lays_its_own_folder_over_lib_for_the_sdks_shared_libs"),
    Case("v3-train-deploy", SDK, "v3-examples/inference-examples/train-inference-e2e-example.ipynb",
         "train with ModelTrainer, deploy with ModelBuilder, invoke",
         expect=(("a prediction", r"Result of invoking endpoint: \[\["),),
         tests="test_job_dependencies.py (requirements the image's framework satisfies; what nothing satisfies)"),
    Case("v3-transform", SDK, "v3-examples/ml-ops-examples/v3-transform-job-example.ipynb",
         "batch transform of a bring-your-own XGBoost 0.90 model (https model URL, input filter)",
         expect=(("the transform output", r"transform-outputs"),),
         tests="test_hosting_containers.py::test_pre_1_0_models_load_in_images_whose_xgboost_could_read_them; test_s3_locations.py"),
    Case("byo-xgboost", EXAMPLES, "     deploy_and_monitor/sm-xgboost_bring_your_own_model/"
         "sm-xgboost_bring_your_own_model.ipynb", "bring your own model: a local XGBoost model on the built-in "
         "XGBoost container (SDK v2, boto3)", sdk="v2",
         s3={"s3://sagemaker-example-files-prod-us-east-1/datasets/image/MNIST/mnist.pkl.gz": "mnist-pickle"},
         expect=(("a predicted class", r"Predicted Class Label: \d"),),
         tests="test_hosting_containers.py::test_builtin_xgboost_endpoint_serves_a_model_not_named_xgboost_model; test_s3_locations.py"),
    Case("xgboost-regression", EXAMPLES, "      build_and_train_models/sm-regression_xgboost/sm-regression_xgboost.ipynb",
         "built-in XGBoost: libsvm training, Bayesian tuning, hosting the best model, text/x-libsvm predictions "
         "(SDK v2, boto3)", sdk="v2",
         s3={**{f"s3://sagemaker-sample-files/datasets/tabular/uci_abalone/{part}/abalone.{part}": "abalone-libsvm"
                for part in ("train", "test", "validation")},
             "s3://sagemaker-example-files-prod-us-east-1/datasets/tabular/uci_abalone/abalone.libsvm":
                 "abalone-libsvm"},
         expect=(("a libsvm prediction", r"Prediction: \d+"), ("an error over the test set", r"MdAPE\) = +[\d.]+")),
         tests="test_hosting_containers.py::test_xgboost_reads_libsvm_under_both_content_types_and_when_none_is_given"),
    Case("xgboost-spot", EXAMPLES, "      build_and_train_models/sm-managed_spot_training_xgboost/"
         "sm-managed_spot_training_xgboost.ipynb", "managed spot training with checkpoints (built-in XGBoost, "
         "v2 Estimator and HyperparameterTuner)", sdk="v2",
         s3={"s3://sagemaker-example-files-prod-us-east-1/datasets/tabular/uci_abalone/abalone.libsvm":
             "abalone-libsvm"},
         expect=(("spot savings reported", r"[Bb]illable|savings|Completed"),)),
    Case("processing-intro", EXAMPLES, "       prepare_data/sm-processing_introduction.ipynb",
         "processing with SKLearnProcessor: local inputs uploaded, three outputs (SDK v2)", sdk="v2",
         s3={"s3://sagemaker-sample-data-us-east-1/processing/census/census-income.csv": "census"},
         expect=(("the three outputs in S3", r"(s3://\S+/output/\w+/\w+\.csv\s*){3}|output-\d"),)),
    Case("bedrock-text", WORKSHOP, "01_Text_generation/01_text_and_code_generation_w_bedrock.ipynb",
         "Bedrock text generation: InvokeModel, Converse, ConverseStream (streaming), tool use",
         expect=(("a streamed answer", r"Streaming response"), ("a tool call", r"toolUse|tool_use|weather"))),
    Case("bedrock-basics", WORKSHOP_2025, "00_Prerequisites/bedrock_basics.ipynb",
         "Bedrock basics: foundation models, text generation, embeddings",
         expect=(("an embedding", r"[Ee]mbedding"),)),
    Case("kb-create", WORKSHOP, "02_Knowledge_Bases_and_RAG/1_create-kb-and-ingest-documents.ipynb",
         "a Knowledge Base: create, data source, ingestion",
         downloads={f"https://s2.q4cdn.com/299287126/files/doc_financials/{path}": f"Shareholder letter {path[:4]}"
                    for path in ("2023/ar/2022-Shareholder-Letter.pdf", "2022/ar/2021-Shareholder-Letter.pdf",
                                 "2021/ar/Amazon-2020-Shareholder-Letter-and-1997-Shareholder-Letter.pdf",
                                 "2020/ar/2019-Shareholder-Letter.pdf")},
         expect=(("a completed ingestion", r"COMPLETE"),),
         tests="test_bedrock_aoss.py::test_requests_aws4auth_signs_for_the_collection_as_the_workshop_does"),
    Case("kb-rag", WORKSHOP, "02_Knowledge_Bases_and_RAG/2_managed-rag-with-retrieve-and-generate-api.ipynb",
         "a Knowledge Base answer with citations (RetrieveAndGenerate)",
         expect=(("citations with their passages", r'"retrievedReferences": \[\s*\{'),),
         tests="test_bedrock_knowledge.py::test_citations_reference_passages_whose_sentences_wrap_across_lines"),
    Case("kb-retrieve", WORKSHOP, "02_Knowledge_Bases_and_RAG/3_customized-rag-with-retrieve-api.ipynb",
         "Knowledge Base Retrieve, then Converse over the passages",
         expect=(("retrieved passages", r'"score": [\d.]+'),
                 ("an answer from them", r"Final Answer:\s+\(offline stand-in\) (?!I cannot find)")),
         tests="test_bedrock_models.py::test_responder_reads_passages_formatted_in_as_a_python_list"),
    Case("sklearn-end2end", EXAMPLES, " archived/Sklearn_on_SageMaker_end2end.ipynb",
         "SDK v2 estimator with your own script (SKLearn), the same job through boto3, tuning, deploy, CSV and "
         "NPY predictions", sdk="v2", folders={"scikit_learn_data": "california-housing"},
         environment={"SCIKIT_LEARN_DATA": "scikit_learn_data"},
         expect=(("a model artifact", r"Model artifact persisted at s3://\S+/model\.tar\.gz"),
                 ("predictions", r"\[\s*-?\d[\d.e-]*(?:\s+-?\d[\d.e-]*)+\s*\]")),  # numpy wraps long arrays
         tests="test_endpoint.py::test_invoke_endpoint_over_http_answers_the_models_own_content_type; "
               "test_realworld.py::test_judge_reads_a_traceback_rendered_by_rich_as_the_cells_error"),
    Case("serverless-xgboost", EXAMPLES, "     deploy_and_monitor/sm-serverless_inference.ipynb",
         "a serverless endpoint of a built-in XGBoost model (SDK v2 Estimator, `!aws s3 cp`, boto3)", sdk="v2",
         s3={"s3://sagemaker-example-files-prod-us-east-1/datasets/tabular/uci_abalone/train_csv/"
             "abalone_dataset1_train.csv": "abalone-numeric"},
         expect=(("an endpoint in service", r"InService"), ("a prediction", r"b'[\d.]+"))),
]


# --- what the notebooks reveal ------------------------------------------------------------------


@dataclass(frozen=True)
class Gap:
    pattern: str  # a regex over the error, the failed jobs' reasons and the failed checks
    cause: str
    area: str  # who owns it: "containers", "S3 locations", "job status" (this harness's issue) or an issue
    test: str = ""  # our test that holds the behaviour in CI


GAPS: list[Gap] = [
    Gap(r"serve\.pkl|/opt/ml/model/code", "model servers did not see /opt/ml (the SDK's TorchServe handler opens "
        "/opt/ml/model/code/serve.pkl)", "containers", "tests/test_hosting_containers.py::"
        "test_model_server_sees_opt_ml_as_the_model_and_code_folders"),
    Gap(r"xgboost-model not found|text/x-libsvm|cannot be loaded", "built-in XGBoost hosting: model file name, "
        "libsvm, pre-1.0 pickles", "containers", "tests/test_hosting_containers.py (XGBoost algorithm mode)"),
    Gap(r"is not an S3 URI|not an S3 location", "an https S3 URL refused", "S3 locations",
        "tests/test_s3_locations.py"),
    Gap(r"requirements\.txt could not be installed offline", "a job's requirements.txt names packages neither "
        "the course nor the local wheel cache has (nothing is downloaded offline)", "issue 16 (jobs' own "
        "dependencies)", "tests/test_job_dependencies.py"),
    Gap(r"Unable to auto detect a DLC", "ModelBuilder picks the image client-side from the local torch and Python: "
        "the SDK's bundled image config knows PyTorch inference DLCs up to 2.6.0 (py312), for py311 up to 2.5.1, "
        "so with the course's torch 2.13 on Python 3.11 the SDK refuses before any request, as it does on AWS "
        "in this environment", "environment (torch pin)",
        "tests/test_hosting_sdk.py::test_model_builder_refuses_a_torch_without_a_dlc_before_any_request_as_on_aws"),
    Gap(r"NoRegionError|You must specify a region", "an SDK subprocess clears the environment and finds no region "
        "(AWS's tools read ~/.aws/config)", "issue 16 (local endpoint: region from the shared config)"),
    Gap(r"RoleValidationError|No IAM role could be resolved|get_caller_identity|AssumeRole|IAM Role ARN",
        "the caller is not an assumed execution role as in Studio", "issue 16 (identity like Studio's)"),
    Gap(r"aws: command not found|(upload|download) failed: .*Could not connect", "the AWS CLI in `!` cells went to "
        "the real AWS endpoints (refused here: no network)",
        "issue 16 (the CLI reaches the local endpoint)"),
    Gap(r"127\.0\.0\.1:9|Could not connect to the endpoint URL|EndpointConnectionError",
        "a process the lab started (job, CLI, SDK subprocess) cannot reach the offline AWS",
        "issue 16 (one local AWS endpoint)"),
    Gap(r"No module named 'torchvision'|torchvision::nms does not exist", "torchvision: PyPI's build for torch "
        "2.13.0 (torchvision 0.28.0) is the CUDA one (its _C.so links libtorch_cuda.so and libc10_cuda.so), which "
        "does not import beside the course's CPU torch ('operator torchvision::nms does not exist'); the CPU "
        "build is only on PyTorch's own index, which this project cannot reach", "environment (torch CPU build)"),
    Gap(r"FileNotFoundError: .*No such file or directory: '[\w.-]+\.py'", "a script the notebook names (its "
        "entry_point) is neither in its folder in the upstream repository nor written by the notebook: the SDK "
        "fails the same way, before any request, on AWS", "upstream notebook"),
    Gap(r"No module named '[\w.]+'", "a package the notebook installs "
        "that the course environment lacks (install cells are removed: the environment is pinned)",
        "environment (pins)"),
    Gap(r"%store|StoreMagic|no stored variable|NameError: name '(\w*_id)' is not defined",
        "needs what an earlier notebook of the sequence made (%store, the account): see that notebook",
        "issue 16 (state that lasts like an account's)"),
    Gap(r"opensearchserverless|aoss|opensearchpy|OpenSearch", "OpenSearch Serverless (the workshop's KB vector "
        "store) is not emulated", "issue 17 (Bedrock)"),
    Gap(r"bedrock|Bedrock|converse|InvokeModel|knowledge", "Bedrock behaviour", "issue 17 (Bedrock)"),
    Gap(r"NotImplementedError|not emulated|is not implemented", "an API the offline backend does not emulate",
        "issue 16 (refusal message) or the engine's issue"),
    Gap(r"urlopen|URLError|Temporary failure in name resolution|getaddrinfo|Max retries exceeded",
        "an internet download the harness does not replace yet", "harness (data)"),
]


def classify(text: str) -> Gap | None:
    for gap in GAPS:
        if re.search(gap.pattern, text):
            return gap
    return None


# --- the learner's changes and the run ----------------------------------------------------------


def _cell(source: str, tag: str | None = None) -> dict:
    cell: dict[str, Any] = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": source}
    if tag:
        cell["metadata"]["tags"] = [tag]
    return cell


def learner_copy(nb: dict, case: Case) -> tuple[dict, list[str]]:
    """The notebook as a learner would run it offline, and the list of changes made."""
    changes = ["inserted a first cell: labkit.connect() (and the harness's small data)"]
    for cell in nb["cells"]:
        if cell.get("cell_type") != "code":
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        lines = source.splitlines(keepends=True)
        kept = [line for line in lines if not INSTALL.match(line)]
        if len(kept) != len(lines):
            changes.append("removed package installs: " + "; ".join(
                line.strip()[:60] for line in lines if INSTALL.match(line)))
        new = ROLE.sub("lab.role_arn", "".join(kept))
        if new != "".join(kept):
            changes.append("get_execution_role() -> lab.role_arn")
        cell["source"] = new
        cell["outputs"], cell["execution_count"] = [], None
    setup = (f"import labkit\nlab = labkit.connect({case.id!r}, quiet=True)\n"
             f"import labkit.realworld\nlabkit.realworld.provision({case.id!r})\n")
    report = f"import labkit.realworld\nlabkit.realworld.write_state({'state.json'!r})\n"
    nb["cells"] = [_cell(setup), *nb["cells"], _cell(report, REPORT_TAG)]
    return nb, sorted(set(changes), key=changes.index)


RUNNING = ("InProgress", "Stopping", "Creating", "Updating", "Executing")


def write_state(path: str, settle_s: float = 300.0) -> None:
    """The offline account after the notebook (run in its kernel): jobs, their status and failures.

    Jobs the notebook left running are given ``settle_s`` to end first, so that one failing in the
    background (the notebook never waited for it) is seen as it would be on AWS a little later.
    """
    import boto3

    sm = boto3.client("sagemaker")
    deadline = time.time() + settle_s
    while True:
        state = _account_state(sm)
        busy = [i for kind in state.values() if isinstance(kind, list) for i in kind
                if isinstance(i, dict) and i.get("status") in RUNNING]
        if not busy or time.time() > deadline:
            break
        time.sleep(1.0)
    Path(path).write_text(json.dumps(state, indent=1, default=str))


def _mine(item: dict, *keys: str) -> bool:
    """Whether the notebook started this (it carries a time after the notebook's first cell)."""
    if not _started:
        return True
    for key in keys:
        when = item.get(key)
        if when is not None:
            return when.timestamp() >= _started[0] - 1
    return True


def _account_state(sm) -> dict[str, list]:
    state: dict[str, list] = {}
    kinds = {"training": ("list_training_jobs", "TrainingJobSummaries", "TrainingJobName", "describe_training_job",
                          "TrainingJobStatus"),
             "processing": ("list_processing_jobs", "ProcessingJobSummaries", "ProcessingJobName",
                            "describe_processing_job", "ProcessingJobStatus"),
             "transform": ("list_transform_jobs", "TransformJobSummaries", "TransformJobName",
                           "describe_transform_job", "TransformJobStatus"),
             "tuning": ("list_hyper_parameter_tuning_jobs", "HyperParameterTuningJobSummaries",
                        "HyperParameterTuningJobName", "describe_hyper_parameter_tuning_job",
                        "HyperParameterTuningJobStatus"),
             "endpoint": ("list_endpoints", "Endpoints", "EndpointName", "describe_endpoint", "EndpointStatus")}
    for kind, (lister, key, name_key, describer, status_key) in kinds.items():
        try:
            items = getattr(sm, lister)()[key]
        except Exception as err:  # noqa: BLE001 - report what could not be listed
            state.setdefault("errors", []).append(f"{lister}: {err}")
            continue
        for item in items:
            if not _mine(item, "CreationTime"):
                continue
            name = item[name_key]
            detail = getattr(sm, describer)(**{name_key: name})
            state.setdefault(kind, []).append({"name": name, "status": detail.get(status_key),
                                               "reason": detail.get("FailureReason", "")})
    try:
        executions = [e for p in sm.list_pipelines()["PipelineSummaries"]
                      for e in sm.list_pipeline_executions(PipelineName=p["PipelineName"])["PipelineExecutionSummaries"]]
    except Exception as err:  # noqa: BLE001
        state.setdefault("errors", []).append(f"pipelines: {err}")
        executions = []
    for execution in executions:
        if not _mine(execution, "StartTime"):
            continue
        arn = execution["PipelineExecutionArn"]
        steps = sm.list_pipeline_execution_steps(PipelineExecutionArn=arn).get("PipelineExecutionSteps", [])
        reasons = "; ".join(f"{s['StepName']}: {s.get('FailureReason', '')}" for s in steps
                            if s.get("StepStatus") == "Failed")
        state.setdefault("pipeline", []).append({"name": arn.rsplit("/", 1)[-1],
                                                 "status": execution.get("PipelineExecutionStatus"),
                                                 "reason": reasons})
    return state


@dataclass
class Outcome:
    id: str
    repo: str
    commit: str
    notebook: str
    exercises: str
    status: str = "not run"  # "ran to the end", "failed", "crashed", "not found"
    error: str = ""
    failed_cell: int | None = None
    checks: dict[str, bool] = field(default_factory=dict)
    background_failures: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    gap: str = ""
    area: str = ""
    test: str = ""

    @property
    def ok(self) -> bool:
        # A gap found in its outputs (a shell command that failed quietly) is no pass either.
        return (self.status == "ran to the end" and all(self.checks.values()) and not self.background_failures
                and not self.gap)


def _commit(root: Path) -> str:
    if (root / ".commit").exists():
        return (root / ".commit").read_text().strip()
    try:
        return subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _v2_kernel() -> tuple[str, Path]:
    """A Jupyter kernel on the SDK v2 environment the tests build (``build/sdk-v2-venv``), and its bin folder."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_labkit_sdk_v2", REPO / "tests" / "test_sdk_v2.py")
    if spec is None or spec.loader is None:
        raise ImportError("tests/test_sdk_v2.py is not a Python module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    python = module.build_v2_environment()
    kernels = BUILD / "jupyter" / "kernels" / "labkit-sdk-v2"
    kernels.mkdir(parents=True, exist_ok=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python (SDK v2)", "language": "python"}))
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(BUILD / "jupyter"),
                                                               os.environ.get("JUPYTER_PATH")]))
    return "labkit-sdk-v2", Path(python).parent


ANSI = re.compile(r"\x1b\[[0-9;]*m")
RAISED = re.compile(r"^(\w[\w.]*(?:Error|Exception|Exit|Interrupt)): ?(.*)$")


def _error_of(out: dict) -> tuple[str, str] | None:
    """``(name, message)`` of an exception a cell raised: an error output, or a traceback rendered by rich
    (SDK v2 installs rich's traceback handler, whose report is a display, not an error output)."""
    if out.get("output_type") == "error":
        return out.get("ename", ""), out.get("evalue", "")
    if out.get("output_type") != "display_data":
        return None
    text = ANSI.sub("", "".join(out.get("data", {}).get("text/plain", "")))
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or "Traceback" not in lines[0]:
        return None
    raised = RAISED.match(lines[-1].strip())
    return (raised.group(1), raised.group(2)) if raised else None


def _outputs_text(cell: dict) -> str:
    from .runner import merged_streams

    parts = []
    for out in merged_streams(cell.get("outputs", [])):
        if out.get("output_type") == "stream":
            parts.append("".join(out.get("text", "")))
        elif out.get("output_type") in ("execute_result", "display_data"):
            data = out.get("data", {})
            parts.append("".join(data.get("text/plain", "")) + "".join(data.get("text/markdown", "")))
        elif out.get("output_type") == "error":
            parts.append(f"{out.get('ename')}: {out.get('evalue')}")
    return "\n".join(parts)


def run_case(case: Case, root: Path) -> Outcome:
    """Run one notebook from the checkout ``root`` (``DIR/<repo>``) and judge it."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from .runner import IOPUB_TIMEOUT_S

    source = root / case.notebook
    outcome = Outcome(case.id, case.repo.split("@")[0], _commit(root), case.notebook.strip(), case.exercises)
    if not source.exists():
        outcome.status, outcome.error = "not found", f"{source} is not in the checkout"
        return outcome
    work = BUILD / case.id
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(source.parent, work, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    for folder, make in case.folders.items():
        FOLDERS[make](work / folder)
    nb, outcome.changes = learner_copy(json.loads(source.read_text()), case)
    notebook = work / f"learner-{source.name}"
    notebook.write_text(json.dumps(nb))
    output = work / "executed.ipynb"
    kernel, bin_folder = _v2_kernel() if case.sdk == "v2" else ("python3", Path(sys.executable).parent)
    # The run's notebooks share one backend of their own (not the user's), as a learner's notebooks share theirs.
    # HOME too: what a kernel writes to its user's home (``~/.aws/config``, ``%store``) stays in the run's folder.
    env = {"LABKIT_BACKEND": "offline", "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg", "LABKIT_HOME": str(HOME),
           "HOME": str(BUILD / "home"),
           # The kernel's environment is active, as in a learner's Jupyter: `!python script.py` runs in it.
           "PATH": os.pathsep.join([str(bin_folder), os.environ.get("PATH", "")])}
    (BUILD / "home").mkdir(parents=True, exist_ok=True)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    started = time.perf_counter()
    try:
        with open(work / "stdout.log", "w") as out, open(work / "stderr.log", "w") as err:
            papermill.execute_notebook(str(notebook), str(output), cwd=str(work), kernel_name=kernel,
                                       progress_bar=False, stdout_file=out, stderr_file=err,
                                       execution_timeout=CELL_TIMEOUT_S, iopub_timeout=IOPUB_TIMEOUT_S,
                                       allow_errors=True)
    except PapermillExecutionError:
        pass  # a cell failed: judged from the saved notebook
    except Exception as error:  # noqa: BLE001 - the kernel died or timed out: judged from what was saved
        outcome.status, outcome.error = "crashed", f"{type(error).__name__}: {str(error)[:300]}"
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    outcome.seconds = round(time.perf_counter() - started, 1)
    judge(outcome, case, output, work / "state.json")
    return outcome


def judge(outcome: Outcome, case: Case, executed: Path, state_file: Path) -> None:
    """Fill ``outcome`` from the executed notebook and the account's state after it."""
    if not executed.exists():
        outcome.status = outcome.status if outcome.status != "not run" else "crashed"
        return
    cells = json.loads(executed.read_text())["cells"]
    text = []
    failing_source = ""
    for index, cell in enumerate(cells):
        if cell.get("cell_type") != "code" or REPORT_TAG in cell.get("metadata", {}).get("tags", []):
            continue
        errors = [e for e in map(_error_of, cell.get("outputs", [])) if e]
        if errors and outcome.failed_cell is None:
            outcome.failed_cell = index
            outcome.error = f"{errors[0][0]}: {errors[0][1]}"[:600]
            failing_source = "".join(cell.get("source", ""))[:800]
        text.append(_outputs_text(cell))
    if outcome.status != "crashed":
        outcome.status = "failed" if outcome.failed_cell is not None else "ran to the end"
    outputs = "\n".join(text)
    state_text = state_file.read_text() if state_file.exists() else ""
    # What AWS returns shows in the notebook's outputs, or in the account (a pipeline that waits quietly).
    outcome.checks = {what: bool(re.search(pattern, outputs + "\n" + state_text)) for what, pattern in case.expect}
    if state_text:
        state = json.loads(state_text)
        for kind in ("training", "processing", "transform", "tuning", "endpoint", "pipeline"):
            for item in state.get(kind, []):
                if item.get("status") == "Failed":
                    outcome.background_failures.append(f"{kind} {item['name']}: {item.get('reason', '')[:300]}")
    # A shell command that failed quietly (`!aws s3 cp ...`) is often the cause of a later error.
    quiet = [line for line in outputs.splitlines() if SHELL_FAILURE.search(line)]
    evidence = "\n".join([*quiet, outcome.error, *outcome.background_failures])
    gap = classify(evidence + "\n" + failing_source) if evidence.strip() else None  # the code says which service
    outcome.test = case.tests
    if gap:
        outcome.gap, outcome.area, outcome.test = gap.cause, gap.area, gap.test or case.tests
    elif evidence.strip():
        outcome.gap, outcome.area = "unclassified: see the error", "to triage"
    elif not all(outcome.checks.values()):
        outcome.gap = "outputs differ from AWS's: " + ", ".join(k for k, v in outcome.checks.items() if not v)
        outcome.area = "to triage"


# --- the table -----------------------------------------------------------------------------------


def table(outcomes: list[Outcome]) -> str:
    passed = sum(o.ok for o in outcomes)
    lines = [
        "# Real notebooks, run offline",
        "",
        "Generated by `labkit check --realworld DIR` (`src/labkit/realworld.py`): AWS's own public example "
        "notebooks, run on the offline backend with only a learner's changes (a `labkit.connect()` cell, "
        "`get_execution_role()` replaced by `lab.role_arn`, package installs removed, small generated data in "
        "place of internet downloads; never an edit to an API call). The run's kernels share one offline backend "
        "and one home folder of their own, as a learner's notebooks share theirs. A notebook passes when it runs to "
        "the end (an exception a cell shows, even one rendered by rich, or a shell command that failed quietly, is a "
        "failure), its outputs show what AWS would return and no job failed in the background. The notebooks are not in "
        "this repository; what they revealed is held in CI by the tests named here.",
        "",
        f"**{passed} of {len(outcomes)} pass.** Last run: {time.strftime('%Y-%m-%d')}.",
        "",
        "| repository | commit | notebook | exercises | status | gap (cause; owner) | test that covers it |",
        "|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        status = "pass" if o.ok else o.status + (f" at cell {o.failed_cell}" if o.failed_cell is not None else "")
        missing = [k for k, v in o.checks.items() if not v]
        if o.status == "ran to the end" and missing:
            status += "; missing: " + ", ".join(missing)
        if o.background_failures:
            status += f"; {len(o.background_failures)} job(s) failed in the background"
        gap = f"{o.gap}; {o.area}" if o.gap else ""
        if o.error and o.gap:
            gap += f" (`{o.error.splitlines()[0][:120]}`)".replace("|", "\\|")
        lines.append(f"| {o.repo} | {o.commit[:7]} | {o.notebook} | {o.exercises} | {status} | "
                     f"{gap.replace('|', '/')} | {o.test} |")
    return "\n".join(lines) + "\n"


def _stop_backend() -> None:
    """Stop the run's own shared backend (if its notebooks started one): nothing is left running."""
    saved = os.environ.get("LABKIT_HOME")
    os.environ["LABKIT_HOME"] = str(HOME)
    try:
        from .offline import shared

        shared.stop()
    except Exception as err:  # noqa: BLE001 - report, the run's results stand
        print(f"  (could not stop the run's backend in {HOME}: {err})", flush=True)
    finally:
        if saved is None:
            os.environ.pop("LABKIT_HOME", None)
        else:
            os.environ["LABKIT_HOME"] = saved


def rejudge(case: Case, root: Path, previous: dict | None) -> Outcome:
    """Judge an earlier run again from its saved notebook and state (after :data:`GAPS` changed)."""
    outcome = Outcome(case.id, case.repo.split("@")[0], _commit(root), case.notebook.strip(), case.exercises)
    if previous:
        outcome.changes, outcome.seconds = previous.get("changes", []), previous.get("seconds", 0.0)
        outcome.status = "crashed" if previous.get("status") == "crashed" else "not run"
        outcome.error = previous.get("error", "") if outcome.status == "crashed" else ""
    judge(outcome, case, BUILD / case.id / "executed.ipynb", BUILD / case.id / "state.json")
    return outcome


def main(directory: str, only: list[str] | None = None, write: bool = True, again: bool = False) -> int:
    root = Path(directory)
    cases = [c for c in CASES if not only or c.id in only]
    BUILD.mkdir(parents=True, exist_ok=True)
    previous = {}
    summary = BUILD / "summary.json"
    if summary.exists():
        previous = {o["id"]: o for o in json.loads(summary.read_text())}
    outcomes = []
    try:
        for case in cases:
            if again:
                outcomes.append(rejudge(case, root / case.repo, previous.get(case.id)))
                continue
            print(f"  running {case.id}: {case.repo}/{case.notebook.strip()} ...", flush=True)
            outcome = run_case(case, root / case.repo)
            print(f"    {outcome.status} in {outcome.seconds:.0f} s {outcome.error[:160]}", flush=True)
            outcomes.append(outcome)
    finally:
        _stop_backend()
    previous.update({o.id: asdict(o) for o in outcomes})
    summary.write_text(json.dumps(list(previous.values()), indent=1))
    everything = [Outcome(**{k: v for k, v in o.items()}) for o in previous.values()]
    order = {c.id: i for i, c in enumerate(CASES)}
    everything.sort(key=lambda o: order.get(o.id, len(order)))
    text = table(everything)
    print("\n" + text)
    if write:
        TABLE.write_text(text)
    return 0 if all(o.ok for o in outcomes) else 1


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="labkit check --realworld", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", help="folder of the repositories' checkouts (one folder per repository)")
    parser.add_argument("--only", nargs="*", help=f"case ids: {', '.join(c.id for c in CASES)}")
    parser.add_argument("--no-write", action="store_true", help="do not rewrite docs/realworld.md")
    parser.add_argument("--rejudge", action="store_true", help="judge the last run's executed notebooks again")
    args = parser.parse_args(argv)
    return main(args.directory, args.only, write=not args.no_write, again=args.rejudge)


if __name__ == "__main__":
    sys.exit(cli())
