"""splitshare's data loaders from Python: the C++ library's batch streams (threaded JPEG decoding
straight into the batch, the paper's or torchvision's augmentation, deterministic per seed and
epoch, sharded by rank), yielding torch tensors.

    train = splitshare.data.ImageFolder("photos/train", batch_size=64, workers=2, seed=0)
    for epoch in range(2):
        train.set_epoch(epoch)
        for images, labels in train:      # float32 [B, 3, 224, 224] normalised, int64 [B]
            ...

    data = splitshare.data.open("fashion-mnist")          # every data set the tool's --data reads
    data.train, data.val, data.classes, data.preprocess
"""
import json
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import torch

from . import _library

_library.load()

__all__ = ["Loader", "Data", "ImageFolder", "open"]


class Loader:
    """One stream of batches: iterating it gives one epoch of `(images, labels)`.

    images: float32 [B, C, H, W] normalised (or uint8 before normalisation for a training stream
    opened with uint8=True: `normalize` finishes it, on any device); labels: int64 [B].
    The epoch's order and augmentation depend only on (seed, epoch, sample): every iteration
    starts the epoch `set_epoch` gave, else the one after the previous iteration's (0 first), so a
    loop that never calls set_epoch still reshuffles every epoch."""

    def __init__(self, stream, info: Dict[str, Any]):
        self._stream = stream
        self._epoch = 0
        self._scale: Optional[torch.Tensor] = None
        self._shift: Optional[torch.Tensor] = None
        self.classes: List[str] = info["classes"]
        self.preprocess: Dict[str, Any] = info["preprocess"]
        self.class_counts: List[int] = info["class_counts"]
        self.last_indices: Optional[torch.Tensor] = None

    def __len__(self) -> int:
        """Batches per epoch (of this rank's shard)."""
        return self._stream.batches_per_epoch()

    @property
    def num_samples(self) -> int:
        """Samples per epoch of this rank's shard."""
        return self._stream.size()

    @property
    def skipped(self) -> int:
        """Unreadable files skipped so far (reported on stderr; strict=True raises instead)."""
        return self._stream.skipped()

    def set_epoch(self, epoch: int) -> None:
        """The epoch the next iteration reads (its shuffle and augmentation)."""
        if epoch < 0:
            raise ValueError(f"splitshare.data: set_epoch({epoch}): the epoch must be >= 0")
        self._epoch = int(epoch)

    def batches(self) -> Iterator[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """One epoch of (images, labels, indices): indices int64 [B] are the samples' positions in
        the data set (for tracing a prediction back to its file)."""
        epoch = self._epoch
        self._epoch += 1
        self._stream.reset(epoch)
        while True:
            out = self._stream.next()
            if not out:
                return
            if len(out) == 5:
                self._scale, self._shift = out[3], out[4]
            yield out[0], out[1], out[2]

    def __iter__(self) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        for images, labels, indices in self.batches():
            self.last_indices = indices
            yield images, labels

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images of this loader (on any device) as the model's float32 input: images * scale
        + shift per channel, the same float operations the C++ loader uses on the CPU."""
        if images.dtype != torch.uint8:
            return images
        if self._scale is None:
            raise ValueError("splitshare.data: normalize() needs a uint8 batch from this loader first")
        shape = (1, -1, 1, 1)
        scale = self._scale.to(images.device).view(shape)
        shift = self._shift.to(images.device).view(shape)
        return images.float() * scale + shift


@dataclass
class Data:
    """A data set opened as the tool opens `--data`: the training and validation loaders."""
    train: Loader
    val: Loader
    classes: List[str]
    #: Evaluation preprocessing as checkpoints record it (channels, resize, crop, size, mean, std).
    preprocess: Dict[str, Any]
    #: True for 28/32-px data read into memory (the small-image model's data).
    small_images: bool
    #: A single-root image folder's validation files (relative to the root).
    val_files: List[str] = field(default_factory=list)


def _options(given: Dict[str, Any]) -> str:
    # Unset options (None) keep the C++ library's defaults (data::DataOptions).
    return json.dumps({k: (list(v) if isinstance(v, tuple) else v) for k, v in given.items() if v is not None})


def open(data: str = "fashion-mnist", *, batch_size: Optional[int] = None, eval_batch_size: Optional[int] = None,
         seed: Optional[int] = None, workers: Optional[int] = None, rank: Optional[int] = None,
         world_size: Optional[int] = None, augment: Optional[bool] = None, recipe: Optional[str] = None,
         image_size: Optional[int] = None, auto_augment: Optional[str] = None,
         random_erase: Optional[float] = None, crop_scale: Optional[Sequence[float]] = None,
         crop_ratio: Optional[Sequence[float]] = None, val_split: Optional[float] = None,
         class_map: Optional[str] = None, balanced_sampler: Optional[bool] = None,
         shuffle_buffer: Optional[int] = None, uint8: Optional[bool] = None, pin_memory: Optional[bool] = None,
         channels_last: Optional[bool] = None, strict: Optional[bool] = None, limit_train: Optional[int] = None,
         limit_val: Optional[int] = None, mean: Optional[Sequence[float]] = None,
         std: Optional[Sequence[float]] = None) -> Data:
    """Opens `data` as the tool's `--data` names it ("fashion-mnist", "mnist:DIR", "cifar10:DIR",
    "cifar100:DIR", "imagefolder:DIR", "imagefolder:TRAIN,VAL", "wds:LOCATION"), with the tool's
    defaults for every option left as None (docs/python.md lists them). Errors name the option or
    file: ValueError for a bad option value, RuntimeError for data that cannot be read."""
    options = {k: v for k, v in locals().items() if k != "data"}  # the keyword arguments, by name
    train, val, info = torch.ops.splitshare.open_data(str(data), _options(options))
    info = json.loads(info)
    return Data(Loader(train, info), Loader(val, info), info["classes"], info["preprocess"], info["small_images"],
                info["val_files"])


# ImageFolder's keyword arguments passed on as they are (the others are mapped below).
_FOLDER_OPTIONS = ("recipe", "workers", "seed", "image_size", "augment", "auto_augment", "random_erase",
                   "crop_scale", "crop_ratio", "rank", "world_size", "uint8", "pin_memory", "channels_last",
                   "strict", "class_map", "balanced_sampler", "mean", "std")


class ImageFolder(Loader):
    """A class-per-folder `root` (ROOT/<class>/<image>) read through the photo pipeline. train=True:
    shuffled per epoch, augmented by `recipe` ("paper": resize to image_size/0.875 square, random
    crop, flip; "torchvision": RandomResizedCrop + flip), the last incomplete batch dropped.
    train=False: every image once, in order, resized and centre-cropped (evaluation; batch_size
    is then the evaluation batch). Classes are the sorted folder names, as torchvision's
    ImageFolder has them. Options left as None keep the tool's defaults."""

    def __init__(self, root, *, train: bool = True, recipe: Optional[str] = None, batch_size: Optional[int] = None,
                 workers: Optional[int] = None, seed: Optional[int] = None, image_size: Optional[int] = None,
                 augment: Optional[bool] = None, auto_augment: Optional[str] = None,
                 random_erase: Optional[float] = None, crop_scale: Optional[Sequence[float]] = None,
                 crop_ratio: Optional[Sequence[float]] = None, rank: Optional[int] = None,
                 world_size: Optional[int] = None, uint8: Optional[bool] = None,
                 pin_memory: Optional[bool] = None, channels_last: Optional[bool] = None,
                 strict: Optional[bool] = None, class_map: Optional[str] = None,
                 balanced_sampler: Optional[bool] = None, limit: Optional[int] = None,
                 mean: Optional[Sequence[float]] = None, std: Optional[Sequence[float]] = None):
        given = dict(locals())
        options = {k: given[k] for k in _FOLDER_OPTIONS}
        options["limit_train" if train else "limit_val"] = limit
        options["batch_size" if train else "eval_batch_size"] = batch_size
        stream, info = torch.ops.splitshare.open_image_folder(str(root), bool(train), _options(options))
        super().__init__(stream, json.loads(info))
        self.root = str(root)
