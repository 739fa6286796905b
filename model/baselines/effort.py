"""``effort``: Effort (Yan et al., ICML 2025, "Orthogonal Subspace Decomposition for Generalizable AI-Generated Image
Detection") on CLIP ViT-L/14: each attention projection's weight is split by its SVD into a frozen principal part and
a trainable residual of the smallest singular directions.

As its code builds it (YZY-stack/Effort-AIGI-Detection ``DeepfakeBench/training/detectors/effort_detector.py``,
``config/detector/effort.yaml``): ``CLIPModel.from_pretrained("openai/clip-vit-large-patch14").vision_model``; every
``nn.Linear`` inside a ``self_attn`` module (``q_proj``, ``k_proj``, ``v_proj``, ``out_proj`` of the 24 blocks) becomes
W = U_r S_r V_r^T (the top r = 1023 singular components, frozen) + U_res diag(S_res) V_res (the last
``svd-residual-rank`` = 1, trainable: 1,024 + 1 + 1,024 values per projection); biases and every other encoder
parameter are frozen; the feature is ``pooler_output`` (1,024 values) and the head ``nn.Linear(1024, 2)``; 224 px,
CLIP's mean and std. 196,704 + 2,050 values train (the paper's "0.19M").

The paper adds to the cross-entropy an orthogonality loss (0.5 ||[U_r U_res][U_r U_res]^T - I||_F + 0.5 ||[V_r; V_res]
[V_r; V_res]^T - I||_F) and a singular-value (norm-keeping) loss (| ||W||_F^2 - ||W_original||_F^2 |), averaged over the
projections. Its public code does not train with them: that ``get_losses`` is commented out and the one in use is
cross-entropy alone (users found the same: Effort-AIGI-Detection issue 9). ``regularizer-weight: 0`` (the default)
follows the code; the commented-out code's ``lambda_reg`` is 1.0 (``regularizer-weight: 1.0``). For the square
projections of CLIP the orthogonality terms are computed from the residual directions alone (the frozen ones are
orthonormal), which equals the full products without storing U_r and V_r.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register_model
from .base import ModelConfigError
from .foundation import FOUNDATION_DEFAULTS, FoundationDetector

# Modules whose linear layers Effort decomposes: CLIP's attention (CLIPAttention, named self_attn).
SVD_MODULE = "self_attn"


def _gram_difference_norm(current: torch.Tensor, initial: torch.Tensor) -> torch.Tensor:
    """||A A^T - B B^T||_F for (n, m) matrices A, B whose columns B are orthonormal, from (m, m) Gram products:
    ||A^T A||^2 + ||B^T B||^2 - 2 ||B^T A||^2 (no n x n matrix is formed)."""
    squared = (
        (current.T @ current).square().sum()
        + (initial.T @ initial).square().sum()
        - 2.0 * (initial.T @ current).square().sum()
    )
    return squared.clamp_min(1e-12).sqrt()


def _svd(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The thin SVD of a weight, on the GPU when there is one: on a CPU ViT-L/14's 96 take long (11-16 s each, about
    20 minutes, on the project's shared 2-core machine under load), and loading a checkpoint builds them too."""
    device = torch.device("cuda") if torch.cuda.is_available() else weight.device
    u, s, vh = torch.linalg.svd(weight.to(device), full_matrices=False)
    return u.to(weight.device), s.to(weight.device), vh.to(weight.device)


