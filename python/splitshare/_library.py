"""Loads the package's operator library (`_ops.so`, built from python/csrc by CMake) once."""
import os
import pathlib

import torch

_ENV = "SPLITSHARE_OPS_LIBRARY"


def library_path():
    """The operator library: $SPLITSHARE_OPS_LIBRARY (a build tree's), else the one installed beside
    this file."""
    given = os.environ.get(_ENV)
    if given:
        path = pathlib.Path(given)
        if not path.is_file():
            raise ImportError(f"splitshare: {_ENV}={given} is not a file (expected the built _ops.so)")
        return path
    found = sorted(pathlib.Path(__file__).parent.glob("_ops*.so"))
    if not found:
        raise ImportError(f"splitshare: no _ops*.so beside {__file__}: install the package with "
                          f"`pip install --no-build-isolation .`, or set {_ENV} to a build's _ops.so")
    return found[0]


def load():
    """Registers torch.ops.splitshare.* (idempotent)."""
    if not hasattr(torch.ops.splitshare, "ssm_head_forward"):
        torch.ops.load_library(str(library_path()))
