"""The device a run trains on, from its name: ``auto``, ``cpu``, ``cuda``, ``cuda:K`` or ``mps``."""

from __future__ import annotations

import os

import torch

__all__ = ["resolve_device"]


def resolve_device(name: str | torch.device) -> torch.device:
    """``auto``: CUDA if there is a GPU (under ``torchrun``, the rank's ``LOCAL_RANK`` GPU), else
    Apple's MPS, else the CPU. ``cuda`` under ``torchrun`` is the rank's GPU too. A device this
    machine lacks raises a ValueError that names what it has."""
    text = str(name)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    mps = getattr(torch.backends, "mps", None)
    has_mps = mps is not None and mps.is_available()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local % torch.cuda.device_count())
        return torch.device("mps") if has_mps else torch.device("cpu")
    try:
        device = torch.device(text)
    except RuntimeError:
        raise ValueError(f"Unknown device {text!r}; use auto, cpu, cuda, cuda:K or mps.") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"Device {text!r} was asked for, but this PyTorch has no CUDA device (torch "
                             f"{torch.__version__}, cuda available: False). Use device 'auto' or 'cpu', or install "
                             "a CUDA build of torch on a machine with a GPU.")
        index = local if device.index is None and "LOCAL_RANK" in os.environ else device.index
        if index is not None and index >= torch.cuda.device_count():
            raise ValueError(f"Device {text!r}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                             f"cuda:0 to cuda:{torch.cuda.device_count() - 1}.")
        return torch.device("cuda", index) if index is not None else device
    if device.type == "mps" and not has_mps:
        raise ValueError(f"Device {text!r} was asked for, but MPS is not available here; use 'auto' or 'cpu'.")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"Unknown device {text!r}; use auto, cpu, cuda, cuda:K or mps.")
    return device