class SVDResidualLinear(nn.Module):
    """y = x (W_main + U_res diag(S_res) V_res)^T + b, from a linear layer's W = U S V^T: W_main keeps the top
    singular components (frozen), the last ``residual_rank`` start as they were and train."""

    def __init__(self, linear: nn.Linear, residual_rank: int):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight = linear.weight.detach().float()
        u, s, vh = _svd(weight)
        kept = max(0, s.numel() - residual_rank)
        self.weight_main = nn.Parameter((u[:, :kept] * s[:kept]) @ vh[:kept], requires_grad=False)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
        self.u_residual = nn.Parameter(u[:, kept:].clone())
        self.s_residual = nn.Parameter(s[kept:].clone())
        self.v_residual = nn.Parameter(vh[kept:].clone())
        # What the paper's regularisers compare with: the residual directions and the squared norm of W at the start.
        self.register_buffer("u_initial", u[:, kept:].clone())
        self.register_buffer("v_initial", vh[kept:].clone())
        self.register_buffer("weight_norm_initial", weight.square().sum())

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, residual_rank={self.s_residual.numel()}"

    def weight(self) -> torch.Tensor:
        return self.weight_main + (self.u_residual * self.s_residual) @ self.v_residual

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return F.linear(inputs, self.weight(), self.bias)

    def orthogonal_loss(self) -> torch.Tensor:
        """0.5 ||U U^T - I||_F + 0.5 ||V V^T - I||_F of the paper, U = [U_r U_res], V = [V_r; V_res], for a square W:
        there U_r U_r^T = I - U_0 U_0^T (U_0: the residual directions at the start), and likewise for V."""
        return 0.5 * _gram_difference_norm(self.u_residual, self.u_initial) + 0.5 * _gram_difference_norm(
            self.v_residual.T, self.v_initial.T
        )

    def keep_norm_loss(self) -> torch.Tensor:
        """| ||W||_F^2 - ||W_original||_F^2 |: the singular-value (norm-keeping) term."""
        return (self.weight().square().sum() - self.weight_norm_initial).abs()


def decompose_attention(encoder: nn.Module, residual_rank: int) -> list[str]:
    """Replace every ``nn.Linear`` under a ``self_attn`` module by an ``SVDResidualLinear``; returns their names."""
    replaced = []
    for name, module in list(encoder.named_modules()):
        if not name.endswith(SVD_MODULE):
            continue
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.Linear):
                setattr(module, child_name, SVDResidualLinear(child, residual_rank))
                replaced.append(f"{name}.{child_name}")
    return replaced


@register_model("effort")
class Effort(FoundationDetector):
    family = "clip"
    config_defaults: dict[str, Any] = {
        "name": "effort",
        **FOUNDATION_DEFAULTS,
        "backbone": "openai/clip-vit-large-patch14",
        "svd-residual-rank": 1,  # n - r of the code's r = 1024 - 1
        "regularizer-weight": 0.0,  # 0: the public code (cross-entropy only); 1.0: the paper's losses as coded
    }

    def adapt(self) -> None:
        rank = self.config["svd-residual-rank"]
        if not 1 <= rank < self.config["vision-width"]:
            raise ModelConfigError(
                f"model config key 'svd-residual-rank' of effort must lie in [1, vision-width); got {rank}."
            )
        self.decomposed = decompose_attention(self.encoder, rank)
        if not self.decomposed:
            raise ModelConfigError(f"the effort encoder has no linear layer under a '{SVD_MODULE}' module.")
        for name, parameter in self.encoder.named_parameters():
            parameter.requires_grad_(name.rsplit(".", 1)[-1] in ("u_residual", "s_residual", "v_residual"))
        if self.config["regularizer-weight"] < 0:
            raise ModelConfigError("model config key 'regularizer-weight' of effort must be 0 or more.")
        square = all(layer.in_features == layer.out_features for layer in self.svd_layers())
        if self.config["regularizer-weight"] and not square:
            raise ModelConfigError(
                "model config key 'regularizer-weight' of effort needs square attention projections (CLIP's are): "
                "set it to 0 for this encoder."
            )

    def svd_layers(self) -> list[SVDResidualLinear]:
        return [module for module in self.encoder.modules() if isinstance(module, SVDResidualLinear)]

    def regularizer(self) -> torch.Tensor:
        """The mean over the decomposed projections of orthogonality + norm-keeping losses (unweighted)."""
        layers = self.svd_layers()
        return sum(layer.orthogonal_loss() + layer.keep_norm_loss() for layer in layers) / len(layers)

    def training_terms(self) -> dict[str, torch.Tensor]:
        weight = self.config["regularizer-weight"]
        return {"regularizer": weight * self.regularizer()} if weight else {}
