"""The grader's agent inside each kernel: runs test cells in a clean context, reports tampering.

The executor (:mod:`labkit.grading.execute`) sends this file's source to every kernel right
after it starts, before any learner code runs, and keeps the answers on its own side:

- ``check(nonce, ...)`` returns a fingerprint of everything that decides how a cell runs, how
  errors are reported, how modules are imported and what the tests call: the functions of
  IPython's, ipykernel's and jupyter_client's execution and reporting code, of the import
  system and of the modules the tests use (``labkit`` among them), the shell's transformer
  lists, event callbacks and handlers, ``sys`` hooks, the builtins, the trace function, the
  threads running learner code, and the test helpers the lab's own cells defined. The
  executor compares each fingerprint with the one taken at kernel start: any deviation is
  tampering (an entry that appears is accepted only when it comes from installed code).
- ``run(kind, payload)`` runs one segment of a test cell: visible segments in the learner's
  namespace, hidden ones in a copy of it (what they define is kept here, for the hidden
  segments of later tests, never in the learner's namespace; only a public name the learner's
  namespace already holds, which a reference fallback rebinds, is rebound there too), both
  with the builtins as they were at kernel start; a built-in name the test uses that the
  learner's namespace redefines stops the test. A failure is re-raised as a built-in exception
  carrying only its message (the learner's own exception classes never reach the report); in a
  hidden segment, a message that the segment's own code did not raise (a function of the
  submission that it called raised it) is marked as the submission's (``SUBMISSION_RAISED``).
  Tests are sent with ``store_history=False``, so they never enter ``In``, ``_ih``, ``_i*`` or
  the history database, and ``clean(marker)`` then removes what IPython keeps of them
  (``linecache``, the compiler's file names, ``sys.last_*``, the last result and traceback).

It cannot defend against code that reads this file and restores what it patched around each
check, or that edits the interpreter's memory through ``ctypes``; the audit hook records
``gc`` and ``ctypes`` introspection so such submissions are flagged for review.
"""

import base64 as _base64
import builtins as _builtins
import dis as _dis
import json as _json
import linecache as _linecache
import os as _os
import sys as _sys
import threading as _threading
import types as _types

_P = dict(_builtins.__dict__)  # the builtins as they are now, before any learner code
_exec, _compile, _id, _type, _isinstance, _getattr = exec, compile, id, type, isinstance, getattr
_str, _repr, _sorted, _list, _dict, _set, _tuple, _len = str, repr, sorted, list, dict, set, tuple, len
_BaseException, _vars, _callable, _hasattr, _hash = BaseException, vars, callable, hasattr, hash
_BUILTIN_EXCEPTIONS = frozenset(v for v in _P.values() if _isinstance(v, type) and issubclass(v, BaseException))
_TRAP_NAMES = {"_", "__", "___", "exit", "quit", "get_ipython", "display", "__IPYTHON__", "__IPYTHON__active",
               "__builtins__", "__import__"}
_DATA_TYPES = (str, bytes, int, float, bool, type(None), list, dict, tuple, set, frozenset)
_TRACEBACK = BaseException.__dict__["__traceback__"]
# How a hidden test's failure raised by the submission's code (not the test's) begins: the grader
# shows a hidden test's message only when the test's own code raised it (labkit.grading.score).
SUBMISSION_RAISED = "(raised by the submission's code, not the test's)"

