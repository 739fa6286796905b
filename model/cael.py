"""CAEL, the cross appearance-edge learning detector of GenFace (Zhang et al., IEEE TIFS 2024).

Three token streams (fine appearance, coarse appearance, Sobel edges), per-stream transformer encoders,
multi-grained cross-attention between the appearance streams, appearance-edge cross-attention (AECA) into the
edge stream, and three classifier heads whose logits are summed. Read top to bottom. The ablation switches
(``streams``, ``cross-attention``, ``aeca-fusion``, ``edge-operator``) leave parts out; at their defaults the model
is CAEL, unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from einops.layers.torch import Rearrange
from torch import nn

from common.config import with_suggestions
from common.errors import ConfigError, UnknownKeyError

from .backbone import build_backbones
from .preprocess import InputAdapter
from .registry import register_model


class FeedForward(nn.Module):
    def __init__(self, *, dim: int, hidden_dim: int, dropout: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.fc2(self.dropout(self.act(self.fc1(x)))))


class Attention(nn.Module):
    """Multi-head attention of queries ``x`` over ``context`` (itself by default), by scaled_dot_product_attention."""

    def __init__(self, *, dim: int, heads: int, dim_head: int, dropout: float = 0.0):
        super().__init__()
        inner_dim = heads * dim_head
        self.heads = heads
        self.to_q = nn.Linear(dim, inner_dim, bias=False)
        self.to_kv = nn.Linear(dim, inner_dim * 2, bias=False)
        self.to_out = nn.Linear(inner_dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        context = x if context is None else context
        q = rearrange(self.to_q(x), "b n (h d) -> b h n d", h=self.heads)
        k, v = rearrange(self.to_kv(context), "b n (two h d) -> two b h n d", two=2, h=self.heads)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.dropout(self.to_out(rearrange(out, "b h n d -> b n (h d)")))


class EncoderLayer(nn.Module):
    """Pre-norm ViT layer."""

    def __init__(self, *, dim: int, heads: int, dim_head: int, mlp_dim: int, dropout: float = 0.0):
        super().__init__()
        self.attn_norm = nn.LayerNorm(dim)
        self.attn = Attention(dim=dim, heads=heads, dim_head=dim_head, dropout=dropout)
        self.ff_norm = nn.LayerNorm(dim)
        self.ff = FeedForward(dim=dim, hidden_dim=mlp_dim, dropout=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x))
        return x + self.ff(self.ff_norm(x))


class Transformer(nn.Module):
    """A stack of encoder layers and a final LayerNorm."""

    def __init__(self, *, dim: int, depth: int, heads: int, dim_head: int, mlp_dim: int, dropout: float = 0.0):
        super().__init__()
        self.layers = nn.ModuleList(
            EncoderLayer(dim=dim, heads=heads, dim_head=dim_head, mlp_dim=mlp_dim, dropout=dropout)
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)


class ClsCrossAttention(nn.Module):
    """A CLS token of width ``query_dim`` attends over [itself; ``context`` patch tokens] of width ``context_dim``.

    The CLS token is projected to the context width (when the widths differ), layer-normed (query side only),
    attends, and is projected back. Returns the update; the caller adds the residual.
    """

    def __init__(self, *, query_dim: int, context_dim: int, heads: int, dim_head: int, dropout: float = 0.0):
        super().__init__()
        same = query_dim == context_dim
        self.project_in = nn.Identity() if same else nn.Linear(query_dim, context_dim)
        self.norm = nn.LayerNorm(context_dim)
        self.attn = Attention(dim=context_dim, heads=heads, dim_head=dim_head, dropout=dropout)
        self.project_out = nn.Identity() if same else nn.Linear(context_dim, query_dim)

    def forward(self, cls: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        query = self.norm(self.project_in(cls))
        return self.project_out(self.attn(query, torch.cat((query, context), dim=1)))


class MultiGrainedCrossAttentionRound(nn.Module):
    def __init__(self, *, fine_dim: int, coarse_dim: int, heads: int, dim_head: int, dropout: float = 0.0):
        super().__init__()
        common = dict(heads=heads, dim_head=dim_head, dropout=dropout)
        self.fine_to_coarse = ClsCrossAttention(query_dim=fine_dim, context_dim=coarse_dim, **common)
        self.coarse_to_fine = ClsCrossAttention(query_dim=coarse_dim, context_dim=fine_dim, **common)


class MultiGrainedCrossAttention(nn.Module):
    """CrossViT-style exchange: each appearance CLS token attends over the other stream's patch tokens."""

    def __init__(self, *, fine_dim: int, coarse_dim: int, depth: int, heads: int, dim_head: int, dropout: float = 0.0):
        super().__init__()
        self.rounds = nn.ModuleList(
            MultiGrainedCrossAttentionRound(
                fine_dim=fine_dim, coarse_dim=coarse_dim, heads=heads, dim_head=dim_head, dropout=dropout
            )
            for _ in range(depth)
        )

    def forward(self, fine: torch.Tensor, coarse: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fine_cls, fine_patches = fine[:, :1], fine[:, 1:]
        coarse_cls, coarse_patches = coarse[:, :1], coarse[:, 1:]
        for round_ in self.rounds:
            fine_cls = fine_cls + round_.fine_to_coarse(fine_cls, coarse_patches)
            coarse_cls = coarse_cls + round_.coarse_to_fine(coarse_cls, fine_patches)
        return torch.cat((fine_cls, fine_patches), dim=1), torch.cat((coarse_cls, coarse_patches), dim=1)


class AppearanceEdgeRound(nn.Module):
    """One AECA round: the edge CLS token attends over the patch tokens of each appearance stream present."""

    def __init__(
        self,
        *,
        fine_dim: int,
        coarse_dim: int,
        heads: int,
        dim_head: int,
        dropout: float = 0.0,
        fine: bool = True,
        coarse: bool = True,
    ):
        super().__init__()
        common = dict(heads=heads, dim_head=dim_head, dropout=dropout)
        self.edge_to_fine = ClsCrossAttention(query_dim=coarse_dim, context_dim=fine_dim, **common)
        self.edge_to_coarse = ClsCrossAttention(query_dim=coarse_dim, context_dim=coarse_dim, **common)
        # Both branches are built whatever the streams (the same seed then initialises the rest as in CAEL).
        if not fine:
            self.edge_to_fine = None
        if not coarse:
            self.edge_to_coarse = None

    def forward(self, edge_cls: torch.Tensor, fine_patches, coarse_patches) -> torch.Tensor:
        """The sum of the branch updates (the caller adds the residual)."""
        updates = []
        if self.edge_to_fine is not None:
            updates.append(self.edge_to_fine(edge_cls, fine_patches))
        if self.edge_to_coarse is not None:
            updates.append(self.edge_to_coarse(edge_cls, coarse_patches))
        return updates[0] if len(updates) == 1 else updates[0] + updates[1]


AECA_ROUNDS = ("sequential", "last")
AECA_RESIDUALS = ("single", "double")
# How the edge stream meets the appearance streams (an ablation switch): AECA (the paper), no fusion at all (the
# edge stream runs on its own until the summed heads), or one linear layer over the concatenated final CLS tokens.
AECA_FUSIONS = ("attention", "none", "concat")
STREAMS = ("fine", "coarse", "edge")


class AppearanceEdgeCrossAttention(nn.Module):
    """AECA: the edge CLS token attends over the fine and, separately, the coarse appearance patch tokens.

    ``rounds='sequential'`` applies every round to the updated edge CLS token. ``rounds='last'`` is the released
    behaviour: each round starts from the same input token and only the last round's result is kept, so the
    earlier rounds are dead weight (and are skipped here). ``residual='double'`` (released) adds the input token
    to both branch results, ``'single'`` adds it once: ``e + attn_fine(e) + attn_coarse(e)``.
    """

    def __init__(
        self,
        *,
        fine_dim: int,
        coarse_dim: int,
        depth: int,
        heads: int,
        dim_head: int,
        dropout: float = 0.0,
        rounds: str = "sequential",
        residual: str = "single",
        fine: bool = True,
        coarse: bool = True,
    ):
        super().__init__()
        if rounds not in AECA_ROUNDS:
            raise ConfigError(
                f"model config key 'aeca-rounds' must be one of {', '.join(AECA_ROUNDS)}; got {rounds!r}."
            )
        if residual not in AECA_RESIDUALS:
            raise ConfigError(
                f"model config key 'aeca-residual' must be one of {', '.join(AECA_RESIDUALS)}; got {residual!r}."
            )
        if depth < 1:
            raise ConfigError(f"model config key 'cross-ae-attn-depth' must be at least 1; got {depth}.")
        self.rounds_mode, self.residual_mode = rounds, residual
        self.rounds = nn.ModuleList(
            AppearanceEdgeRound(
                fine_dim=fine_dim,
                coarse_dim=coarse_dim,
                heads=heads,
                dim_head=dim_head,
                dropout=dropout,
                fine=fine,
                coarse=coarse,
            )
            for _ in range(depth)
        )

    @property
    def used_rounds(self) -> list[AppearanceEdgeRound]:
        return list(self.rounds) if self.rounds_mode == "sequential" else [self.rounds[-1]]

    def forward(self, fine: torch.Tensor, coarse: torch.Tensor, edge: torch.Tensor) -> torch.Tensor:
        edge_cls, edge_patches = edge[:, :1], edge[:, 1:]
        fine_patches = fine[:, 1:] if fine is not None else None
        coarse_patches = coarse[:, 1:] if coarse is not None else None
        residual_weight = 2.0 if self.residual_mode == "double" else 1.0
        for round_ in self.used_rounds:
            edge_cls = round_(edge_cls, fine_patches, coarse_patches) + residual_weight * edge_cls
        return torch.cat((edge_cls, edge_patches), dim=1)


class TokenEmbedder(nn.Module):
    """Feature map (B, C, H, W) -> [CLS; patch tokens] + learned positions, with embedding dropout."""

    def __init__(self, *, channels: int, patch_size: int, grid_size: int, dim: int, dropout: float = 0.0):
        super().__init__()
        num_patches = (grid_size // patch_size) ** 2
        self.patch_size = patch_size
        self.to_patches = Rearrange("b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=patch_size, p2=patch_size)
        self.patch_to_token = nn.Linear(channels * patch_size**2, dim)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.pos_embedding = nn.Parameter(torch.randn(1, num_patches + 1, dim))
        self.dropout = nn.Dropout(dropout)

    @property
    def num_patches(self) -> int:
        return self.pos_embedding.shape[1] - 1

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        tokens = self.patch_to_token(self.to_patches(features))
        cls = self.cls_token.expand(tokens.shape[0], -1, -1).to(tokens.dtype)
        return self.dropout(torch.cat((cls, tokens), dim=1) + self.pos_embedding)


class AppearanceStream(nn.Module):
    def __init__(self, *, backbone: nn.Module, embedder: TokenEmbedder):
        super().__init__()
        self.backbone = backbone
        self.embedder = embedder

    def forward(self, appearance: torch.Tensor) -> torch.Tensor:
        return self.embedder(self.backbone(appearance))


def edge_cnn(out_channels: int) -> nn.Sequential:
    """Six 3x3 conv + BN + ReLU layers with two 2x2 max-pools: (B, 1, H, W) -> (B, out_channels, H/4, W/4)."""

    def conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, kernel_size=3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    return nn.Sequential(
        *conv_bn_relu(1, 32),
        *conv_bn_relu(32, 32),
        *conv_bn_relu(32, 32),
        nn.MaxPool2d(2),
        *conv_bn_relu(32, 64),
        *conv_bn_relu(64, 64),
        *conv_bn_relu(64, out_channels),
        nn.MaxPool2d(2),
    )


EDGE_CNN_REDUCTION = 4


class EdgeStream(nn.Module):
    def __init__(self, *, cnn: nn.Sequential, embedder: TokenEmbedder):
        super().__init__()
        self.cnn = cnn
        self.embedder = embedder

    def forward(self, edge_map: torch.Tensor) -> torch.Tensor:
        return self.embedder(self.cnn(edge_map.to(self.cnn[0].weight.dtype)))


class CAELBlock(nn.Module):
    """One of CAEL's ``depth`` blocks: three encoders, multi-grained cross-attention, then AECA.

    A part switched off by an ablation is None, and so is the token sequence of a stream that is off.
    """

    def __init__(self, *, fine_encoder, coarse_encoder, edge_encoder, cross_attention, aeca):
        super().__init__()
        self.fine_encoder = fine_encoder
        self.coarse_encoder = coarse_encoder
        self.edge_encoder = edge_encoder
        self.cross_attention = cross_attention
        self.aeca = aeca

    def forward(self, fine, coarse, edge):
        fine = self.fine_encoder(fine) if fine is not None else None
        coarse = self.coarse_encoder(coarse) if coarse is not None else None
        edge = self.edge_encoder(edge) if edge is not None else None
        if self.cross_attention is not None:
            fine, coarse = self.cross_attention(fine, coarse)
        if self.aeca is not None:
            edge = self.aeca(fine, coarse, edge)
        return fine, coarse, edge


class ClassifierHead(nn.Module):
    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.norm(x))


# Every key a CAEL model config may hold, with its default where the released CAEL.yaml gives none.
# Keys without a default (None) are required.
CAEL_CONFIG_DEFAULTS: dict[str, Any] = {
    "name": "cael",
    # released hyper-parameters (keys verbatim from the released CAEL.yaml)
    "image-size": None,
    "num-classes": None,
    "level2-num-classes": 3,
    "level3-num-classes": 5,
    "depth": None,
    "fg-dim": None,
    "fg-patch-size": None,
    "fg-enc-depth": None,
    "fg-enc-dim-head": None,
    "fg-enc-heads": None,
    "fg-enc-mlp-dim": None,
    "cg-dim": None,
    "cg-patch-size": None,
    "cg-enc-depth": None,
    "cg-enc-dim-head": None,
    "cg-enc-heads": None,
    "cg-enc-mlp-dim": None,
    "cross-attn-depth": None,
    "cross-ae-attn-depth": None,
    "cross-attn-dim-head": None,
    "cross-attn-heads": None,
    "cg-channels": None,
    "fg-channels": None,
    "dropout": None,
    "emb-dropout": None,
    # project switches
    "backbone": "tf_efficientnet_b0.aa_in1k",
    "pretrained": False,
    "pretrained-file": None,
    "drop-path-rate": 0.2,
    "bn-momentum": 0.01,
    "input-channel-order": "rgb",
    "appearance-channel-order": "rgb",
    "appearance-normalization": "imagenet",
    "transpose-appearance": False,
    "aeca-rounds": "sequential",
    "aeca-residual": "single",
    "fine-grained-heads": False,
    # ablation switches (docs/baselines.md); the defaults are CAEL itself
    "streams": ["fine", "coarse", "edge"],
    "cross-attention": True,
    "aeca-fusion": "attention",
    "edge-operator": "sobel",
}


def resolve_cael_config(config: dict[str, Any]) -> dict[str, Any]:
    """Fill defaults; one clear error for an unknown or a missing key."""
    unknown = sorted(set(config) - set(CAEL_CONFIG_DEFAULTS))
    if unknown:
        raise UnknownKeyError(f"unknown CAEL model config key(s): {with_suggestions(unknown, CAEL_CONFIG_DEFAULTS)}.")
    resolved = {**CAEL_CONFIG_DEFAULTS, **config}
    missing = [k for k, v in resolved.items() if v is None and k != "pretrained-file"]
    if missing:
        raise UnknownKeyError(f"CAEL model config lacks required key(s): {', '.join(missing)}.")
    _check_ablation_switches(resolved)
    return resolved


def _check_ablation_switches(config: dict[str, Any]) -> None:
    """Switch combinations that cannot be built get one sentence saying which key to change."""
    streams = config["streams"]
    if isinstance(streams, str) or not streams or set(streams) - set(STREAMS) or len(set(streams)) != len(streams):
        raise ConfigError(
            f"model config key 'streams' must list some of {', '.join(STREAMS)} once each; got {streams!r}."
        )
    appearance = [name for name in ("fine", "coarse") if name in streams]
    if config["cross-attention"] and len(appearance) < 2:
        raise ConfigError(
            "model config key 'cross-attention' is true but 'streams' lacks an appearance stream to exchange with: "
            "set model.cross-attention: false."
        )
    fusion = config["aeca-fusion"]
    if fusion not in AECA_FUSIONS:
        raise ConfigError(f"model config key 'aeca-fusion' must be one of {', '.join(AECA_FUSIONS)}; got {fusion!r}.")
    if fusion != "none" and ("edge" not in streams or not appearance):
        raise ConfigError(
            f"model config key 'aeca-fusion' is {fusion!r} but 'streams' lacks the edge stream or every appearance "
            "stream: set model.aeca-fusion: none."
        )


def _grid(image_size: int, reduction: int, patch_size: int, what: str, key: str) -> int:
    if image_size % reduction:
        raise ConfigError(
            f"model config key 'image-size' ({image_size}) must be a multiple of {reduction} for the {what}."
        )
    grid = image_size // reduction
    if patch_size < 1 or grid % patch_size:
        divisors = [d for d in range(1, grid + 1) if grid % d == 0]
        raise ConfigError(
            f"model config key '{key}' ({patch_size}) must divide the {what}'s {grid}x{grid} feature map: "
            f"choose one of {divisors}."
        )
    return grid


def _check_backbone_channels(cfg: dict[str, Any], fine_backbone: nn.Module, coarse_backbone: nn.Module) -> None:
    for key, backbone in (("fg-channels", fine_backbone), ("cg-channels", coarse_backbone)):
        if cfg[key] != backbone.num_features:
            raise ConfigError(
                f"model config key '{key}' is {cfg[key]} but the {cfg['backbone']} stream gives "
                f"{backbone.num_features} channels: set it to {backbone.num_features}."
            )


def _build_streams(cfg: dict[str, Any], fine_backbone: nn.Module, coarse_backbone: nn.Module):
    """(fine appearance, coarse appearance, edge) streams, each a CNN and its token embedder, all three built."""
    image_size = cfg["image-size"]
    fine_grid = _grid(image_size, fine_backbone.reduction, cfg["fg-patch-size"], "fine stream", "fg-patch-size")
    coarse_grid = _grid(image_size, coarse_backbone.reduction, cfg["cg-patch-size"], "coarse stream", "cg-patch-size")
    edge_grid = _grid(image_size, EDGE_CNN_REDUCTION, cfg["cg-patch-size"], "edge stream", "cg-patch-size")
    appearance_fine = AppearanceStream(
        backbone=fine_backbone, embedder=_embedder(cfg, "fg-channels", "fg-patch-size", fine_grid, cfg["fg-dim"])
    )
    appearance_coarse = AppearanceStream(
        backbone=coarse_backbone, embedder=_embedder(cfg, "cg-channels", "cg-patch-size", coarse_grid, cfg["cg-dim"])
    )
    edge_stream = EdgeStream(
        cnn=edge_cnn(cfg["cg-channels"]),
        embedder=_embedder(cfg, "cg-channels", "cg-patch-size", edge_grid, cfg["cg-dim"]),
    )
    return appearance_fine, appearance_coarse, edge_stream


def _embedder(cfg: dict[str, Any], channels_key: str, patch_key: str, grid: int, dim: int) -> TokenEmbedder:
    return TokenEmbedder(
        channels=cfg[channels_key], patch_size=cfg[patch_key], grid_size=grid, dim=dim, dropout=cfg["emb-dropout"]
    )


def _encoder(cfg: dict[str, Any], prefix: str, dim: int) -> Transformer:
    return Transformer(
        dim=dim,
        depth=cfg[f"{prefix}-enc-depth"],
        heads=cfg[f"{prefix}-enc-heads"],
        dim_head=cfg[f"{prefix}-enc-dim-head"],
        mlp_dim=cfg[f"{prefix}-enc-mlp-dim"],
        dropout=cfg["dropout"],
    )


def _build_block(cfg: dict[str, Any], streams: set[str]) -> CAELBlock:
    """One CAEL block: every part built (the same initialisation for a seed), those the switches drop left out."""
    fine_dim, coarse_dim = cfg["fg-dim"], cfg["cg-dim"]
    cross = dict(heads=cfg["cross-attn-heads"], dim_head=cfg["cross-attn-dim-head"], dropout=cfg["dropout"])
    fine_encoder, coarse_encoder = _encoder(cfg, "fg", fine_dim), _encoder(cfg, "cg", coarse_dim)
    edge_encoder = _encoder(cfg, "cg", coarse_dim)  # the edge encoder uses the coarse settings, as released
    cross_attention = MultiGrainedCrossAttention(
        fine_dim=fine_dim, coarse_dim=coarse_dim, depth=cfg["cross-attn-depth"], **cross
    )
    aeca = AppearanceEdgeCrossAttention(
        fine_dim=fine_dim,
        coarse_dim=coarse_dim,
        depth=cfg["cross-ae-attn-depth"],
        rounds=cfg["aeca-rounds"],
        residual=cfg["aeca-residual"],
        fine="fine" in streams,
        coarse="coarse" in streams,
        **cross,
    )
    return CAELBlock(
        fine_encoder=fine_encoder if "fine" in streams else None,
        coarse_encoder=coarse_encoder if "coarse" in streams else None,
        edge_encoder=edge_encoder if "edge" in streams else None,
        cross_attention=cross_attention if cfg["cross-attention"] else None,
        aeca=aeca if cfg["aeca-fusion"] == "attention" else None,
    )


@register_model("cael")
class CAEL(nn.Module):
    """CAEL detector. ``model(images)`` takes (B, 3, H, W) RGB images in 0..255 (uint8 or float) on any device.

    Returns the summed logits (B, num-classes), or a dict with ``logits``, ``level2_logits`` and
    ``level3_logits`` when ``fine-grained-heads`` is on.
    """

    config_defaults = CAEL_CONFIG_DEFAULTS
    # the released hyper-parameters have no default to judge their type by
    config_types = {
        key: (float,) if key in ("dropout", "emb-dropout") else (int,)
        for key, value in CAEL_CONFIG_DEFAULTS.items()
        if value is None and key != "pretrained-file"
    }

    def __init__(self, config: dict[str, Any]):
        super().__init__()
        cfg = resolve_cael_config(config)
        self.config = cfg
        self.preprocess = InputAdapter(
            input_channel_order=cfg["input-channel-order"],
            appearance_channel_order=cfg["appearance-channel-order"],
            appearance_normalization=cfg["appearance-normalization"],
            transpose_appearance=cfg["transpose-appearance"],
            edge_operator=cfg["edge-operator"],
        )
        fine_backbone, coarse_backbone = build_backbones(
            cfg["backbone"],
            pretrained=cfg["pretrained"],
            pretrained_file=cfg["pretrained-file"],
            drop_path_rate=cfg["drop-path-rate"],
            bn_momentum=cfg["bn-momentum"],
        )
        _check_backbone_channels(cfg, fine_backbone, coarse_backbone)
        streams = set(cfg["streams"])
        self.streams = tuple(name for name in STREAMS if name in streams)
        # Every part is built in the same order whatever the switches, so that a given seed initialises the parts
        # an ablation keeps exactly as in CAEL; the parts it drops are then left out.
        appearance_fine, appearance_coarse, edge_stream = _build_streams(cfg, fine_backbone, coarse_backbone)
        self.appearance_fine = appearance_fine if "fine" in streams else None
        self.appearance_coarse = appearance_coarse if "coarse" in streams else None
        self.edge_stream = edge_stream if "edge" in streams else None
        self.blocks = nn.ModuleList(_build_block(cfg, streams) for _ in range(cfg["depth"]))
        self._add_heads(cfg, streams)

    def _add_heads(self, cfg: dict[str, Any], streams: set[str]) -> None:
        """The real/fake head of each stream, the optional attribution heads and the "concat" ablation's fusion."""
        fine_dim, coarse_dim, num_classes = cfg["fg-dim"], cfg["cg-dim"], cfg["num-classes"]
        stream_dims = {"fine": fine_dim, "coarse": coarse_dim, "edge": coarse_dim}
        heads = {name: ClassifierHead(dim, num_classes) for name, dim in stream_dims.items()}
        self.head_fine = heads["fine"] if "fine" in streams else None
        self.head_coarse = heads["coarse"] if "coarse" in streams else None
        self.head_edge = heads["edge"] if "edge" in streams else None
        joint_dim = sum(stream_dims[name] for name in self.streams)
        self.fine_grained_heads = bool(cfg["fine-grained-heads"])
        if self.fine_grained_heads:
            # Project's choice: the attribution heads read the three CLS tokens side by side.
            self.head_level2 = ClassifierHead(joint_dim, cfg["level2-num-classes"])
            self.head_level3 = ClassifierHead(joint_dim, cfg["level3-num-classes"])
        # Ablation "concat": after the last block, one linear layer over the concatenated CLS tokens is added to the
        # edge CLS token, in place of AECA's attention inside every block.
        self.edge_fusion = nn.Linear(joint_dim, coarse_dim) if cfg["aeca-fusion"] == "concat" else None

    @property
    def image_size(self) -> int:
        return self.config["image-size"]

    @property
    def num_classes(self) -> int:
        return self.config["num-classes"]

    @property
    def has_unused_parameters(self) -> bool:
        """True when some parameters get no gradient (released AECA rounds): DDP then needs find_unused_parameters."""
        aeca_on = self.config["aeca-fusion"] == "attention"
        return aeca_on and self.config["aeca-rounds"] == "last" and self.config["cross-ae-attn-depth"] > 1

    def forward_features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Images -> the fine, coarse and edge token sequences after the last block."""
        appearance, edge_map = self.preprocess(images)  # also checks the (B, 3, H, W) layout and dtype
        size = self.image_size
        if images.shape[-2:] != (size, size):
            raise ConfigError(
                f"this CAEL was built for {size}x{size} images (model config 'image-size'); "
                f"got {images.shape[-2]}x{images.shape[-1]}: resize the input or rebuild the model."
            )
        fine = self.appearance_fine(appearance) if self.appearance_fine is not None else None
        coarse = self.appearance_coarse(appearance) if self.appearance_coarse is not None else None
        edge = self.edge_stream(edge_map) if self.edge_stream is not None else None
        for block in self.blocks:
            fine, coarse, edge = block(fine, coarse, edge)
        return fine, coarse, edge

    def forward_head(self, fine: torch.Tensor | None, coarse: torch.Tensor | None, edge: torch.Tensor | None):
        tokens = {"fine": fine, "coarse": coarse, "edge": edge}
        cls = [tokens[name][:, 0] for name in self.streams]
        joint = torch.cat(cls, dim=-1) if self.fine_grained_heads or self.edge_fusion is not None else None
        if self.edge_fusion is not None:
            cls[-1] = cls[-1] + self.edge_fusion(joint)  # the edge CLS token is the last of self.streams
        heads = [getattr(self, f"head_{name}") for name in self.streams]
        logits = heads[0](cls[0])
        for head, token in zip(heads[1:], cls[1:]):
            logits = logits + head(token)
        if not self.fine_grained_heads:
            return logits
        return {"logits": logits, "level2_logits": self.head_level2(joint), "level3_logits": self.head_level3(joint)}

    def forward(self, images: torch.Tensor):
        return self.forward_head(*self.forward_features(images))
