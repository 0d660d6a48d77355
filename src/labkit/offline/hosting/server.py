"""The model server process of an offline endpoint (run as a script, never imported by labkit).

It plays the part of a SageMaker framework serving container: it loads the model from
``--model-dir`` with the learner's inference code, then answers ``GET /ping`` and
``POST /invocations`` on 127.0.0.1. Requests go through the real sagemaker-inference
toolkit's :class:`~sagemaker_inference.transformer.Transformer` (``model_fn``,
``input_fn``, ``predict_fn``, ``output_fn`` or ``transform_fn``, its decoders, encoders,
``Accept`` defaulting and error handling), with the framework defaults of the
scikit-learn, XGBoost and PyTorch containers. What differs from AWS: no Docker image,
no ``requirements.txt`` install, and the learner's code runs with this Python's packages.

Started with ``python server.py --model-dir D [--code-dir C] --framework F --parent PID [--workdir W]``,
or forked with those arguments by the zygote (``python server.py --zygote FD``, :func:`zygote`);
prints ``LABKIT-SERVER-READY <port>`` when it serves, ``LABKIT-SERVER-FAILED`` if the
model cannot load. Multi-model mode (``--multi-model``) loads the model directory named by
the ``X-Labkit-Model-Dir`` header on first use and unloads the least recently used one.
It dies with the kernel that asked for it, even a SIGKILLed one (:func:`_die_with_parent`),
and then removes ``--workdir``, which is also its ``/opt/ml`` (``model/``, ``code/``): a path under
``/opt/ml`` in the learner's code means the file there, as in a training job.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import importlib.util
import json
import os
import select
import shutil
import signal
import socket
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

READY, FAILED, ZYGOTE = "LABKIT-SERVER-READY", "LABKIT-SERVER-FAILED", "LABKIT-ZYGOTE-READY"
# What the zygote imports before it forks servers (the common case: scikit-learn).
WARM_IMPORTS = ("numpy", "sagemaker_inference.transformer", "joblib", "sklearn.linear_model", "sklearn.ensemble",
                "sklearn.pipeline", "sklearn.preprocessing", "sklearn.compose", "sklearn.impute", "xgboost")
MODEL_FILES = (".pt", ".pth")


# --- framework defaults, as the SageMaker serving containers define them ---------------
#
# scikit-learn and XGBoost with a user module are served on AWS by sagemaker-containers'
# Flask worker: a request without Content-Type is JSON, and a format the *default* input or
# output function cannot handle is a 415 or 406 with a JSON error body. PyTorch, multi-model
# endpoints and other images run the sagemaker-inference toolkit itself (500 for those).
# XGBoost without SAGEMAKER_PROGRAM is the built-in algorithm's own server (:mod:`.xgboost_serving`).

CONTAINERS_WORKER = ("sklearn", "xgboost")


_refused: list[type] = []


def _format_refused() -> type:
    """``FormatRefused(status, error)``: a default handler cannot read the request (415) or write the
    answer (406), answered as sagemaker-containers answers, with a JSON body."""
    if not _refused:
        from sagemaker_inference.errors import BaseInferenceToolkitError

        class FormatRefused(BaseInferenceToolkitError):
            def __init__(self, status: int, error: Exception):
                body = json.dumps({"error": type(error).__name__, "error-message": str(error),
                                   "stack-trace": traceback.format_exc()})
                super().__init__(status, body, {415: "Unsupported Media Type", 406: "Not Acceptable"}[status])

        _refused.append(FormatRefused)
    return _refused[0]


def _handlers() -> dict[str, Any]:
    import numpy as np
    from sagemaker_inference import content_types, decoder, encoder, errors, utils
    from sagemaker_inference.default_inference_handler import DefaultInferenceHandler

    def worker_decode(data: Any, content_type: str) -> Any:
        try:
            return decoder.decode(data, content_type)
        except errors.UnsupportedFormatError as err:
            raise _format_refused()(415, err) from err

    def worker_encode(prediction: Any, accept: str) -> Any:
        try:
            return encoder.encode(prediction, accept)
        except errors.UnsupportedFormatError as err:
            raise _format_refused()(406, err) from err

    class SKLearnHandler(DefaultInferenceHandler):
        """sagemaker-scikit-learn-container: no default model_fn; predict is model.predict."""

        def default_model_fn(self, model_dir, context=None):
            raise NotImplementedError(
                "Please provide a model_fn implementation. The SageMaker scikit-learn container "
                "has no default model_fn; for example: "
                "def model_fn(model_dir): return joblib.load(os.path.join(model_dir, 'model.joblib'))")

        def default_input_fn(self, input_data, content_type, context=None):
            array = worker_decode(input_data, content_type)
            return array.astype(np.float32) if content_type in content_types.UTF8_TYPES else array

        def default_predict_fn(self, data, model, context=None):
            return model.predict(data)

        def default_output_fn(self, prediction, accept, context=None):
            return worker_encode(prediction, accept), accept

    class XGBoostScriptHandler(DefaultInferenceHandler):
        """sagemaker-xgboost-container with a user module (SAGEMAKER_PROGRAM): its framework defaults."""

        def default_model_fn(self, model_dir, context=None):
            raise NotImplementedError("Please provide a model_fn implementation. See documentation for model_fn at "
                                      "https://github.com/aws/sagemaker-python-sdk")

        def default_input_fn(self, input_data, content_type, context=None):
            try:
                return _sibling("xgboost_algorithm").decode_dmatrix(input_data, content_type)
            except errors.UnsupportedFormatError as err:
                raise _format_refused()(415, err) from err

        def default_predict_fn(self, data, model, context=None):
            return model.predict(data, validate_features=False)

        def default_output_fn(self, prediction, accept, context=None):
            return worker_encode(prediction, accept), accept

    class PyTorchHandler(DefaultInferenceHandler):
        """sagemaker-pytorch-inference-toolkit: TorchScript ``model.pt``/one ``.pt(h)`` file."""

        def default_model_fn(self, model_dir, context=None):
            import torch

            path = os.path.join(model_dir, "model.pt")
            if not os.path.exists(path):
                found = [f for f in os.listdir(model_dir)
                         if os.path.isfile(os.path.join(model_dir, f)) and f.endswith(MODEL_FILES)]
                if len(found) != 1:
                    raise ValueError(f"Exactly one .pth or .pt file is required for PyTorch models: {found}")
                path = os.path.join(model_dir, found[0])
            try:
                return torch.jit.load(path, map_location="cpu")
            except RuntimeError as err:
                raise RuntimeError(f"Failed to load {path}. Please ensure model is saved using torchscript.") from err

        def default_input_fn(self, input_data, content_type, context=None):
            import torch

            array = decoder.decode(input_data, content_type)
            if content_type in content_types.UTF8_TYPES:
                return torch.FloatTensor(array)
            return torch.from_numpy(array)

        def default_predict_fn(self, data, model, context=None):
            import torch

            with torch.no_grad():
                model.eval()
                return model(data)

        def default_output_fn(self, prediction, accept, context=None):
            import torch

            if isinstance(prediction, torch.Tensor):
                prediction = prediction.detach().cpu().numpy().tolist()
            for ctype in utils.parse_accept(accept):
                if ctype in encoder.SUPPORTED_CONTENT_TYPES:
                    encoded = encoder.encode(prediction, ctype)
                    return encoded.encode("utf-8") if ctype == content_types.CSV else encoded
            raise errors.UnsupportedFormatError(accept)

    return {"sklearn": SKLearnHandler, "xgboost": XGBoostScriptHandler, "pytorch": PyTorchHandler,
            "generic": DefaultInferenceHandler}


# --- the toolkit's Transformer, fed as Multi Model Server feeds it -------------------------


class _RequestProcessor:
    def __init__(self, headers: dict[str, str]):
        self._headers = headers

    def get_request_properties(self) -> dict[str, str]:
        return self._headers


class Context:
    """The part of MMS's ``Context`` the toolkit uses."""

    def __init__(self, model_dir: str, headers: dict[str, str] | None = None):
        self.system_properties = {"model_dir": model_dir, "gpu_id": None}
        self.request_processor = [_RequestProcessor(headers or {})]
        self.status, self.phrase = 200, "OK"
        self.content_type: str | None = None

    def set_response_status(self, code: int = 200, phrase: str = "", idx: int = 0) -> None:
        self.status, self.phrase = code, phrase

    def set_response_content_type(self, idx: int, value: str) -> None:
        self.content_type = value


