"""Run a script on the CPU as if the course device were a GPU, so device mix-ups fail here too.

    python tools/device_guard.py SCRIPT.py   # e.g. a notebook as a script (tools/gpu_check.py)

On a GPU, `model(images)` with the model on the device and `images` still on the CPU stops with
"Input type (torch.FloatTensor) and weight type (torch.cuda.FloatTensor) should be the same". On
a CPU it just works, so CI cannot see the bug. This guard stands in for a second device:

- the course device (`MIXER_EDU_DEVICE`, which `mixer_edu.tools.course.course_device`
  reads) becomes `cpu:0`: an ordinary CPU to torch, but a separate place to the guard;
- every tensor made there or moved there (`device=...`, `.to(...)`, a module's `.to(...)`) is
  *on the device*, and so is everything computed from such a tensor, and its gradient;
- `.cpu()` and `.to("cpu")` give a copy that is back on the CPU;
- then, as on a GPU: a module whose parameters are on the device refuses an input that is not
  (and the other way round), and `.numpy()` refuses a tensor on the device.

It is a check, not a simulation of a GPU: the numbers are the CPU's, zero-dimensional tensors may
mix, as torch allows, and only the inputs of the outermost module call are checked (inside a
model's forward the tracking pauses, which keeps the cost small).
"""

from __future__ import annotations

import os
import runpy
import sys

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils.weak import WeakIdKeyDictionary

DEVICE = torch.device("cpu", 0)  # the pretend GPU: == torch.device("cpu") is False
CPU = torch.device("cpu")


class DeviceMixup(RuntimeError):
    """A tensor on the CPU met one on the (pretend) device."""


def _tensors(values):
    """The tensors among `values`, looking one level into lists, tuples and dicts."""
    for value in values:
        if isinstance(value, torch.Tensor):
            yield value
        elif isinstance(value, (list, tuple)):
            yield from (v for v in value if isinstance(v, torch.Tensor))
        elif isinstance(value, dict):
            yield from (v for v in value.values() if isinstance(v, torch.Tensor))


def _target(func, args, kwargs) -> torch.device | None:
    """The device a call asks for (`device=`, or `.to(device)` / `.to(tensor)`), if any."""
    wanted = kwargs.get("device")
    if wanted is None and getattr(func, "__name__", "") == "to":
        for arg in args[1:]:
            if isinstance(arg, (str, torch.device)):
                wanted = arg
            elif isinstance(arg, torch.Tensor):
                return DEVICE if arg in _ON_DEVICE else CPU
    if getattr(func, "__name__", "") == "cpu":
        wanted = CPU
    if wanted is None:
        return None
    wanted = torch.device(wanted)
    return DEVICE if wanted == DEVICE else wanted


_ON_DEVICE = WeakIdKeyDictionary()  # the tensors on the pretend device


def on_device(tensor: torch.Tensor) -> bool:
    """True when the guard counts `tensor` as on the pretend device."""
    return tensor in _ON_DEVICE


class DeviceGuard(TorchFunctionMode):
    """Tracks which tensors are on the pretend device; see the module's docstring."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        descriptor = getattr(getattr(func, "__self__", None), "__name__", "")
        inputs = list(_tensors(args)) + list(_tensors(kwargs.values()))
        if name in ("numpy", "__array__") and inputs and on_device(inputs[0]):
            raise DeviceMixup(
                "can't convert a tensor on the course device to numpy (on a GPU: 'can't convert "
                "cuda:0 device type tensor to numpy'); bring it to the CPU first (to_numpy, .cpu())"
            )
        if descriptor == "device" and name == "__get__" and on_device(args[0]):
            return DEVICE
        target = _target(func, args, kwargs)
        result = func(*args, **kwargs)
        if descriptor == "data" and name == "__set__":  # module.to(): param.data = moved copy
            self._place(args[0], on_device(args[1]))
            return result
        if target is None:
            mark = any(on_device(t) for t in inputs)
        else:
            mark = target == DEVICE
            if isinstance(result, torch.Tensor) and any(result is t for t in inputs):
                result = result.view_as(result)  # a no-op move still gives a separate tensor
        if mark:
            for tensor in _tensors([result]):
                _ON_DEVICE[tensor] = True
        return result

    @staticmethod
    def _place(tensor: torch.Tensor, on: bool) -> None:
        if on:
            _ON_DEVICE[tensor] = True
        else:
            _ON_DEVICE.pop(tensor, None)


def _check_inputs(module: nn.Module, args) -> None:
    """The inputs must be where the module's parameters are, as on a GPU."""
    parameter = next(module.parameters(), None)
    if parameter is None:
        return
    where = on_device(parameter)
    for tensor in _tensors(args):
        if tensor.dim() > 0 and on_device(tensor) != where:
            model, images = ("the device", "the CPU") if where else ("the CPU", "the device")
            raise DeviceMixup(
                f"{type(module).__name__} has its parameters on {model} but got an input "
                f"{tuple(tensor.shape)} on {images} (on a GPU: 'Input type and weight type should "
                "be the same'); move it with .to(device), or use the package's loaders or predict"
            )


class _Guard:
    """Checks the inputs of the outermost module calls. Inside a module's forward the tracking is
    paused (it would only slow every operation down): the outputs are on the device when the
    inputs were, and a module called inside another gets what the outer one computed."""

    def __enter__(self):
        self._mode, self._depth, self._inputs_on_device = DeviceGuard(), 0, []
        self._hooks = [
            nn.modules.module.register_module_forward_pre_hook(self._before),
            nn.modules.module.register_module_forward_hook(self._after, always_call=True),
        ]
        self._mode.__enter__()
        return self

    def __exit__(self, *exc):
        self._mode.__exit__(*exc)
        for hook in self._hooks:
            hook.remove()
        return False

    def _before(self, module, args):
        if self._depth == 0:
            _check_inputs(module, args)  # raises before anything is paused
            self._inputs_on_device.append(any(on_device(t) for t in _tensors(args)))
            self._mode.__exit__(None, None, None)
        self._depth += 1

    def _after(self, module, args, output):
        self._depth -= 1
        if self._depth == 0:
            self._mode.__enter__()
            if self._inputs_on_device.pop():
                for tensor in _tensors([output]):
                    _ON_DEVICE[tensor] = True


def guard():
    """A context manager: inside, the pretend device is tracked and mix-ups raise `DeviceMixup`."""
    return _Guard()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python tools/device_guard.py SCRIPT.py", file=sys.stderr)
        return 2
    os.environ["MIXER_EDU_DEVICE"] = "cpu:0"
    sys.argv = argv
    sys.path.insert(0, os.path.dirname(os.path.abspath(argv[0])))
    with guard():
        runpy.run_path(argv[0], run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