# Modules whose functions decide how cells run, how errors are reported and how imports resolve.
MACHINERY = [
    "IPython.core.interactiveshell", "IPython.core.compilerop", "IPython.core.inputtransformer2",
    "IPython.core.displayhook", "IPython.core.displaypub", "IPython.core.events", "IPython.core.async_helpers",
    "IPython.core.builtin_trap", "IPython.core.display_trap", "IPython.core.formatters",
    "ipykernel.ipkernel", "ipykernel.kernelbase", "ipykernel.zmqshell", "ipykernel.displayhook",
    "ipykernel.iostream", "ipykernel.compiler", "ipykernel.jsonutil", "jupyter_client.session",
    "zmq.sugar.socket", "zmq.eventloop.zmqstream",
    "importlib", "importlib._bootstrap", "importlib._bootstrap_external", "zipimport",
]
_SHELL_PARTS = ("kernel", "compile", "displayhook", "display_pub", "input_transformer_manager", "events",
                "InteractiveTB", "SyntaxTB", "history_manager", "display_formatter", "builtin_trap",
                "display_trap", "magics_manager", "loop_runner", "user_module")
_KERNEL_PARTS = ("shell", "session", "iopub_socket", "iopub_thread", "shell_stream", "control_stream")


class _State:
    """Everything the agent changes while it works (one object, so the fingerprint can hold it)."""

    def __init__(self):
        self.events = []          # what run() refused, with the names involved
        self.audit = {"trace_in_test": 0, "trace": 0, "gc": 0, "ctypes": 0, "audit_hooks": 0, "code": 0}
        self.window = 0           # > 0 while a test segment runs
        self.hidden = {}          # name -> (what a hidden segment bound, what the learner's namespace held then)
        self.test_codes = {}      # id -> every code object of the test segments run (kept alive)
        self.keep = []            # the baseline's objects, so their ids are never reused
        self.roots = ()
        self.modules = []
        self.prefixes = []
        self.ns_start = {}        # built-in names the namespace held at kernel start (IPython's own open)
        self.scratch = ""         # the learner's folder: modules there are the learner's own answers
        self.installed = {}       # file name -> whether it lies in the installation (cache)
        self.threads = set()
        self.collecting = False
        self.mode = "quick"       # what fingerprint() records per entry: quick | full | detail


_state = _State()
_MISSING = object()
_shell = None
_user_ns = None
_transformer = None


_WATCHED = frozenset({"sys.settrace", "sys.setprofile", "gc.get_objects", "gc.get_referrers", "gc.get_referents",
                      "ctypes.dlsym", "ctypes.string_at", "ctypes.cdata", "ctypes.addressof", "sys.addaudithook",
                      "object.__setattr__"})


def _by_installed_code():
    """Whether the Python frame that raised the audit event runs installed code (a library's own
    use of ctypes, gc or ``__code__``: numpy, xgboost, jsii do), not the submission's."""
    try:
        frame = _sys._getframe(2)
    except ValueError:  # raised with no Python frame above the hook
        return False
    return _installed(frame.f_code.co_filename)


def _audit(event, args):
    if event not in _WATCHED:
        return
    if event not in ("sys.settrace", "sys.setprofile") and _by_installed_code():
        return
    if event == "object.__setattr__":
        if _len(args) > 1 and args[1] == "__code__":  # a function's code replaced in place
            _state.audit["code"] += 1
        return
    if event in ("sys.settrace", "sys.setprofile"):
        _state.audit["trace"] += 1
        if _state.window:
            _state.audit["trace_in_test"] += 1
    elif event in ("gc.get_objects", "gc.get_referrers", "gc.get_referents"):
        _state.audit["gc"] += 1
    elif event in ("ctypes.string_at", "ctypes.cdata", "ctypes.addressof") or (
            event == "ctypes.dlsym" and _len(args) > 1 and _str(args[1]).startswith(("Py", "_Py"))):
        _state.audit["ctypes"] += 1
    elif event == "sys.addaudithook":
        _state.audit["audit_hooks"] += 1


def _installed(filename):
    if not filename or filename.startswith("<"):
        return False
    known = _state.installed.get(filename)
    if known is None:
        real = _os.path.realpath(filename)
        known = _state.installed[filename] = any(real == root or real.startswith(root.rstrip("/") + "/")
                                                 for root in _state.roots)
    return known


