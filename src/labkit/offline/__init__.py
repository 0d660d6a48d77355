"""The offline backend: a local AWS, served on a loopback endpoint.

moto keeps the records of every service; the engines in this package (listed in
:mod:`.engines`) add what moto only records (running jobs, serving endpoints, answering
Bedrock) through :mod:`labkit.offline.dispatch`. The backend runs one of two ways (:func:`mode`):

- ``embedded`` (grading, tests, ``labkit run``/``check``; ``LABKIT_OFFLINE_MODE=embedded``):
  :func:`start` runs a private, empty backend inside this process (moto's in-process mock,
  the engines) and serves it on a private loopback port (:mod:`.endpoint`), so that the
  jobs, model servers, ``!aws`` cells and subprocesses this process starts reach it too.
  This process's own clients are answered in-process.
- ``shared`` (the default, a learner's kernels): :func:`attach` starts or joins the user's
  backend process (:mod:`.shared`), whose state lasts across kernels and notebooks until
  ``labkit backend reset``; this process only configures its clients to reach it.

Either way :func:`configure_clients` points every AWS tool at the endpoint the way AWS's
tools are configured (``AWS_ENDPOINT_URL``, a shared config file with region and
``endpoint_url``, credentials, ``NO_PROXY`` for loopback), and :mod:`.patches` adds the few
changes no setting can make. The caller is an assumed execution role, as in a SageMaker
Studio space. A request nothing here answers is refused, never sent to AWS.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import dispatch, engines, patches, persistence, usage

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
ROLE_NAME = "LabkitSageMakerExecutionRole"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT_ID}:role/{ROLE_NAME}"
BUCKET = f"sagemaker-{REGION}-{ACCOUNT_ID}"
# A SageMaker Studio space's kernel runs as the execution role, in a session of this name.
SESSION_NAME = "SageMaker"
CALLER_ARN = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{ROLE_NAME}/{SESSION_NAME}"
EMBEDDED, SHARED = "embedded", "shared"
MODES = (EMBEDDED, SHARED)
MODE_VARIABLE = "LABKIT_OFFLINE_MODE"

_lock = threading.RLock()
_mock = None
_server: Any = None  # endpoint.Server of an embedded backend
_last_port = 0  # a restarted backend takes its port again: a warm model-server zygote keeps its environment
_token = ""
_credentials: dict[str, str] = {}  # the execution role's session, the same across resets
_attached: dict[str, Any] | None = None  # the shared backend this kernel is attached to
_config_dir: Path | None = None
_started_at = 0.0
_account_created = 0.0  # when the account was created or last reset (kept across a stop and start)
_serving = EMBEDDED  # what this process's own endpoint is: embedded, or the shared backend
_reset_hooks: list[Callable[[], None]] = []


def on_reset(fn: Callable[[], None]) -> Callable[[], None]:
    """Register ``fn`` to run when the backend is reset or stopped (stop servers, jobs)."""
    _reset_hooks.append(fn)
    return fn


def _run_reset_hooks() -> None:
    for hook in _reset_hooks:
        hook()

# The execution role's trust and permissions: what a SageMaker job needs, no more.
TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"},
                   "Action": "sts:AssumeRole"}],
}
ROLE_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": ["sagemaker:*"], "Resource": "*"},
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket",
                                       "s3:GetBucketLocation", "s3:CreateBucket"],
         "Resource": ["arn:aws:s3:::sagemaker-*", "arn:aws:s3:::sagemaker-*/*"]},
        {"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents",
                                       "logs:DescribeLogStreams", "logs:GetLogEvents"],
         "Resource": "arn:aws:logs:*:*:log-group:/aws/sagemaker/*"},
        {"Effect": "Allow", "Action": ["ecr:GetAuthorizationToken", "ecr:BatchGetImage",
                                       "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
         "Resource": "*"},
        {"Effect": "Allow", "Action": ["cloudwatch:PutMetricData"], "Resource": "*"},
        # Jobs in a VPC (SDK v3's ModelTrainer checks these before it submits a job).
        {"Effect": "Allow", "Action": ["ec2:CreateNetworkInterface", "ec2:CreateNetworkInterfacePermission",
                                       "ec2:DeleteNetworkInterface", "ec2:DeleteNetworkInterfacePermission",
                                       "ec2:DescribeNetworkInterfaces", "ec2:DescribeVpcs", "ec2:DescribeDhcpOptions",
                                       "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups"], "Resource": "*"},
        {"Effect": "Allow", "Action": ["iam:PassRole"], "Resource": ROLE_ARN,
         "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}},
    ],
}

SDK_CONFIG = """\
SchemaVersion: '1.0'
SageMaker:
  PythonSDK:
    Modules:
      TelemetryOptOut: true
