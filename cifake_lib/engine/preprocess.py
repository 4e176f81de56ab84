"""Batched preprocessing on the device: uint8 batch -> (augment) -> float -> resize -> normalize.

This replaces the paper's per-image PIL ``Resize(224)`` + ``ToTensor`` + ``Normalize`` in
DataLoader workers: whole batches are sliced from the in-memory uint8 tensor (on the GPU when
there is one) and transformed with a handful of tensor operations.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def random_flip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Flip each image of an N x C x H x W batch horizontally with probability 1/2."""
    flip = torch.rand(x.shape[0], device=x.device, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def random_translate(x: torch.Tensor, pad: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift each image of a float batch by up to ``pad`` pixels in x and y (reflection padding)."""
    if pad <= 0:
        return x
    n, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dy = torch.randint(0, 2 * pad + 1, (n,), device=x.device, generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), device=x.device, generator=generator)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chan = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chan, rows, cols]


def bilinear_matrix(n_in: int, n_out: int, device=None) -> torch.Tensor:
    """n_out x n_in matrix M with M @ v == F.interpolate(v, n_out, mode="linear",
    align_corners=False) for upsampling (n_out >= n_in): PyTorch's source-index rule, weights
    of the two neighbours in each row, rows summing to 1."""
    src = ((torch.arange(n_out, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5).clamp(min=0)
    i0 = src.floor().long().clamp(max=n_in - 1)
    i1 = (i0 + 1).clamp(max=n_in - 1)
    w1 = src - i0
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    rows = torch.arange(n_out)
    m.index_put_((rows, i0), 1 - w1, accumulate=True)
    m.index_put_((rows, i1), w1, accumulate=True)
    return m.float().to(device)


class Preprocessor:
    """Turns uint8 N x 3 x S x S batches into normalized float batches of ``image_size``.

    ``augment`` applies a random horizontal flip and a translation of up to ``translate`` pixels
    (at the stored resolution) before resizing, only when called with ``train=True``.

    ``reuse_output`` (CPU only) writes upscaled batches into one preallocated buffer per batch
    shape: a fresh 77 MB tensor per 224px batch costs more in page faults than the arithmetic.
    Each call then overwrites the previous result, so only a loop that is done with a batch
    before asking for the next (the trainer, prediction) should set it.
    """

    def __init__(
        self,
        image_size: int,
        *,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        augment: bool = False,
        translate: int = 2,
        channels_last: bool = False,
        device: torch.device | str = "cpu",
        reuse_output: bool = False,
    ):
        if not isinstance(image_size, int) or image_size < 1:
            raise ValueError(f"image_size must be a positive integer, got {image_size!r}")
        self.image_size = image_size
        self.augment = augment
        self.translate = translate
        self.channels_last = channels_last
        self.device = torch.device(device)
        self.mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        # (x / 255 - mean) / std as one multiply-add
        self._scale = 1.0 / (255.0 * self.std)
        self._shift = -self.mean / self.std
        self._up: dict[int, torch.Tensor] = {}
        self.reuse_output = reuse_output and self.device.type == "cpu"
        self._buffers: dict[tuple, torch.Tensor] = {}

    def __call__(
        self, batch: torch.Tensor, train: bool = False, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        if batch.dtype != torch.uint8 or batch.ndim != 4 or batch.shape[1] != 3:
            raise ValueError(f"expected a uint8 N x 3 x H x W batch, got {tuple(batch.shape)} {batch.dtype}")
        x = batch.to(self.device, non_blocking=True).float()
        if train and self.augment:
            x = random_translate(random_flip(x, generator), self.translate, generator)
        # normalize first, at 32x32: bilinear weights sum to one, so this equals normalizing after
        x = torch.addcmul(self._shift, x, self._scale)
        h, w = x.shape[-2:]
        if h == w and self.image_size > h:
            # upscaling (32 -> 224) as two small matrix products, exactly torch's bilinear
            # interpolation (align_corners=False) and several times faster on the CPU
            if h not in self._up:
                self._up[h] = bilinear_matrix(h, self.image_size, self.device)
            m = self._up[h]
            n, c, s = x.shape[0], x.shape[1], self.image_size
            rows = torch.matmul(m, x).reshape(-1, h)  # heights first: N*C*S x h, then one GEMM for widths
            if self.reuse_output:
                if (n, c) not in self._buffers:
                    if len(self._buffers) >= 2:  # the full batch and the last, shorter one
                        self._buffers.clear()
                    self._buffers[(n, c)] = torch.empty(n, c, s, s)
                x = torch.matmul(rows, m.T, out=self._buffers[(n, c)].view(-1, s)).view(n, c, s, s)
            else:
                x = torch.matmul(rows, m.T).view(n, c, s, s)
        elif (h, w) != (self.image_size, self.image_size):
            # bilinear like torchvision's Resize, antialiased when shrinking
            x = F.interpolate(
                x,
                size=(self.image_size, self.image_size),
                mode="bilinear",
                align_corners=False,
                antialias=self.image_size < max(h, w),
            )
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Model inputs back to viewable 0..1 RGB (for figures): x * std + mean, clipped."""
        return (x * self.std.to(x.device) + self.mean.to(x.device)).clamp(0, 1)

    def describe(self) -> dict:
        return {
            "image_size": self.image_size,
            "resize": "bilinear (batched, on device)",
            "mean": [round(v, 4) for v in self.mean.flatten().tolist()],
            "std": [round(v, 4) for v in self.std.flatten().tolist()],
            "augment": f"random horizontal flip + translate up to {self.translate} px" if self.augment else "none",
        }
