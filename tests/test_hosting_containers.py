"""Serving containers behave as AWS's own (docs/containers.md lists each behaviour and its source).

Most behaviours are checked on the plain classes the model server runs (no HTTP, no endpoint);
a few go through a real endpoint where the wiring matters (``/opt/ml`` in the server, the
image's version, batch transform's ``SAGEMAKER_BATCH``).
"""

from __future__ import annotations

import io
import json
import pickle
import struct
import sys
from pathlib import Path

import botocore.exceptions
import numpy as np
import pytest

from labkit.offline.hosting import server
from labkit.offline.hosting import xgboost_algorithm as xa

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "hosting"))
import models as hm  # noqa: E402

XGB_17 = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
XGB_090 = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:0.90-2"
XGB_30 = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.0-5"


def _booster(objective: str = "binary:logistic", rounds: int = 5, **params):
    import xgboost as xgb

    x, y = hm.data(120, seed=1)
    if objective.startswith("multi"):
        y = (x[:, 0] * 3).astype(int)
        params["num_class"] = 3
    return xgb.train({"objective": objective, "max_depth": 2, **params}, xgb.DMatrix(x, label=y), rounds)


def _csv(rows: np.ndarray) -> bytes:
    return "\n".join(",".join(repr(float(v)) for v in row) for row in rows).encode()