"""


def mode() -> str:
    """``shared`` (default) or ``embedded``, from ``$LABKIT_OFFLINE_MODE``."""
    chosen = (os.environ.get(MODE_VARIABLE) or SHARED).strip().lower()
    if chosen not in MODES:
        raise ValueError(f"{MODE_VARIABLE}={chosen!r}: choose {' or '.join(MODES)}.")
    return chosen


_ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")


def _set_environment() -> None:
    """Fake credentials and a fixed region, so no real profile is ever used."""
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ROLE_ARN",
                "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", *_ENDPOINT_VARIABLES):
        os.environ.pop(var, None)
    for var in list(os.environ):
        if var.startswith("AWS_ENDPOINT_URL_"):  # a service-specific endpoint would bypass ours
            os.environ.pop(var)
    os.environ.update({
        "AWS_ACCESS_KEY_ID": "labkit-offline",
        "AWS_SECRET_ACCESS_KEY": "labkit-offline",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "MOTO_ALLOW_NONEXISTENT_REGION": "false",
    })
    config = Path(tempfile.gettempdir()) / "labkit-sagemaker-config.yaml"
    if not config.exists() or config.read_text() != SDK_CONFIG:
        # Every backend on this machine (kernels, test workers) shares this file: replace it whole,
        # never truncate it under a reader, which would see an empty or partial config.
        fd, tmp = tempfile.mkstemp(dir=config.parent, prefix=".labkit-sagemaker-config-")
        with os.fdopen(fd, "w") as f:
            f.write(SDK_CONFIG)
        os.chmod(tmp, 0o644)
        os.replace(tmp, config)
    os.environ["SAGEMAKER_USER_CONFIG_OVERRIDE"] = str(config)
    os.environ["SAGEMAKER_ADMIN_CONFIG_OVERRIDE"] = str(config)


def configure_clients(url: str, credentials: dict[str, str], config_dir: Path) -> None:
    """Point every AWS tool this process starts at the endpoint ``url``, as AWS's tools are configured.

    ``AWS_ENDPOINT_URL`` (boto3, the SDK, the CLI), a shared config file with the region
    and ``endpoint_url`` (``aws configure get region`` answers), a credentials file and
    the same credentials in the environment, and ``NO_PROXY`` for loopback, so a proxy
    set for the machine never sees (or refuses) a call to the local endpoint.
    """
    config_dir.mkdir(parents=True, exist_ok=True)
    config, creds = config_dir / "aws-config", config_dir / "aws-credentials"
    config.write_text(f"[default]\nregion = {REGION}\noutput = json\nendpoint_url = {url}\n")
    creds.write_text("[default]\n" f"aws_access_key_id = {credentials['AccessKeyId']}\n"
                     f"aws_secret_access_key = {credentials['SecretAccessKey']}\n"
                     f"aws_session_token = {credentials['SessionToken']}\n")
    for path in (config, creds):
        path.chmod(0o600)
    os.environ.update({
        "AWS_ENDPOINT_URL": url,
        "AWS_CONFIG_FILE": str(config),
        "AWS_SHARED_CREDENTIALS_FILE": str(creds),
        "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
        "AWS_SESSION_TOKEN": credentials["SessionToken"],
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    })
    tools = str(Path(sys.executable).parent)  # the course's `aws` CLI, for `!aws` cells and terminals
    if (Path(tools) / "aws").exists() and tools not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join([tools, os.environ.get("PATH", "")])
    for var in ("NO_PROXY", "no_proxy"):
        hosts = [h for h in os.environ.get(var, "").split(",") if h.strip()]
        os.environ[var] = ",".join(hosts + [h for h in ("127.0.0.1", "localhost", "::1") if h not in hosts])


def subprocess_environment() -> dict[str, str]:
    """Environment for processes the engines start (training scripts, model servers).

    The same configuration as this process's clients: the local endpoint, its region and
    the execution role's credentials, so a learner's boto3 call reaches this backend.
    """
    env = dict(os.environ)
    url = endpoint_url()
    if url:
        env["AWS_ENDPOINT_URL"] = url
    return env


def _seed() -> None:
    """The account a lab starts from: the execution role and the default bucket."""
    import boto3

    iam = boto3.client("iam", region_name=REGION)
    iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(TRUST_POLICY),
                    Description="SageMaker execution role of the offline backend")
    iam.put_role_policy(RoleName=ROLE_NAME, PolicyName="labkit-execution",
                        PolicyDocument=json.dumps(ROLE_POLICY))
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    _assume_execution_role()


def _assume_execution_role() -> None:
    """The caller is the execution role's session, as in Studio; the same keys across resets."""
    global _credentials
    from . import moto_state

    role = moto_state.backend("sts").assume_role(
        region_name=REGION, role_session_name=SESSION_NAME, role_arn=ROLE_ARN, policy="", duration=43200,
        external_id="")
    if not _credentials:
        _credentials = {"AccessKeyId": role.access_key_id, "SecretAccessKey": role.secret_access_key,
                        "SessionToken": role.session_token}
        return
    keys = moto_state.backend("iam").access_keys
    key = keys.pop(role.access_key_id)
    key.access_key_id, key.secret_access_key = _credentials["AccessKeyId"], _credentials["SecretAccessKey"]
    keys[key.access_key_id] = key
    role.access_key = key
    role.access_key_id, role.secret_access_key = key.access_key_id, key.secret_access_key
    role.session_token = _credentials["SessionToken"]