def _learners_file(module):
    filename = _getattr(module, "__file__", None)
    if not filename or not _state.scratch:
        return False
    real = _os.path.realpath(filename)
    return real.startswith(_state.scratch.rstrip("/") + "/") and not _installed(filename)


def _function(obj):
    kind = _type(obj)
    if kind in (staticmethod, classmethod, _types.MethodType):
        return obj.__func__
    if kind is property:
        return obj.fget
    if kind.__name__ == "partial":
        return _getattr(obj, "func", obj)
    return obj


def _origin(obj):
    """"installed" when ``obj`` comes from a module file of the Python installation or the course
    package, else "learner" (defined in a cell, a file in the scratch folder, or generated)."""
    fn = _function(obj)
    code = _getattr(fn, "__code__", None)
    if code is not None:
        return "installed" if _installed(code.co_filename) else "learner"
    if _isinstance(fn, (_types.BuiltinFunctionType, _types.BuiltinMethodType)):
        return "installed"
    cls = fn if _isinstance(fn, type) else _type(fn)
    if cls.__module__ == "builtins":
        return "installed"
    module = _sys.modules.get(cls.__module__)
    if module is None or not _installed(_getattr(module, "__file__", None)):
        return "learner"
    for value in _vars(cls).values():
        inner = _getattr(_function(value), "__code__", None)
        if inner is not None and not _installed(inner.co_filename):
            return "learner"
    return "installed"


def _token(obj):
    fn = _function(obj)
    code = _getattr(fn, "__code__", None)
    if _state.collecting:  # the baseline's objects stay alive, so their ids are never reused
        _state.keep.append((obj, fn, code))
    return f"{_id(obj)}:{_id(fn)}:{_id(code) if code is not None else 0}"


def _entry(obj, origin_of=None):
    """The fingerprint's value for ``obj``: its identity only (the quick digest of every check), its
    token (ids of the object, its function and code), or the token and where it comes from."""
    if _state.mode == "quick":
        return _id(obj)
    token = _token(obj)
    if _state.mode == "detail":
        return f"{token}|{_origin(obj if origin_of is None else origin_of)}"
    return token


def _fixed(token):
    """The fingerprint's value for something that is the installation's by definition."""
    if _state.mode == "quick":
        return token
    return f"{token}|installed" if _state.mode == "detail" else f"{token}"


def _functionlike(value):
    return _callable(value) or _type(value) in (staticmethod, classmethod, property)


def _module_entries(name, module, entries):
    if _state.mode == "detail":
        origin = "installed" if _installed(_getattr(module, "__file__", None)) or name in MACHINERY else "learner"
        entries[f"module {name}"] = f"{_id(module)}|{origin}"
    else:
        entries[f"module {name}"] = _fixed(_id(module))
    for key, value in _list(_vars(module).items()):
        if _isinstance(value, _types.ModuleType) or not _functionlike(value):
            continue
        entries[f"{name}.{key}"] = _entry(value)
        if _isinstance(value, type) and value.__module__ == name:
            for attr, member in _list(_vars(value).items()):
                if _functionlike(member) and not _isinstance(member, type):
                    entries[f"{name}.{key}.{attr}"] = _entry(member)


def _instance_entries(label, obj, entries, parts=()):
    if obj is None:
        return
    entries[f"{label}"] = _entry(obj, _type(obj))
    values = _dict(_getattr(obj, "__dict__", {}))
    values.update(_getattr(obj, "_trait_values", {}) or {})
    for key, value in values.items():
        wanted = key in parts or (_functionlike(value) and not _isinstance(value, type) and key != "exec_result")
        if wanted and not _isinstance(value, _DATA_TYPES):
            entries[f"{label}.{key}"] = _entry(value)


def _list_entries(label, items, entries):
    for item in items or ():
        entries[f"{label}[{_id(item)}]"] = _entry(item)


