"""Where the LM teacher runs: ``--device auto|cpu|cuda|mps`` turned into a torch device and dtype.

``auto`` takes a CUDA GPU when torch sees one, else Apple's MPS, else the CPU. On a GPU the
model runs in half precision (bfloat16 where the GPU supports it, else float16: the speed
and memory a GPU is for, and scoring four short phrases loses nothing that matters to an
argmax or a softmax at temperature 1); on the CPU in float32, because CPU half-precision
kernels are slower than float32 ones. Asking for a device this machine lacks is a
``DeviceUnavailable`` with one line saying why (a CPU-only torch build, no GPU found), which
the CLI prints as its error: an explicit ``--device cuda`` never falls back silently.

The HRM (about a million parameters, batch size one) stays on the CPU: a GPU round trip per
decision would cost more than the whole CPU forward pass (2 ms).

``torch`` is imported only when a device is resolved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


class DeviceUnavailable(Exception):
    """The device asked for does not exist here; the message is one line for people."""


@dataclass(frozen=True, slots=True)
class Placement:
    """A resolved device: ``device`` for torch (``"cuda"``, ``"mps"``, ``"cpu"``) and its dtype."""

    device: str
    dtype_name: str  # "float32", "float16" or "bfloat16"
    detail: str = ""  # e.g. the GPU's name

    def dtype(self, torch: Any) -> Any:
        return getattr(torch, self.dtype_name)

    @property
    def label(self) -> str:
        """``"cuda (bfloat16, NVIDIA H200)"`` or ``"cpu (float32)"``: for the header and status."""
        extra = f", {self.detail}" if self.detail else ""
        return f"{self.device} ({self.dtype_name}{extra})"


def _mps_available(torch: Any) -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def _cuda_placement(torch: Any) -> Placement:
    try:
        name = str(torch.cuda.get_device_name(0))
    except Exception:  # a name is nice to have, never worth failing for
        name = ""
    bf16 = False
    try:
        bf16 = bool(torch.cuda.is_bf16_supported())
    except Exception:
        bf16 = False
    return Placement("cuda", "bfloat16" if bf16 else "float16", name)


def _why_no_cuda(torch: Any) -> str:
    if getattr(torch.version, "cuda", None) is None:
        return (f"CUDA is not available: this torch ({torch.__version__}) was built without "
                "CUDA support (install a CUDA build of torch, or use --device cpu)")
    return ("CUDA is not available: torch was built with CUDA "
            f"{torch.version.cuda} but finds no usable GPU (check the driver and "
            "CUDA_VISIBLE_DEVICES, or use --device cpu)")


def resolve_device(choice: str) -> Placement:
    """The placement for ``choice``; raises ``DeviceUnavailable`` when it is not here."""
    if choice not in DEVICE_CHOICES:
        raise DeviceUnavailable(f"unknown device {choice!r}; choose from "
                                f"{', '.join(DEVICE_CHOICES)}")
    import torch

    if choice == "cpu":
        return Placement("cpu", "float32")
    if choice == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailable(_why_no_cuda(torch))
        return _cuda_placement(torch)
    if choice == "mps":
        if not _mps_available(torch):
            raise DeviceUnavailable("MPS is not available: it needs Apple silicon, macOS 12.3 "
                                    "or later and a torch build with MPS (or use --device cpu)")
        return Placement("mps", "float16")
    if torch.cuda.is_available():
        return _cuda_placement(torch)
    if _mps_available(torch):
        return Placement("mps", "float16")
    return Placement("cpu", "float32")
