"""splitshare from Python: the Split-and-Share head's fused kernels as a torch operator
(`splitshare.ops.ssm_head`) and module (`splitshare.nn.SplitShareHead`), the data loaders
(`splitshare.data.ImageFolder`, `splitshare.data.open`), from the same C++ code as the
`splitshare` command-line tool, and its checkpoints (`splitshare.load`, `splitshare.save`).

    import splitshare
    head = splitshare.nn.SplitShareHead(2048, 1000)
    model, meta = splitshare.load("runs/train/checkpoint.pt")
"""
from . import data, nn, ops
from .checkpoint import load, read_metadata, save

__version__ = "0.1.0"
__all__ = ["data", "nn", "ops", "load", "save", "read_metadata"]