def _load_module(code_dir: str | None, program: str, key: str) -> Any:
    """Import the learner's program from ``code_dir`` under a private name (one per model)."""
    if not code_dir:
        return None
    name = program[:-3] if program.endswith(".py") else program
    path = os.path.join(code_dir, name + ".py")
    if not os.path.exists(path):
        return None
    if code_dir not in sys.path:
        sys.path.insert(0, code_dir)
    return _import_file(f"{name}_{key}" if key else name, path)


def _import_file(name: str, path: str | Path) -> Any:
    """The module at ``path``, imported under ``name`` and registered in ``sys.modules``."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} is not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class LoadedModel:
    """One model: the toolkit's Transformer bound to the learner's module (or the defaults)."""

    def __init__(self, model_dir: str, code_dir: str | None, program: str, framework: str, key: str = ""):
        from sagemaker_inference.transformer import Transformer

        handler_cls = _handlers().get(framework, _handlers()["generic"])
        self.model_dir = model_dir
        self.worker = framework in CONTAINERS_WORKER
        module = _load_module(code_dir, program, key)

        class _Bound(Transformer):
            def _validate_user_module_and_set_functions(self):  # the toolkit's logic, given a module
                d = self._default_inference_handler
                self._pre_model_fn = getattr(d, "default_pre_model_fn", None)
                self._model_warmup_fn = getattr(d, "default_model_warmup_fn", None)
                m = module
                self._model_fn = getattr(m, "model_fn", d.default_model_fn)
                transform_fn = getattr(m, "transform_fn", None)
                fns = [getattr(m, n, None) for n in ("input_fn", "predict_fn", "output_fn")]
                if transform_fn and any(fns):
                    raise ValueError("Cannot use transform_fn implementation in conjunction with "
                                     "input_fn, predict_fn, and/or output_fn implementation")
                self._transform_fn = transform_fn or self._default_transform_fn
                self._input_fn = fns[0] or d.default_input_fn
                self._predict_fn = fns[1] or d.default_predict_fn
                self._output_fn = fns[2] or d.default_output_fn
                self._pre_model_fn = getattr(m, "pre_model_fn", None) or self._pre_model_fn
                self._model_warmup_fn = getattr(m, "model_warmup_fn", None) or self._model_warmup_fn

            @staticmethod
            def handle_error(context, inference_exception, trace):
                if isinstance(inference_exception, _format_refused()):
                    context.set_response_status(inference_exception.status_code, inference_exception.phrase)
                    context.set_response_content_type(0, "application/json")
                    return [inference_exception.message]
                return Transformer.handle_error(context, inference_exception, trace)

        self.transformer = _Bound(default_inference_handler=handler_cls())
        self.transformer.validate_and_initialize(model_dir=model_dir, context=Context(model_dir))

    def invoke(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, str]:
        if self.worker and not any(k.lower() == "content-type" for k in headers):
            headers = {**headers, "Content-Type": "application/json"}  # sagemaker-containers' default
        context = Context(self.model_dir, headers)
        result = self.transformer.transform([{"body": body}], context)[0]
        if isinstance(result, str):
            result = result.encode("utf-8")
        elif not isinstance(result, bytes | bytearray):
            result = bytes(result)
        return context.status, bytes(result), context.content_type or headers.get("Accept") or "text/plain"


def _sibling(name: str) -> Any:
    """A module beside this script (imported by path: this script's folder is not on sys.path)."""
    key = f"_labkit_hosting_{name}"
    if key not in sys.modules:
        _import_file(key, Path(__file__).with_name(f"{name}.py"))
    return sys.modules[key]


def load_model(model_dir: str, code_dir: str | None, program: str, framework: str, key: str = "",
               multi_model: bool = False, image: str = "") -> Any:
    """The model as its container serves it: ``invoke(body, headers) -> (status, body, content type)``.

    XGBoost without a user module (no ``SAGEMAKER_PROGRAM``) is the built-in algorithm's own
    server; every other container runs the handler functions through the inference toolkit.
    """
    if framework == "xgboost" and not os.environ.get("SAGEMAKER_PROGRAM") and not multi_model:
        return _sibling("xgboost_algorithm").AlgorithmModel(model_dir, image)
    return LoadedModel(model_dir, code_dir, program, framework, key)


# --- HTTP ---------------------------------------------------------------------------------


class ModelServer:
    """Holds the loaded model(s); multi-model mode keeps at most ``max_models`` (LRU)."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.lock = threading.Lock()
        self.single: LoadedModel | None = None
        self.models: collections.OrderedDict[str, LoadedModel] = collections.OrderedDict()

    def load_single(self) -> None:
        self.single = load_model(self.args.model_dir, self.args.code_dir, self.args.program, self.args.framework,
                                 image=self.args.image)

    def model_for(self, headers: dict[str, str]) -> LoadedModel:
        if not self.args.multi_model:
            if self.single is None:
                raise RuntimeError("the model is not loaded yet")
            return self.single
        target = headers.get("X-Amzn-SageMaker-Target-Model", "")
        with self.lock:
            if target in self.models:
                self.models.move_to_end(target)
                return self.models[target]
            model_dir = headers["X-Labkit-Model-Dir"]
            code = os.path.join(model_dir, "code")
            started = time.perf_counter()
            # Each model's own code/ first, else the container's (SAGEMAKER_SUBMIT_DIRECTORY).
            model = load_model(model_dir, code if os.path.isdir(code) else self.args.code_dir, self.args.program,
                               self.args.framework, key=str(len(self.models)) + str(abs(hash(target))), multi_model=True)
            print(f"Loaded model {target} in {1000 * (time.perf_counter() - started):.1f} ms", flush=True)
            self.models[target] = model
            while len(self.models) > self.args.max_models:
                old, _ = self.models.popitem(last=False)
                print(f"Unloaded model {old} (least recently used)", flush=True)
            return model

    def loaded(self) -> list[str]:
        with self.lock:
            return list(self.models)


def _make_handler(server: ModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet access log
            return

        def _reply(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
            head = (f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}\r\n"
                    f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n").encode("latin-1")
            self.wfile.write(head + body)

        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/ping":
                self._reply(200, b"")
            elif self.path == "/models":
                self._reply(200, json.dumps(server.loaded()).encode(), "application/json")
            else:
                self._reply(404, b"not found")

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if self.path != "/invocations":
                self._reply(404, b"not found")
                return
            headers = {k: v for k, v in self.headers.items()}
            try:
                model = server.model_for(headers)
                status, out, ctype = model.invoke(body, headers)
            except Exception as err:  # noqa: BLE001 - loading a multi-model target failed
                trace = traceback.format_exc()
                print(trace, flush=True)
                self._reply(500, f"{err}\n{trace}".encode())
                return
            if status >= 400:
                print(out.decode("utf-8", "replace"), flush=True)
            self._reply(status, out, ctype)

    return Handler


_workdir: list[str] = []  # set once the server knows its model's files


def _gone() -> None:
    for path in _workdir:
        shutil.rmtree(path, ignore_errors=True)
    os._exit(0)


def _own_proc() -> bool:
    """Whether ``/proc`` shows this process's PID namespace (not so on macOS, or in a new PID
    namespace that kept the host's ``/proc``, as the grading sandbox may)."""
    try:
        return os.readlink("/proc/self") == str(os.getpid())
    except OSError:
        return False


def start_time(pid: int) -> str | None:
    """When ``pid`` started (``/proc/<pid>/stat``), or None if it is gone or a zombie.

    A pid with the same start time is the same process, never a recycled pid.
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def _alive(pid: int, started: str | None) -> bool:
    if started is not None:
        return start_time(pid) == started
    try:  # no usable /proc: the signal test
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _die_with_parent(parent: int, workdir: str | None = None) -> None:
    """Exit when the kernel that asked for this server goes, however it goes (SIGKILL included).

    Two independent signals: our stdin is a pipe only the kernel holds (EOF the moment it
    dies), and a watchdog thread that checks every 0.5 s that the kernel still runs (for
    a pipe some other process inherited). The kernel is ``parent``, which need not be our
    OS parent: the zygote forks most servers. ``PR_SET_PDEATHSIG`` is not used: it fires
    when the parent *thread* that started us ends. On the way out the model's files
    (``workdir``) are removed; a normal stop is the kernel's SIGTERM, after which it removes them.
    """

    def stdin_closed() -> None:
        try:
            while sys.stdin.buffer.read(1024):
                pass
        except OSError:
            pass
        _gone()

    started = start_time(parent) if _own_proc() else None

    def watch() -> None:
        while True:
            if not _alive(parent, started):
                _gone()
            time.sleep(0.5)

    if workdir:
        _workdir.append(workdir)
    if not _alive(parent, started):
        _gone()
    threading.Thread(target=watch, name="labkit-parent-watchdog", daemon=True).start()
    if not sys.stdin.isatty():
        threading.Thread(target=stdin_closed, name="labkit-parent-pipe", daemon=True).start()


def _forked(sock: socket.socket, fds: list[int], request: dict[str, Any]) -> None:
    """In a child of the zygote: become the model server ``request`` describes (never returns)."""
    try:
        sock.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.dup2(fds[0], 0)
        os.dup2(fds[1], 1)
        os.dup2(fds[1], 2)
        for fd in fds:
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        main(request["argv"])
    except BaseException:  # noqa: BLE001 - report, never return into the zygote's loop
        traceback.print_exc()
        sys.stdout.flush()
    os._exit(1)


def zygote(control_fd: int) -> None:
    """Do the model servers' imports once, then fork one server per request (Linux only).

    Requests come on ``control_fd``, a SEQPACKET Unix socket the kernel holds: one message
    per server (JSON ``argv``, ``env``, ``cwd``) carrying two file descriptors, the server's
    stdin and stdout; the answer is the child's pid. A child starts in milliseconds: the
    imports are done and shared copy-on-write. The zygote stays single-threaded (so that
    forking is safe), reaps nothing (SIGCHLD ignored: children vanish when they exit), and
    exits when the kernel closes the socket or itself exits. A request that arrives while
    the imports run waits for them: importing them twice, in the zygote and in the server,
    would cost more CPU than it saves time (after ``sklearn`` itself, its estimators and
    xgboost add a few tens of milliseconds).
    """
    sock = socket.socket(fileno=control_fd)
    kernel = os.getppid()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    for name in WARM_IMPORTS:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    print(ZYGOTE, flush=True)
    while True:
        if os.getppid() != kernel:
            os._exit(0)
        if not select.select([sock], [], [], 0.5)[0]:
            continue
        try:
            message, fds, _, _ = socket.recv_fds(sock, 1 << 20, 2)
        except OSError:
            os._exit(0)
        if not message:
            os._exit(0)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            _forked(sock, fds, json.loads(message))
        for fd in fds:
            os.close(fd)
        try:
            sock.send(json.dumps({"pid": pid}).encode())
        except OSError:
            os._exit(0)


def _map_opt_ml(root: str) -> None:
    """``/opt/ml/...`` means ``root/...`` in this server, as in a training job's processes.

    The container's ``/lib`` gets a folder of the server's own laid over it (``root/.container/lib``,
    removed with the model's files): the SDK's TorchServe handler copies ``shared_libs`` there.
    """
    path = Path(__file__).parents[1] / "training" / "container" / "sitecustomize.py"
    module = _import_file("_labkit_container_paths", path)
    module.map_container_root(root)
    module.overlay("/lib", os.path.join(root, ".container", "lib"))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--zygote"]:
        zygote(int(argv[1]))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--code-dir")
    parser.add_argument("--program", default=os.environ.get("SAGEMAKER_PROGRAM", "inference.py"))
    parser.add_argument("--framework", default="generic")
    parser.add_argument("--image", default="", help="the model's image URI (its framework version matters)")
    parser.add_argument("--parent", type=int, default=os.getppid())
    parser.add_argument("--multi-model", action="store_true")
    parser.add_argument("--max-models", type=int, default=3)
    parser.add_argument("--workdir", help="the model's files, removed if the parent dies")
    args = parser.parse_args(argv)
    _die_with_parent(args.parent, args.workdir)
    if args.workdir:  # the container's /opt/ml: model/ (and code/) are there
        _map_opt_ml(args.workdir)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p) != os.path.dirname(os.path.abspath(__file__))]
    server = ModelServer(args)
    started = time.perf_counter()
    if not args.multi_model:
        try:
            server.load_single()
        except Exception:  # noqa: BLE001 - the learner's model_fn failed: report and exit
            print(traceback.format_exc(), flush=True)
            print(FAILED, flush=True)
            os._exit(1)
        print(f"Model loaded in {1000 * (time.perf_counter() - started):.1f} ms", flush=True)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(server))
    httpd.daemon_threads = True
    print(f"{READY} {httpd.server_address[1]}", flush=True)
    httpd.serve_forever(poll_interval=0.5)


if __name__ == "__main__":
    main()