def fingerprint():
    """{what: token|origin} for everything listed in the module docstring."""
    entries = {}
    names = _list(_state.modules)
    ours = []
    for prefix in _state.prefixes:
        ours += _sorted(m for m in _list(_sys.modules) if m == prefix or m.startswith(prefix + "."))
    for name in dict.fromkeys(names + ours):
        module = _sys.modules.get(name)
        if module is None or (name not in MACHINERY and name not in ours and _learners_file(module)):
            continue  # a module the lab has the learner write (%%writefile) is an answer, not machinery
        _module_entries(name, module, entries)
    for key, value in _list(_vars(_builtins).items()):
        if key not in _TRAP_NAMES:
            entries[f"builtins.{key}"] = _fixed(_id(value))
    entries["builtins.__import__"] = _entry(_builtins.__import__)
    for hook in ("excepthook", "displayhook", "breakpointhook", "unraisablehook"):
        value = _getattr(_sys, hook, None)
        entries[f"sys.{hook}"] = _entry(value)
    _list_entries("sys.meta_path", _sys.meta_path, entries)
    _list_entries("sys.path_hooks", _sys.path_hooks, entries)
    for name in ("builtins", "sys", "_labkit_grading_agent"):
        entries[f"sys.modules[{name}]"] = _fixed(_id(_sys.modules.get(name)))
    shell = _shell
    _instance_entries("shell", shell, entries, _SHELL_PARTS)
    entries["shell.user_ns"] = _fixed(_id(shell.user_ns))
    entries["user_ns.__builtins__"] = _fixed(_id(_user_ns.get('__builtins__')))
    kernel = _getattr(shell, "kernel", None)
    _instance_entries("kernel", kernel, entries, _KERNEL_PARTS)
    for part in ("compile", "displayhook", "display_pub", "input_transformer_manager", "InteractiveTB", "SyntaxTB"):
        _instance_entries(f"shell.{part}", _getattr(shell, part, None), entries)
    if kernel is not None:
        _instance_entries("kernel.session", _getattr(kernel, "session", None), entries)
        for table in ("shell_handlers", "control_handlers"):
            for key, value in _list((_getattr(kernel, table, None) or {}).items()):
                entries[f"kernel.{table}[{key}]"] = _entry(value)
    for label in ("input_transformers_cleanup", "input_transformers_post", "ast_transformers"):
        _list_entries(f"shell.{label}", _getattr(shell, label, None), entries)
    manager = _getattr(shell, "input_transformer_manager", None)
    for label in ("cleanup_transforms", "line_transforms", "token_transformers"):
        _list_entries(f"transformers.{label}", _getattr(manager, label, None), entries)
    for event, callbacks in _list((_getattr(_getattr(shell, "events", None), "callbacks", None) or {}).items()):
        _list_entries(f"shell.events[{event}]", callbacks, entries)
    entries["shell.custom_exceptions"] = _fixed(",".join(_str(_id(c)) for c in shell.custom_exceptions))
    for key, value in _list(_vars(_sys.modules[__name__]).items()):
        if not key.startswith("__") and key != "_state":
            entries[f"agent.{key}"] = _fixed(_id(value))
    entries["agent._state"] = _fixed(_id(_sys.modules[__name__]._state))
    return entries


def _learner_threads():
    found = []
    for thread in _threading.enumerate():
        if thread is _threading.main_thread() or _id(thread) in _state.threads:
            continue
        target = _getattr(thread, "_target", None)
        run = _getattr(_type(thread), "run", None)
        for code_owner in (target, run):
            if code_owner is not None and _origin(code_owner) == "learner":
                found.append(_str(thread.name)[:60])
                break
    return found