@pytest.fixture()
def model_dir(tmp_path, monkeypatch):
    for var in ("SAGEMAKER_PROGRAM", "SAGEMAKER_BATCH", "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT",
                "SAGEMAKER_INFERENCE_ENSEMBLE"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


# --- the built-in XGBoost algorithm's server ------------------------------------------------------


def test_xgboost_loads_the_model_file_whatever_its_name_pickled_or_native(model_dir):
    import xgboost as xgb

    booster = _booster()
    x, _ = hm.data(4, seed=2)
    expected = booster.predict(xgb.DMatrix(x))
    (model_dir / "DEMO-local-xgboost-model").write_bytes(bytes(booster.save_raw("ubj")))
    model = xa.AlgorithmModel(str(model_dir), XGB_17)
    assert model.format == "xgb_format"
    status, body, _ = model.invoke(_csv(x), {"Content-Type": "text/csv"})
    assert status == 200 and np.allclose([float(v) for v in body.split()], expected, atol=1e-6)
    (model_dir / "DEMO-local-xgboost-model").write_bytes(pickle.dumps(booster))
    model = xa.AlgorithmModel(str(model_dir), XGB_17)
    assert model.format == "pkl_format"
    status, body, _ = model.invoke(_csv(x), {"Content-Type": "text/csv"})
    assert np.allclose([float(v) for v in body.split()], expected, atol=1e-6)


def test_xgboost_answers_csv_without_accept_and_json_in_the_containers_shape(model_dir):
    booster = _booster()
    (model_dir / "xgboost-model").write_bytes(bytes(booster.save_raw("json")))
    model = xa.AlgorithmModel(str(model_dir), XGB_17)
    x, _ = hm.data(2, seed=3)
    for accept in (None, "*/*"):
        status, body, ctype = model.invoke(_csv(x), {"Content-Type": "text/csv", **({"Accept": accept} if accept else {})})
        assert (status, ctype) == (200, "text/csv; charset=utf-8")
        assert len(body.decode().splitlines()) == 2
    status, body, ctype = model.invoke(_csv(x), {"Content-Type": "text/csv", "Accept": "application/json"})
    assert ctype == "application/json"
    assert [set(p) for p in json.loads(body)["predictions"]] == [{"score"}, {"score"}]


def test_xgboost_default_accept_follows_the_environment_variable(model_dir, monkeypatch):
    (model_dir / "xgboost-model").write_bytes(bytes(_booster().save_raw("json")))
    monkeypatch.setenv("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "application/json")
    model = xa.AlgorithmModel(str(model_dir), XGB_17)
    status, body, ctype = model.invoke(b"0.1,0.2,0.3", {"Content-Type": "text/csv"})
    assert ctype == "application/json" and "predictions" in json.loads(body)


def test_xgboost_reads_libsvm_under_both_content_types_and_when_none_is_given(model_dir):
    import xgboost as xgb

    booster = _booster()
    (model_dir / "xgboost-model").write_bytes(bytes(booster.save_raw("json")))
    model = xa.AlgorithmModel(str(model_dir), XGB_17)
    expected = booster.predict(xgb.DMatrix(np.array([[0.2, np.nan, 0.7]])))  # absent in libsvm: missing
    for headers in ({"Content-Type": "text/libsvm"}, {"Content-Type": "text/x-libsvm"}, {}):
        status, body, _ = model.invoke(b"1:0.2 3:0.7", headers)
        assert status == 200 and float(body) == pytest.approx(float(expected[0]), abs=1e-6), headers


def test_xgboost_refusals_carry_the_containers_codes_and_messages(model_dir):
    (model_dir / "xgboost-model").write_bytes(pickle.dumps(_booster()))
    model = xa.AlgorithmModel(str(model_dir), XGB_17)
    assert model.invoke(b"", {"Content-Type": "text/csv"})[0] == 204
    status, body, _ = model.invoke(b"{}", {"Content-Type": "application/json"})
    assert status == 415 and body.decode().startswith("application/json is not an accepted ContentType: csv, libsvm")
    status, body, _ = model.invoke(b"0.1,0.2,0.3", {"Content-Type": "text/csv; label_size=2"})
    assert status == 415 and "label_size must be equal to 1" in body.decode()
    status, body, _ = model.invoke(b"0.1,0.2,0.3,0.4,0.5", {"Content-Type": "text/csv"})
    assert status == 400 and body.decode() == ("Unable to evaluate payload provided: Feature size of csv inference "
                                              "data 5 is not consistent with feature size of trained model 3.")
    status, body, _ = model.invoke(b"0.1,0.2,0.3", {"Content-Type": "text/csv", "Accept": "text/plain"})
    assert status == 406 and body.decode().startswith("Accept type text/plain is not supported.")


def test_xgboost_batch_transform_answers_one_prediction_per_line(model_dir, monkeypatch):
    (model_dir / "xgboost-model").write_bytes(bytes(_booster().save_raw("json")))
    monkeypatch.setenv("SAGEMAKER_BATCH", "true")
    model = xa.AlgorithmModel(str(model_dir), XGB_17)
    status, body, _ = model.invoke(b"0.1,0.2,0.3\n0.9,0.8,0.7", {"Content-Type": "text/csv", "Accept": "application/json"})
    assert status == 200 and len(body.decode().splitlines()) == 2 and body.endswith(b"\n")


def test_xgboost_images_before_1_5_answer_comma_separated_csv_whatever_the_accept(model_dir):
    (model_dir / "xgboost-model").write_bytes(bytes(_booster().save_raw("json")))
    model = xa.AlgorithmModel(str(model_dir), XGB_090)
    status, body, ctype = model.invoke(b"0.1,0.2,0.3\n0.9,0.8,0.7", {"Content-Type": "text/csv",
                                                                   "Accept": "application/json"})
    assert (status, ctype) == (200, "text/csv; charset=utf-8")
    assert len(body.decode().split(",")) == 2 and "\n" not in body.decode()


def test_xgboost_ensembles_every_model_file_and_skips_dot_files(model_dir, monkeypatch):
    import xgboost as xgb

    a, b = _booster(rounds=2), _booster(rounds=6)
    (model_dir / "model-a").write_bytes(bytes(a.save_raw("json")))
    (model_dir / "model-b").write_bytes(bytes(b.save_raw("json")))
    (model_dir / ".DS_Store").write_bytes(b"\x00junk")
    x = np.array([[0.3, 0.6, 0.2]])
    both = (a.predict(xgb.DMatrix(x)) + b.predict(xgb.DMatrix(x))) / 2
    _, body, _ = xa.AlgorithmModel(str(model_dir), XGB_17).invoke(_csv(x), {"Content-Type": "text/csv"})
    assert float(body) == pytest.approx(float(both[0]), abs=1e-6)
    monkeypatch.setenv("SAGEMAKER_INFERENCE_ENSEMBLE", "false")
    _, body, _ = xa.AlgorithmModel(str(model_dir), XGB_17).invoke(_csv(x), {"Content-Type": "text/csv"})
    assert float(body) == pytest.approx(float(a.predict(xgb.DMatrix(x))[0]), abs=1e-6)


def test_xgboost_multiclass_probabilities_are_rows_in_csv_and_lists_in_json(model_dir):
    (model_dir / "xgboost-model").write_bytes(bytes(_booster("multi:softprob").save_raw("json")))
    model = xa.AlgorithmModel(str(model_dir), XGB_17)
    _, body, _ = model.invoke(b"0.1,0.2,0.3\n0.9,0.8,0.7", {"Content-Type": "text/csv"})
    rows = [line.split(",") for line in body.decode().splitlines()]
    assert [len(r) for r in rows] == [3, 3]
    _, body, _ = model.invoke(b"0.1,0.2,0.3", {"Content-Type": "text/csv", "Accept": "application/json"})
    assert len(json.loads(body)["predictions"][0]["score"]) == 3


def test_a_model_file_that_is_not_a_model_fails_to_load_with_both_errors(model_dir):
    (model_dir / "notes.txt").write_text("not a model")
    with pytest.raises(RuntimeError, match=r"cannot be loaded:\nPickle load error=.*\nXGB load model error="):
        xa.AlgorithmModel(str(model_dir), XGB_17)


# --- models saved by XGBoost before 1.0 ----------------------------------------------------------


def legacy_binary(booster) -> bytes:
    """``booster`` in the pre-1.0 binary layout (``Learner::Save`` of XGBoost 0.x): base score as a margin."""
    model = json.loads(booster.save_raw("json"))["learner"]
    trees = model["gradient_booster"]["model"]["trees"]
    prob = float(model["learner_model_param"]["base_score"].strip("[]").split(",")[0])
    margin = float(np.log(prob / (1 - prob))) if model["objective"]["name"] == "binary:logistic" else prob
    num_feature = int(model["learner_model_param"]["num_feature"])
    num_class = int(model["learner_model_param"]["num_class"])

    def string(text: str) -> bytes:
        return struct.pack("<Q", len(text)) + text.encode()

    out = struct.pack("<fIiii", margin, num_feature, num_class, 0, 0) + bytes(116)
    out += string(model["objective"]["name"]) + string("gbtree")
    out += struct.pack("<iiiiqii", len(trees), 1, num_feature, 0, 0, max(num_class, 1), 0) + bytes(128)
    for tree in trees:
        n = len(tree["left_children"])
        out += struct.pack("<6i", 1, n, 0, 0, num_feature, 0) + bytes(124)
        for i in range(n):
            out += struct.pack("<iiiIf", _legacy_parent(tree, i), tree["left_children"][i], tree["right_children"][i],
                               tree["split_indices"][i] | (tree["default_left"][i] << 31), tree["split_conditions"][i])
        for i in range(n):
            out += struct.pack("<fffi", tree["loss_changes"][i], tree["sum_hessian"][i], tree["base_weights"][i], 0)
    out += struct.pack(f"<{len(trees)}i", *model["gradient_booster"]["model"]["tree_info"])
    return out


def _legacy_parent(tree: dict, i: int) -> int:
    """A node's ``parent_`` field: the parent's index, its top bit set for a left child; -1 for the root."""
    if i == 0:
        return -1
    parent = tree["parents"][i]
    value = parent | (1 << 31) if tree["left_children"][parent] == i else parent
    return value - (1 << 32) if value >= 1 << 31 else value


class _PickledLegacyBooster:
    """Pickles as ``xgboost.core.Booster`` with the state XGBoost 0.x pickled (its raw model in ``handle``)."""

    def __init__(self, state: dict):
        self.state = state

    def __reduce__(self):
        import xgboost.core

        return (xgboost.core.Booster, (), self.state)


def test_pre_1_0_models_load_in_images_whose_xgboost_could_read_them(model_dir):
    import xgboost as xgb

    booster = _booster(rounds=8)
    x, _ = hm.data(5, seed=4)
    expected = booster.predict(xgb.DMatrix(x))
    state = {"handle": bytearray(legacy_binary(booster)), "feature_names": None, "feature_types": None,
             "booster": "gbtree", "best_iteration": 7, "best_ntree_limit": 8}
    (model_dir / "xgboost-model").write_bytes(pickle.dumps(_PickledLegacyBooster(state)))
    with pytest.raises(Exception):  # noqa: B017 - this XGBoost itself refuses the old format
        pickle.loads((model_dir / "xgboost-model").read_bytes())
    model = xa.AlgorithmModel(str(model_dir), XGB_17)
    assert model.format == "pkl_format"
    _, body, _ = model.invoke(_csv(x), {"Content-Type": "text/csv"})
    assert np.allclose([float(v) for v in body.split()], expected, atol=1e-5)
    with pytest.raises(RuntimeError, match="cannot be loaded"):  # the 3.0-5 image cannot either
        xa.AlgorithmModel(str(model_dir), XGB_30)
    (model_dir / "xgboost-model").write_bytes(b"binf" + legacy_binary(booster))  # a saved (not pickled) file
    model = xa.AlgorithmModel(str(model_dir), XGB_090)
    _, body, _ = model.invoke(_csv(x), {"Content-Type": "text/csv"})
    assert np.allclose([float(v) for v in body.decode().split(",")], expected, atol=1e-5)


def test_legacy_translation_refuses_what_is_not_a_legacy_model():
    with pytest.raises(ValueError):
        xa.legacy_model_json(b"\x00" * 40)


# --- scikit-learn and XGBoost with a script: sagemaker-containers' worker ---------------------------


def _toolkit_model(tmp_path, framework: str, code: str | None, files: dict[str, bytes]) -> server.LoadedModel:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    for name, data in files.items():
        (model_dir / name).write_bytes(data)
    code_dir = None
    if code is not None:
        code_dir = tmp_path / "code"
        code_dir.mkdir()
        (code_dir / "inference.py").write_text(code)
    return server.LoadedModel(str(model_dir), str(code_dir) if code_dir else None, "inference.py", framework,
                              key=tmp_path.name)


SKLEARN_CODE = """
import os, joblib
def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))
"""


def _sklearn_files() -> dict[str, bytes]:
    import joblib

    fitted, _ = hm.sklearn_model()
    buf = io.BytesIO()
    joblib.dump(fitted, buf)
    return {"model.joblib": buf.getvalue()}


def test_sklearn_defaults_answer_json_and_refuse_formats_with_415_and_406(tmp_path):
    model = _toolkit_model(tmp_path, "sklearn", SKLEARN_CODE, _sklearn_files())
    status, body, ctype = model.invoke(b"[[0.1, 0.9, 0.4], [0.9, 0.1, 0.1]]", {})  # no Content-Type: JSON
    assert (status, ctype) == (200, "application/json") and len(json.loads(body)) == 2
    status, body, ctype = model.invoke(b"0.1,0.9,0.4\n0.9,0.1,0.1", {"Content-Type": "text/csv",
                                                                   "Accept": "text/csv"})
    assert status == 200 and len(body.decode().split()) == 2  # one prediction per line
    status, body, ctype = model.invoke(b"<x/>", {"Content-Type": "application/xml"})
    assert (status, ctype) == (415, "application/json")
    assert json.loads(body)["error"] == "UnsupportedFormatError"
    status, body, _ = model.invoke(b"[[0.1, 0.9, 0.4]]", {"Content-Type": "application/json",
                                                         "Accept": "application/xml"})
    assert status == 406 and "application/xml" in json.loads(body)["error-message"]


def test_sklearn_without_model_fn_fails_to_load_with_the_containers_message(tmp_path):
    with pytest.raises(NotImplementedError, match="Please provide a model_fn implementation"):
        _toolkit_model(tmp_path, "sklearn", "x = 1\n", _sklearn_files())


def test_xgboost_with_a_script_uses_the_framework_defaults(tmp_path):
    import xgboost as xgb

    booster = _booster()
    code = ("import os, xgboost as xgb\n"
            "def model_fn(model_dir):\n"
            "    b = xgb.Booster()\n"
            "    b.load_model(os.path.join(model_dir, 'm.json'))\n"
            "    return b\n")
    model = _toolkit_model(tmp_path, "xgboost", code, {"m.json": bytes(booster.save_raw("json"))})
    x = np.array([[0.3, 0.6, 0.2]])
    status, body, ctype = model.invoke(_csv(x), {"Content-Type": "text/csv"})  # JSON by default here
    assert (status, ctype) == (200, "application/json")
    assert json.loads(body)[0] == pytest.approx(float(booster.predict(xgb.DMatrix(x))[0]), abs=1e-6)
    status, _, _ = model.invoke(b"1:0.3 2:0.6", {"Content-Type": "text/x-libsvm"})
    assert status == 200
    status, body, _ = model.invoke(b"[[1, 2, 3]]", {"Content-Type": "application/json"})
    assert status == 415 and json.loads(body)["error"] == "UnsupportedFormatError"


# --- PyTorch: the inference toolkit ---------------------------------------------------------------


def test_pytorch_finds_the_one_model_file_and_answers_the_accept_it_was_given(tmp_path):
    import torch

    net, _ = hm.torchscript_model()
    buf = io.BytesIO()
    torch.jit.save(net, buf)
    model = _toolkit_model(tmp_path, "pytorch", None, {"weights.pth": buf.getvalue()})
    status, body, ctype = model.invoke(b"[[0.1, 0.9, 0.4]]", {"Content-Type": "application/json"})
    assert (status, ctype) == (200, "application/json") and len(json.loads(body)) == 1
    status, body, ctype = model.invoke(b"[[0.1, 0.9, 0.4]]", {"Content-Type": "application/json",
                                                             "Accept": "application/xml, text/csv"})
    assert status == 200 and ctype == "application/xml, text/csv" and b"," not in body.strip()


def test_pytorch_needs_exactly_one_model_file(tmp_path):
    with pytest.raises(ValueError, match="Exactly one .pth or .pt file is required"):
        _toolkit_model(tmp_path, "pytorch", None, {"a.pt": b"", "b.pth": b""})


# --- through endpoints ----------------------------------------------------------------------------


def test_model_server_sees_opt_ml_as_the_model_and_code_folders(lab, sm, rt):
    code = ("import json, os\n"
            "def model_fn(model_dir):\n"
            "    return open('/opt/ml/model/weights.txt').read()\n"
            "def transform_fn(model, body, content_type, accept):\n"
            "    return json.dumps({'weights': model, 'code': sorted(os.listdir('/opt/ml/model/code'))}), accept\n")
    url = hm.upload(lab.bucket, "containers/optml/model.tar.gz",
                    hm.pack({"weights.txt": b"w=1", "code/inference.py": code.encode()}))
    hm.create_model(lab, "optml", url, env={"SAGEMAKER_PROGRAM": "inference.py",
                                            "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"})
    hm.deploy(lab, "optml", [hm.variant("optml")])
    answer = json.loads(rt.invoke_endpoint(EndpointName="optml", Body=b"{}", ContentType="application/json",
                                           Accept="application/json")["Body"].read())
    assert answer == {"weights": "w=1", "code": ["inference.py"]}
    sm.delete_endpoint(EndpointName="optml")


def test_model_server_lays_its_own_folder_over_lib_for_the_sdks_shared_libs(lab, sm, rt):
    """The SDK's TorchServe handler copies ``shared_libs`` into ``/lib``: the server's folder, never the machine's."""
    import os

    system = sorted(os.listdir("/lib"))[0]  # a file or folder the machine's /lib has
    stamp = os.stat("/lib").st_mtime_ns
    code = ("import json, os, shutil\n"
            "def model_fn(model_dir):\n"
            "    shutil.copytree(model_dir + '/shared_libs', '/lib', dirs_exist_ok=True)  # as the SDK's handler\n"
            "    return open('/lib/liblabkit-test-demo.so', 'rb').read().decode()\n"
            "def transform_fn(model, body, content_type, accept):\n"
            f"    return json.dumps({{'lib': model, 'system': os.path.exists('/lib/{system}'),\n"
            "                        'listed': sorted(os.listdir('/lib'))}), accept\n")
    url = hm.upload(lab.bucket, "containers/libs/model.tar.gz", hm.pack({
        "shared_libs/liblabkit-test-demo.so": b"not really ELF", "code/inference.py": code.encode()}))
    hm.create_model(lab, "libs", url, env={"SAGEMAKER_PROGRAM": "inference.py",
                                          "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"})
    try:
        hm.deploy(lab, "libs", [hm.variant("libs")])
        answer = json.loads(rt.invoke_endpoint(EndpointName="libs", Body=b"{}", ContentType="application/json",
                                               Accept="application/json")["Body"].read())
        assert answer == {"lib": "not really ELF", "system": True, "listed": ["liblabkit-test-demo.so"]}
        assert not os.path.exists("/lib/liblabkit-test-demo.so") and os.stat("/lib").st_mtime_ns == stamp
    finally:
        if os.path.exists("/lib/liblabkit-test-demo.so"):  # a regression, run as root, wrote the machine's /lib
            os.remove("/lib/liblabkit-test-demo.so")
    sm.delete_endpoint(EndpointName="libs")


def test_builtin_xgboost_endpoint_serves_a_model_not_named_xgboost_model(lab, sm, rt):
    import xgboost as xgb

    booster = _booster()
    hm.upload(lab.bucket, "containers/byo/model.tar.gz",
              hm.pack({"DEMO-local-xgboost-model": bytes(booster.save_raw("ubj"))}))
    # As AWS's example writes it: a legacy path-style https URL.
    hm.create_model(lab, "byo", f"https://s3-us-east-1.amazonaws.com/{lab.bucket}/containers/byo/model.tar.gz",
                    image=XGB_090)
    hm.deploy(lab, "byo", [hm.variant("byo")])
    x = np.array([[0.2, 0.7, 0.1], [0.9, 0.9, 0.9]])
    body = rt.invoke_endpoint(EndpointName="byo", Body=_csv(x), ContentType="text/csv")["Body"].read()
    assert np.allclose([float(v) for v in body.decode().split(",")], booster.predict(xgb.DMatrix(x)), atol=1e-6)
    with pytest.raises(botocore.exceptions.ClientError) as info:
        rt.invoke_endpoint(EndpointName="byo", Body=b"{}", ContentType="application/json")
    assert info.value.response["OriginalStatusCode"] == 415
    sm.delete_endpoint(EndpointName="byo")


def test_pytorch_refuses_an_unsupported_format_with_the_toolkits_500(tmp_path):
    import torch

    net, _ = hm.torchscript_model()
    buf = io.BytesIO()
    torch.jit.save(net, buf)
    model = _toolkit_model(tmp_path, "pytorch", None, {"model.pt": buf.getvalue()})
    status, body, _ = model.invoke(b"<x/>", {"Content-Type": "application/xml"})
    assert status == 500 and b"Content type application/xml is not supported by this framework" in body


def test_opt_ml_errors_name_the_container_path_not_the_hosts(tmp_path):
    """A script's OSError says '/opt/ml/...', as in the container (the mapping stays invisible)."""
    import subprocess

    container = Path(server.__file__).parents[1] / "training" / "container"
    code = ("import os\n"
            "os.makedirs('/opt/ml/processing/output/train')\n"
            "try:\n    os.makedirs('/opt/ml/processing/output/train')\nexcept OSError as e:\n    print(e)\n"
            "try:\n    open('/opt/ml/model/missing.txt')\nexcept OSError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "PYTHONPATH": str(container),
                              "LABKIT_CONTAINER_ROOT": str(tmp_path)}).stdout.splitlines()
    assert out == ["[Errno 17] File exists: '/opt/ml/processing/output/train'",
                   "[Errno 2] No such file or directory: '/opt/ml/model/missing.txt'"]
    assert (tmp_path / "processing" / "output" / "train").is_dir()