def start(*, port: int = 0, config_dir: Path | None = None, on_stop: Callable[[], None] | None = None,
          saved: dict[str, Any] | None = None) -> list[str]:
    """Run the backend in this process, fresh, served on loopback ``port``; later calls reset it.

    ``config_dir`` holds the AWS config and credentials files (default: a private
    temporary folder); ``on_stop`` lets the control API stop the process (shared backend).
    ``saved``: an account :func:`stop` saved (:mod:`.persistence`), restored with its
    session keys, token and port (if free), so that kernels attached before keep working.
    Returns what could not be restored, for the log.
    """
    global _mock, _server, _token, _config_dir, _started_at, _serving, _last_port, _credentials, _account_created
    meta: dict[str, Any] = (saved or {}).get("meta") or {}
    with _lock:
        if meta.get("credentials") and _mock is None:
            _credentials = dict(meta["credentials"])
        if _attached is not None:
            detach()
        _set_environment()
        from moto import mock_aws  # before the patches: they wrap the stubber moto registers on import

        patches.install()
        if _mock is None:
            _mock = mock_aws(config={"core": {"mock_credentials": False, "reset_boto3_session": True}})
            _mock.start()
        else:
            _run_reset_hooks()
            _mock.reset()
            persistence.forget()
        dispatch.enable()
        usage.reset()
        engines.load()
        import boto3

        boto3.DEFAULT_SESSION = None
        _seed()
        _account_created = float(meta.get("account_created") or time.time())
        problems = persistence.restore(saved) if saved else []
        if _server is None:
            from . import endpoint

            _token = str(meta.get("token") or secrets.token_urlsafe(24))
            _serving = SHARED if on_stop is not None else EMBEDDED
            app = endpoint.Endpoint(_token, on_stop=on_stop)
            try:
                _server = endpoint.Server(app, port=port or _last_port or int(meta.get("port") or 0)).start()
            except OSError:  # the old port was taken meanwhile
                _server = endpoint.Server(app, port=port).start()
            _last_port = _server.port
        if _config_dir is None:
            _config_dir = config_dir or Path(tempfile.mkdtemp(prefix="labkit-aws-"))
            if config_dir is None:
                atexit.register(shutil.rmtree, _config_dir, True)
        configure_clients(_server.url, _credentials, _config_dir)
        boto3.DEFAULT_SESSION = None
        _started_at = time.time()
        if saved:
            problems += persistence.resume(saved)
        return problems