def check(nonce, helpers=(), full=False, clean_marker="", detail=False):
    """The state report the executor compares (a JSON string, one line)."""
    if clean_marker:
        clean(clean_marker)
    _state.mode = "quick"  # a code object replaced in place is caught by the audit hook instead
    digest = _hash(_tuple(fingerprint().items()))
    tokens = {}
    for name in helpers:
        value = _user_ns.get(name, None)
        code = _getattr(value, "__code__", None)
        tokens[name] = (f"{_id(value)}:{_id(code)}:{_id(_getattr(value, '__defaults__', None))}"
                        if name in _user_ns else "missing")
    report = {"nonce": nonce, "digest": _str(digest),
              "trace": _sys.gettrace() is not None or _sys.getprofile() is not None
              or _getattr(_threading, "_trace_hook", None) is not None
              or _getattr(_threading, "_profile_hook", None) is not None,
              "threads": _learner_threads(), "audit": _dict(_state.audit), "events": _list(_state.events),
              "helpers": tokens}
    if full:  # every entry, with where it comes from when asked
        _state.mode = "detail" if detail else "full"
        try:
            report["entries"] = fingerprint()
        finally:
            _state.mode = "quick"
    return _json.dumps(report)


def clean(marker, keep_last=False):
    """Remove what IPython kept of the grader's last requests (their text holds test code);
    ``keep_last`` spares the request running now."""
    found = [name for name in _list(_linecache.cache) if _isinstance(_linecache.cache.get(name), _tuple)
             and _len(_linecache.cache[name]) > 2 and any(marker in line for line in _linecache.cache[name][2][:2])]
    for name in found[:-1] if keep_last else found:
        _linecache.cache.pop(name, None)
        _getattr(_shell.compile, "_filename_map", {}).pop(name, None)
    if keep_last:
        return
    for attr in ("last_type", "last_value", "last_traceback", "last_exc"):
        if _hasattr(_sys, attr):
            setattr(_sys, attr, None)
    for part in ("InteractiveTB", "SyntaxTB"):
        formatter = _getattr(_shell, part, None)
        if formatter is not None and _hasattr(formatter, "tb"):
            formatter.tb = None
    _shell.last_execution_result = None
    if _hasattr(_shell, "_last_traceback"):
        _shell._last_traceback = None


def _names(code):
    """The global and builtin names ``code`` (and the functions in it) load."""
    found = {i.argval for i in _dis.get_instructions(code) if i.opname in ("LOAD_GLOBAL", "LOAD_NAME")}
    for const in code.co_consts:
        if _isinstance(const, _types.CodeType):
            found |= _names(const)
    return found


def _keep_codes(code):
    """Remember ``code`` and every code object defined in it (functions, lambdas, comprehensions) as
    the tests' own; kept alive here, so that no code of the submission can reuse their ids."""
    _state.test_codes[_id(code)] = code
    for const in code.co_consts:
        if _isinstance(const, _types.CodeType):
            _keep_codes(const)


def _raised_by_tests(err):
    """Whether every Python frame ``err`` passed through below the one that caught it (``run``'s)
    runs the tests' own code (this segment's, or a helper an earlier test segment defined): a test
    raised it, not a function of the submission (or a library) that the test called. A traceback
    the submission built and attached still holds the frame of the ``raise`` that attached it, so
    it cannot pass for the test's own."""
    tb = _TRACEBACK.__get__(err)  # the slot itself: a subclass cannot stand in a property
    below = []
    while tb is not None:
        below.append(tb.tb_frame.f_code)
        tb = tb.tb_next
    return _len(below) > 1 and all(_state.test_codes.get(_id(code)) is code for code in below[1:])


def _sanitised(err, by_test=True):
    """A built-in exception of the nearest built-in class, with only the message as text; a message
    the test's own code did not raise (``by_test`` False) is marked as the submission's, so that
    the grader never shows it as the instructor's words (a hidden test shows only those)."""
    base = next((c for c in _type(err).__mro__ if c in _BUILTIN_EXCEPTIONS), Exception)
    try:
        args = _tuple(_str(a)[:2000] for a in err.args)
        if _isinstance(err, OSError) and err.filename is not None:  # "[Errno 2] ...: 'path'", as Python says it
            args = (_str(err)[:2000],)
        if not by_test:
            args = (f"{SUBMISSION_RAISED} {args[0] if _len(args) == 1 else _repr(args) if args else ''}".rstrip(),)
    except _BaseException:
        args = ()
    try:
        new = base(*args)
    except _BaseException:
        new = base.__new__(base)
        new.args = args
    return new


