"""Input conventions of CAEL: uint8/float RGB images -> appearance tensor and Sobel edge map, on the device.

Everything here is batched tensor work that follows the device of the input; nothing runs per sample.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from common.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# ITU-R BT.601 luma, the weights of OpenCV's BGR2GRAY / RGB2GRAY (in R, G, B order).
LUMA_RGB = (0.299, 0.587, 0.114)

CHANNEL_ORDERS = ("rgb", "bgr")
# imagenet: (x / 255 - mean) / std; unit: x / 255 (the released CAEL); none: x as it is, 0..255 (the original Cross
# Efficient ViT, whose EfficientNets are fed OpenCV's BGR pixels untouched).
NORMALIZATIONS = ("imagenet", "unit", "none")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"model config key '{name}' must be one of {', '.join(choices)}; got {value!r}.")
    return value


# Smoothing weights across the derivative direction of each first-derivative operator, as OpenCV writes them
# (OpenCV's Sobel and Scharr; Prewitt: uniform); along the direction, the central difference [-1, 0, 1].
GRADIENT_SMOOTHING = {"sobel": (1.0, 2.0, 1.0), "scharr": (3.0, 10.0, 3.0), "prewitt": (1.0, 1.0, 1.0)}
# The 4-neighbour Laplacian (OpenCV's Laplacian with ksize=1, skimage.filters.laplace up to sign).
LAPLACIAN_KERNEL = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))
EDGE_OPERATORS = (*GRADIENT_SMOOTHING, "laplacian")


def edge_magnitude(grey: torch.Tensor, operator: str = "sobel") -> torch.Tensor:
    """Edge strength of (B, 1, H, W) images by a fixed 3x3 operator, border reflect-101 (OpenCV's default).

    Gradient operators give hypot(d/dx, d/dy) with their integer kernels; the Laplacian gives |response|.
    """
    _check_choice("edge-operator", operator, EDGE_OPERATORS)
    padded = F.pad(grey, (1, 1, 1, 1), mode="reflect")
    if operator == "laplacian":
        kernel = torch.tensor(LAPLACIAN_KERNEL, device=grey.device, dtype=grey.dtype).view(1, 1, 3, 3)
        return F.conv2d(padded, kernel).abs()
    smoothing = torch.tensor(GRADIENT_SMOOTHING[operator], device=grey.device, dtype=grey.dtype)
    derivative = torch.tensor([-1.0, 0.0, 1.0], device=grey.device, dtype=grey.dtype)
    kernel_x = torch.outer(smoothing, derivative)
    kernels = torch.stack((kernel_x, kernel_x.t())).unsqueeze(1)  # (2, 1, 3, 3): d/dx, d/dy
    gradients = F.conv2d(padded, kernels)
    return gradients.square().sum(dim=1, keepdim=True).sqrt()


def sobel_magnitude(grey: torch.Tensor) -> torch.Tensor:
    """Sobel gradient magnitude of (B, 1, H, W) images, border reflect-101 (OpenCV's default).

    Equals hypot(scipy.ndimage.sobel(x, axis=0, mode='mirror'), scipy.ndimage.sobel(x, axis=1, mode='mirror')).
    """
    return edge_magnitude(grey, "sobel")


def luma(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB images -> (B, 1, H, W) BT.601 luma in float32 (autocast off)."""
    weights = torch.tensor(LUMA_RGB, device=images.device, dtype=torch.float32).view(1, 3, 1, 1)
    with torch.autocast(device_type=images.device.type, enabled=False):
        return (images.float() * weights).sum(dim=1, keepdim=True)


class PixelNormalizer(nn.Module):
    """(B, 3, H, W) RGB images in 0..255 -> (pixels / 255 - mean) / std, on the device of the input.

    The input convention of the single-stream baselines: each passes its own paper's mean and std.
    """

    def __init__(self, mean: tuple[float, float, float], std: tuple[float, float, float]):
        super().__init__()
        mean, std = torch.tensor(mean, dtype=torch.float64), torch.tensor(std, dtype=torch.float64)
        self.register_buffer("scale", (1.0 / (255.0 * std)).float().view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", (mean / std).float().view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        InputAdapter.check_images(images)
        pixels = images.float() * self.scale - self.shift
        return pixels.contiguous(memory_format=_memory_format(images))


class InputAdapter(nn.Module):
    """Turns a batch of images with values in 0..255 into CAEL's two inputs.

    Returns the appearance tensor (B, 3, H, W) seen by both EfficientNet streams and the edge map (B, 1, H, W)
    (Sobel magnitude of the luma image, divided by 255, not clipped) seen by the edge stream.
    The switches reproduce the released code's conventions when set as in ``cael_released.yaml``.
    """

    def __init__(
        self,
        *,
        input_channel_order: str = "rgb",
        appearance_channel_order: str = "rgb",
        appearance_normalization: str = "imagenet",
        transpose_appearance: bool = False,
        edge_operator: str = "sobel",
    ):
        super().__init__()
        self.input_channel_order = _check_choice("input-channel-order", input_channel_order, CHANNEL_ORDERS)
        self.appearance_channel_order = _check_choice(
            "appearance-channel-order", appearance_channel_order, CHANNEL_ORDERS
        )
        self.appearance_normalization = _check_choice(
            "appearance-normalization", appearance_normalization, NORMALIZATIONS
        )
        self.transpose_appearance = bool(transpose_appearance)
        self.edge_operator = _check_choice("edge-operator", edge_operator, EDGE_OPERATORS)
        # The mean/std act on the channels in the order the appearance streams see them.
        mean = torch.tensor(IMAGENET_MEAN) * 255.0
        std = torch.tensor(IMAGENET_STD) * 255.0
        if self.appearance_channel_order == "bgr":
            mean, std = mean.flip(0), std.flip(0)
        if self.appearance_normalization == "unit":
            mean, std = torch.zeros(3), torch.full((3,), 255.0)
        if self.appearance_normalization == "none":
            mean, std = torch.zeros(3), torch.ones(3)
        luma = torch.tensor(LUMA_RGB)
        if self.input_channel_order == "bgr":
            luma = luma.flip(0)
        self.register_buffer("mean", mean.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", std.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("luma", luma.view(1, 3, 1, 1), persistent=False)

    def extra_repr(self) -> str:
        return (
            f"input={self.input_channel_order}, appearance={self.appearance_channel_order}, "
            f"normalization={self.appearance_normalization}, transpose_appearance={self.transpose_appearance}, "
            f"edge={self.edge_operator}"
        )

    @staticmethod
    def check_images(images: torch.Tensor) -> None:
        if images.ndim != 4 or images.shape[1] != 3:
            hint = (
                " (it looks channels-last: use images.permute(0, 3, 1, 2))"
                if images.ndim == 4 and images.shape[-1] == 3
                else ""
            )
            raise ValueError(
                "the detector expects images as a (B, 3, H, W) tensor of values in 0..255; "
                f"got shape {tuple(images.shape)}{hint}."
            )
        if images.is_floating_point() or images.dtype == torch.uint8:
            return
        raise TypeError(f"the detector expects uint8 or floating-point images; got dtype {images.dtype}.")

    def edge_map(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) 0..255 images -> (B, 1, H, W) edge magnitude / 255 (Sobel by default), computed in float32."""
        with torch.autocast(device_type=images.device.type, enabled=False):
            pixels = images.float()
            grey = (pixels * self.luma).sum(dim=1, keepdim=True)
            return edge_magnitude(grey, self.edge_operator) / 255.0

    def appearance(self, images: torch.Tensor) -> torch.Tensor:
        pixels = images.float()
        if self.appearance_channel_order != self.input_channel_order:
            pixels = pixels.flip(1)
        pixels = (pixels - self.mean) / self.std
        if self.transpose_appearance:
            pixels = pixels.transpose(-1, -2)
        return pixels.contiguous(memory_format=_memory_format(images))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.check_images(images)
        return self.appearance(images), self.edge_map(images).contiguous(memory_format=_memory_format(images))


def _memory_format(images: torch.Tensor) -> torch.memory_format:
    if images.is_contiguous(memory_format=torch.channels_last) and not images.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format