def reset() -> None:
    """Empty the account again (jobs and servers stopped, records and meter cleared)."""
    with _lock:
        if _mock is None:
            raise RuntimeError("the offline backend does not run in this process")
        start()


def stop(save_to: Path | None = None) -> list[str]:
    """Stop the backend (tests, ``labkit backend stop``; a lab's kernel simply exits).

    ``save_to``: first save the account there (:mod:`.persistence`; the shared backend),
    as it is before its jobs and model servers stop. Returns what could not be saved.
    """
    global _mock, _server
    problems: list[str] = []
    with _lock:
        if _attached is not None:
            detach()
        if save_to is not None and _mock is not None:
            if _server is not None:  # no request may change the account while it is saved
                _server.stop()
                _server = None
            try:
                problems = persistence.save(save_to, {"credentials": dict(_credentials), "token": _token,
                                                      "port": _last_port, "account_created": _account_created})
            except Exception as err:  # noqa: BLE001 - a full disk must not keep jobs and servers running
                problems = [f"the account ({save_to}): {type(err).__name__}: {err}"]
        _run_reset_hooks()
        dispatch.disable()
        if _server is not None:
            _server.stop()
            _server = None
        if _mock is not None:
            _mock.stop()
            _mock = None
        from . import endpoint

        endpoint.forget_clients()
        patches.uninstall()
        for var in _ENDPOINT_VARIABLES:
            os.environ.pop(var, None)
    return problems


def attach(state: dict[str, Any]) -> None:
    """Use the shared backend described by ``state`` (url, token) from this process.

    No engine runs here: this process's clients reach the backend over loopback, and
    the patches' guard refuses any request for another address.
    """
    global _attached
    from . import endpoint

    with _lock:
        if _mock is not None:
            raise RuntimeError("this process runs an embedded offline backend; it cannot also attach to one")
        info = endpoint.control(state["url"], state["token"], "status")
        _set_environment()
        patches.install()
        configure_clients(state["url"], info["credentials"], Path(state["config_dir"]))
        _attached = {**state, **info}
        import boto3

        boto3.DEFAULT_SESSION = None


def detach() -> None:
    global _attached
    with _lock:
        _attached = None
        patches.uninstall()
        for var in _ENDPOINT_VARIABLES:
            os.environ.pop(var, None)


def running() -> bool:
    """Whether the engines run in this process (embedded backend, or the shared backend's own process)."""
    return _mock is not None


def connected() -> bool:
    """Whether this process uses the offline backend, in-process or attached."""
    return _mock is not None or _attached is not None


def attachment() -> dict[str, Any] | None:
    """The shared backend this process is attached to (url, token, pid...), if any."""
    return _attached


def endpoint_url() -> str | None:
    """The local endpoint this process's clients use."""
    if _server is not None:
        return _server.url
    if _attached is not None:
        return str(_attached["url"])
    return None


def account_created() -> float:
    """When this backend's account was created or last reset (epoch seconds); a stop and start keeps it."""
    return _account_created


def idle_seconds() -> float:
    """Seconds since this process's endpoint last answered a request (0 when it serves none)."""
    return 0.0 if _server is None else time.monotonic() - _server.app.last_request


def status() -> dict[str, Any]:
    """What the control API reports: who, where, since when, the caller's session."""
    return {"pid": os.getpid(), "url": endpoint_url(), "mode": SHARED if _attached else _serving,
            "started_at": _started_at, "account": ACCOUNT_ID, "region": REGION, "role_arn": ROLE_ARN,
            "caller_arn": CALLER_ARN, "bucket": BUCKET, "credentials": dict(_credentials),
            "engines": dict(engines.loaded)}