def run(kind, payload, marker=""):
    """Run one segment of a test cell (see the module docstring); raises what the test raised."""
    if marker:
        clean(marker, keep_last=True)
    source = _base64.b64decode(payload).decode("utf-8")
    failure = None
    try:
        code = _compile(_transformer.transform_cell(source), "<labkit test>", "exec", dont_inherit=True)
    except SyntaxError as err:
        raise _sanitised(err) from None
    shadowed = _sorted(n for n in _names(code) if n in _P and n in _user_ns and not n.startswith("__")
                       and _user_ns[n] is not _state.ns_start.get(n, _P[n]) and n not in _TRAP_NAMES)
    if shadowed:
        _state.events.append(["shadowed", shadowed])
        raise RuntimeError("the test was not run: the submission redefines the built-in name(s) "
                           f"{', '.join(shadowed)} that it uses")
    if kind == "visible":
        namespace, saved = _user_ns, _user_ns.get("__builtins__")
    else:
        namespace = _dict(_user_ns)
        for name, (value, then) in _list(_state.hidden.items()):
            if _user_ns.get(name, _MISSING) is then:
                namespace[name] = value
            else:  # the notebook bound the name since: its value is the current one, as in one namespace
                del _state.hidden[name]
    namespace["__builtins__"] = _P
    _keep_codes(code)
    _state.window += 1
    try:
        _exec(code, namespace)
    except _BaseException as err:  # noqa: BLE001 (re-raised below, sanitised)
        failure = _sanitised(err, by_test=kind == "visible" or _raised_by_tests(err))
        del err
    finally:
        _state.window -= 1
        if kind == "visible":
            namespace["__builtins__"] = saved
        else:
            for k, v in namespace.items():
                current = _user_ns.get(k, _MISSING)
                if k == "__builtins__" or current is v:
                    continue
                if current is not _MISSING and k[:1] != "_":
                    # A reference fallback replacing the learner's answer (a function, a list of metric
                    # definitions: an exercise they did not solve) is what later cells must use, so that
                    # exercises do not cascade. New names and _private ones stay hidden.
                    _user_ns[k] = v
                    continue
                _state.hidden[k] = (v, current)
        del namespace, code, source
    if failure is not None:
        raise failure from None


def start(config):
    """Called once, right after this module's source ran in a fresh kernel."""
    global _shell, _user_ns, _transformer
    _sys.addaudithook(_audit)
    _shell = get_ipython()  # noqa: F821 (IPython's builtin)
    _user_ns = _shell.user_ns
    _state.ns_start = {k: v for k, v in _user_ns.items() if k in _P}
    from IPython.core.inputtransformer2 import TransformerManager

    _transformer = TransformerManager()
    _state.roots = _tuple(config.get("roots", ()))
    _state.scratch = _os.path.realpath(_os.getcwd())
    _state.threads = {_id(t) for t in _threading.enumerate()}
    path = _list(_sys.path)
    here = {"", ".", _os.getcwd()}
    _sys.path[:] = [p for p in path if p not in here] + [p for p in path if p in here]
    try:  # the modules the tests import, before any learner code could stand in for them
        for name in config.get("preload", ()):
            try:
                __import__(name)
            except _BaseException:  # noqa: BLE001, S110 (a module that fails is fingerprinted when it appears)
                continue
    finally:
        _sys.path[:] = path
    _state.modules = _list(dict.fromkeys(m for m in MACHINERY + _list(config.get("modules", ())) if m))
    _state.prefixes = _list(config.get("module_prefixes", ()))
    _state.collecting, _state.mode = True, "full"
    try:
        fingerprint()
    finally:
        _state.collecting, _state.mode = False, "quick"
