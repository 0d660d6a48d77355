"""SageMaker Debugger's tensor collection inside a PyTorch training process (no labkit imports).

On AWS, the PyTorch framework containers start smdebug's hook by themselves when the job
has a ``DebugHookConfig`` ("zero code change"): the training script stays plain PyTorch.
Offline, the job's ``sitecustomize`` loads this file as soon as the script imports
``torch`` and :func:`install` does the same job with PyTorch's global module hooks:

- the first module called outside any other module is the model; each of its forward
  calls is a step, in mode ``TRAIN`` or ``EVAL`` after ``model.training``;
- the ``losses`` collection: the output of every ``torch.nn`` loss module
  (``nn.CrossEntropyLoss()(...)``; a loss computed with ``torch.nn.functional`` is not seen,
  as with smdebug's zero-code-change hook);
- ``gradients``: each parameter's gradient when backward computes it;
- ``weights``: the parameters at each saved step.

Steps are saved every ``save_interval`` steps of their mode (the collection's
``save_interval``, else ``HookParameters.save_interval``, else 500, smdebug's default).
What differs from smdebug: instead of whole tensors in smdebug's event files, each saved
tensor is written as its reductions (mean, mean of absolute values, largest absolute value,
L2 norm, NaN and Inf counts), one JSON line per tensor in ``<LocalPath>/<collection>.jsonl``;
the built-in rules the backend evaluates need nothing more. SageMaker uploads the folder
to ``DebugHookConfig.S3OutputPath/<job>/debug-output``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import IO, Any

CONFIG = "/opt/ml/input/config/debughookconfig.json"
DEFAULT_LOCAL_PATH = "/opt/ml/output/tensors"
DEFAULT_SAVE_INTERVAL = 500


class Hook:
    def __init__(self, config: dict, torch):
        self.torch = torch
        params = config.get("HookParameters") or {}
        default = int(params.get("save_interval", DEFAULT_SAVE_INTERVAL))
        self.intervals: dict[str, int] = {}
        for item in config.get("CollectionConfigurations") or []:
            cparams = item.get("CollectionParameters") or {}
            self.intervals[item["CollectionName"]] = int(cparams.get("save_interval", default))
        if not self.intervals:  # smdebug's default collections for PyTorch
            self.intervals = {"losses": default}
        self.out = config.get("LocalPath") or DEFAULT_LOCAL_PATH
        os.makedirs(self.out, exist_ok=True)
        self.files: dict[str, IO[str]] = {}
        self.lock = threading.Lock()
        self.model: Any = None
        self.depth = 0
        self.mode = "TRAIN"
        self.step = -1                     # global step, across modes
        self.mode_steps = {"TRAIN": -1, "EVAL": -1}

    # --- writing ------------------------------------------------------------------------------
    def saving(self, collection: str) -> bool:
        interval = self.intervals.get(collection)
        return interval is not None and self.mode_steps[self.mode] >= 0 and \
            self.mode_steps[self.mode] % max(interval, 1) == 0

    def write(self, collection: str, name: str, tensor) -> None:
        t = tensor.detach().float()
        finite = t[self.torch.isfinite(t)]
        record = {"collection": collection, "name": name, "step": self.step, "mode": self.mode,
                  "mode_step": self.mode_steps[self.mode], "time": time.time(),
                  "nan": int(self.torch.isnan(t).sum()), "inf": int(self.torch.isinf(t).sum()),
                  "size": int(t.numel())}
        if finite.numel():
            record.update(mean=float(finite.mean()), abs_mean=float(finite.abs().mean()),
                          max_abs=float(finite.abs().max()), l2=float(finite.norm()))
        if t.numel() == 1 and record["nan"] == 0 and record["inf"] == 0:
            record["value"] = float(t.reshape(-1)[0])
        with self.lock:
            f = self.files.get(collection)
            if f is None:
                path = os.path.join(self.out, f"{collection}.jsonl")
                f = self.files[collection] = open(path, "a")  # noqa: SIM115 - kept open for the job's life
            f.write(json.dumps(record) + "\n")
            f.flush()

    # --- PyTorch's global module hooks ----------------------------------------------------------
    def is_loss(self, module) -> bool:
        return isinstance(module, self.torch.nn.modules.loss._Loss)

    def register_model(self, module) -> None:
        self.model = module
        for name, param in module.named_parameters():
            if param.requires_grad:
                param.register_hook(lambda grad, name=name: self.on_gradient(name, grad))

    def on_gradient(self, name: str, grad):
        if self.saving("gradients"):
            self.write("gradients", f"gradient/{name}", grad)
        return None

    def pre_forward(self, module, args) -> None:
        if self.is_loss(module):
            return
        if self.depth == 0:
            if self.model is None:
                self.register_model(module)
            if module is self.model:
                self.mode = "TRAIN" if module.training else "EVAL"
                self.step += 1
                self.mode_steps[self.mode] += 1
                if self.saving("weights"):
                    for name, param in module.named_parameters():
                        self.write("weights", name, param)
        self.depth += 1

    def post_forward(self, module, args, output) -> None:
        if self.is_loss(module):
            if self.saving("losses") and hasattr(output, "detach"):
                self.write("losses", f"{type(module).__name__}_output_0", output)
            return
        self.depth = max(0, self.depth - 1)


def install(torch) -> Hook | None:
    """Start collecting, if the job's DebugHookConfig asks for it."""
    try:
        with open(CONFIG) as f:
            config = json.load(f)
    except (OSError, ValueError):
        return None
    hook = Hook(config, torch)
    from torch.nn.modules import module as nn_module

    nn_module.register_module_forward_pre_hook(hook.pre_forward)
    nn_module.register_module_forward_hook(hook.post_forward)
    print(f"[labkit debugger] collecting {sorted(hook.intervals)} to {hook.out}", flush=True)
    return hook
