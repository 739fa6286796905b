"""An independent, functional re-statement of the released CAEL forward (fp32, eval mode), for tests only.

Written from shared/reference/released_cael.md: it reads weights by their *released* key names, takes the
released input convention (cv2-style BGR (B, H, W, 3) float batches), computes the edge map with NumPy/SciPy
per image, and runs the backbone with EfficientNet-PyTorch (the package the released code used). It shares no
code with ``model/``, so agreement checks our key mapping and every quirk.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

CONFIG = {  # the released CAEL.yaml
    "depth": 4,
    "fg-patch-size": 7,
    "cg-patch-size": 56,
    "fg-enc-depth": 2,
    "cg-enc-depth": 3,
    "fg-enc-heads": 8,
    "cg-enc-heads": 8,
    "cross-attn-heads": 8,
    "cross-attn-depth": 2,
    "cross-ae-attn-depth": 2,
}


def edge_maps(bgr: np.ndarray) -> np.ndarray:
    """(B, H, W, 3) BGR 0..255 -> (B, 1, H, W): |Sobel| of the BGR2GRAY image / 255, reflect-101 border."""
    maps = []
    for image in bgr.astype(np.float64):
        grey = 0.114 * image[..., 0] + 0.587 * image[..., 1] + 0.299 * image[..., 2]
        gx = ndimage.sobel(grey, axis=1, mode="mirror")
        gy = ndimage.sobel(grey, axis=0, mode="mirror")
        maps.append(np.sqrt(gx**2 + gy**2) / 255.0)
    return np.stack(maps)[:, None].astype(np.float32)


def _sub(sd, prefix):
    return {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}


def _efficientnet(sd, prefix):
    from efficientnet_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-b0", image_size=224)
    net.load_state_dict(_sub(sd, prefix), strict=True)
    return net.eval()


def _layer_norm(sd, prefix, x):
    w = sd[prefix + "weight"]
    return F.layer_norm(x, (w.shape[0],), w, sd[prefix + "bias"])


def _linear(sd, prefix, x, bias=True):
    return F.linear(x, sd[prefix + "weight"], sd[prefix + "bias"] if bias else None)


def _attention(sd, prefix, x, context, heads):
    q = F.linear(x, sd[prefix + "to_q.weight"])
    k, v = F.linear(context, sd[prefix + "to_kv.weight"]).chunk(2, dim=-1)
    b, n, inner = q.shape
    d = inner // heads
    q, k, v = (t.reshape(b, t.shape[1], heads, d).permute(0, 2, 1, 3) for t in (q, k, v))
    weights = torch.softmax(q @ k.transpose(-1, -2) * d**-0.5, dim=-1)
    out = (weights @ v).permute(0, 2, 1, 3).reshape(b, n, inner)
    return _linear(sd, prefix + "to_out.0.", out)


def _transformer(sd, prefix, x, depth, heads):
    for j in range(depth):
        p = f"{prefix}layers.{j}."
        h = _layer_norm(sd, p + "0.norm.", x)
        x = _attention(sd, p + "0.fn.", h, h, heads) + x
        h = _layer_norm(sd, p + "1.norm.", x)
        h = _linear(sd, p + "1.fn.net.3.", F.gelu(_linear(sd, p + "1.fn.net.0.", h)))
        x = h + x
    return _layer_norm(sd, prefix + "norm.", x)


def _cls_attend(sd, prefix, cls, patches, heads):
    """ProjectInOut(PreNorm(Attention)) with the CLS token included among keys/values."""
    x = _linear(sd, prefix + "project_in.", cls) if prefix + "project_in.weight" in sd else cls
    x = _layer_norm(sd, prefix + "fn.norm.", x)
    x = _attention(sd, prefix + "fn.fn.", x, torch.cat((x, patches), dim=1), heads)
    return _linear(sd, prefix + "project_out.", x) if prefix + "project_out.weight" in sd else x


def _tokens(sd, prefix, features, patch):
    b, c, h, w = features.shape
    x = features.reshape(b, c, h // patch, patch, w // patch, patch).permute(0, 2, 4, 3, 5, 1)
    x = _linear(sd, prefix + "to_patch_embedding.1.", x.reshape(b, (h // patch) * (w // patch), patch * patch * c))
    x = torch.cat((sd[prefix + "cls_token"].expand(b, -1, -1), x), dim=1)
    return x + sd[prefix + "pos_embedding"][:, : x.shape[1]]


def _edge_cnn(sd, x):
    for conv in (0, 3, 6, 10, 13, 16):
        x = F.conv2d(
            x, sd[f"edge_embedder.features.{conv}.weight"], sd[f"edge_embedder.features.{conv}.bias"], padding=1
        )
        bn = f"edge_embedder.features.{conv + 1}."
        x = F.relu(F.batch_norm(x, sd[bn + "running_mean"], sd[bn + "running_var"], sd[bn + "weight"], sd[bn + "bias"]))
        if conv in (6, 16):
            x = F.max_pool2d(x, 2)
    return x


@torch.no_grad()
def released_forward(sd: dict[str, torch.Tensor], bgr_hwc: np.ndarray, config=CONFIG) -> torch.Tensor:
    """Logits of the released CAEL for cv2-style BGR (B, H, W, 3) 0..255 images."""
    appearance = torch.from_numpy(bgr_hwc.astype(np.float32) / 255.0).permute(0, 3, 2, 1).contiguous()
    fine_net = _efficientnet(sd, "fg_image_embedder.efficient_net.")
    coarse_net = _efficientnet(sd, "cg_image_embedder.efficient_net.")
    fine_map = fine_net.extract_features(appearance)
    x = coarse_net._swish(coarse_net._bn0(coarse_net._conv_stem(appearance)))
    for block in coarse_net._blocks[:3]:
        x = block(x)
    coarse_map = x
    edge_map = _edge_cnn(sd, torch.from_numpy(edge_maps(bgr_hwc)))

    fine = _tokens(sd, "fg_image_embedder.", fine_map, config["fg-patch-size"])
    coarse = _tokens(sd, "cg_image_embedder.", coarse_map, config["cg-patch-size"])
    edge = _tokens(sd, "edge_embedder.", edge_map, config["cg-patch-size"])
    for i in range(config["depth"]):
        p = f"multi_grained_appea_edge_transformer.layers.{i}."
        fine = _transformer(sd, p + "0.", fine, config["fg-enc-depth"], config["fg-enc-heads"])
        coarse = _transformer(sd, p + "1.", coarse, config["cg-enc-depth"], config["cg-enc-heads"])
        edge = _transformer(sd, p + "2.", edge, config["cg-enc-depth"], config["cg-enc-heads"])
        heads = config["cross-attn-heads"]
        fine_cls, coarse_cls = fine[:, :1], coarse[:, :1]
        for k in range(config["cross-attn-depth"]):
            fine_cls = _cls_attend(sd, f"{p}3.layers.{k}.0.", fine_cls, coarse[:, 1:], heads) + fine_cls
            coarse_cls = _cls_attend(sd, f"{p}3.layers.{k}.1.", coarse_cls, fine[:, 1:], heads) + coarse_cls
        fine = torch.cat((fine_cls, fine[:, 1:]), dim=1)
        coarse = torch.cat((coarse_cls, coarse[:, 1:]), dim=1)
        edge_cls = edge[:, :1]
        for k in range(config["cross-ae-attn-depth"]):  # every round restarts from edge_cls; the last one wins
            from_fine = _cls_attend(sd, f"{p}4.layers.{k}.0.", edge_cls, fine[:, 1:], heads) + edge_cls
            from_coarse = _cls_attend(sd, f"{p}4.layers.{k}.1.", edge_cls, coarse[:, 1:], heads) + edge_cls
        edge = torch.cat((from_fine + from_coarse, edge[:, 1:]), dim=1)

    def head(name, cls):
        return _linear(sd, f"{name}.1.", _layer_norm(sd, f"{name}.0.", cls))

    return head("fg_mlp_head", fine[:, 0]) + head("cg_mlp_head", coarse[:, 0]) + head("edge_mlp_head", edge[:, 0])


def random_released_state_dict(tsv_path, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights with the released keys and shapes, scaled so activations stay O(1)."""
    generator = torch.Generator().manual_seed(seed)
    sd = {}
    for line in open(tsv_path).read().splitlines()[1:]:
        key, shape_text = line.split("\t")
        shape = () if shape_text == "scalar" else tuple(int(s) for s in shape_text.split("x"))
        name = key.rsplit(".", 1)[-1]
        if name == "num_batches_tracked":
            value = torch.tensor(0)
        elif name == "running_var":
            value = 0.5 + torch.rand(shape, generator=generator)
        elif name == "running_mean" or name == "bias":
            value = 0.1 * torch.randn(shape, generator=generator)
        elif name == "weight" and len(shape) == 1:  # BN / LayerNorm scale
            value = 1.0 + 0.1 * torch.randn(shape, generator=generator)
        elif name == "weight":
            fan_in = int(np.prod(shape[1:]))
            value = torch.randn(shape, generator=generator) / np.sqrt(fan_in)
        else:  # cls tokens, positional embeddings
            value = torch.randn(shape, generator=generator)
        sd[key] = value
    return sd
