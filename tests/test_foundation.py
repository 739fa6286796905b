"""The foundation-model detectors (clip_ln, dinov2_ln, clip_lora, effort) against their references' code: what trains,
what stays frozen (out of the optimiser, in eval mode), the head and feature, Effort's SVD split and losses, GenD's
feature-space losses, layer-wise learning-rate decay, and the bundled configs; tiny random ViTs, offline."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import CLIPVisionConfig, CLIPVisionModel

from common.errors import ConfigError, UserError
from data.protocols import resolve
from data.schema import load_table
from engine.config import DEFAULTS, load_config
from engine.training.optim import build_optimizer, vit_layer_id
from loss_folder import build_loss
from model import build_model
from model.baselines.base import ModelConfigError
from model.baselines.effort import SVDResidualLinear, decompose_attention
from model.summary import summarize

TINY_VIT = {
    "image-size": 32,
    "backbone-image-size": 32,
    "patch-size": 8,
    "vision-width": 32,
    "vision-layers": 2,
    "vision-heads": 2,
    "vision-mlp-dim": 64,
}
FOUNDATION = ("clip_ln", "dinov2_ln", "clip_lora", "effort")
W, L = TINY_VIT["vision-width"], TINY_VIT["vision-layers"]
HEAD = {"head.weight", "head.bias"}


def tiny(name: str, **keys):
    torch.manual_seed(0)
    return build_model({"name": name, **TINY_VIT, **keys})


def images(count: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def trainable(model) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


# ------------------------------------------------------------------------------------- what trains, per reference
def test_clip_ln_trains_genD_layer_norms_and_head():
    """GenD's unfreeze_layers for CLIP: pre_layrnorm, layer_norm1, layer_norm2, post_layernorm (+ its head)."""
    model = tiny("clip_ln")
    expected = {"encoder.pre_layrnorm.weight", "encoder.pre_layrnorm.bias"}
    expected |= {"encoder.post_layernorm.weight", "encoder.post_layernorm.bias"}
    expected |= {
        f"encoder.encoder.layers.{i}.layer_norm{n}.{p}" for i in range(L) for n in (1, 2) for p in ("weight", "bias")
    }
    assert trainable(model) == expected | HEAD
    count = 2 * W * (2 * L + 2) + (W + 1) * 2  # ViT-L/14: 102,400 + 2,050 = 104,450
    summary = summarize(model, 32)
    assert summary["trainable_parameters"] == summary["parameters_with_gradient"] == count


def test_dinov2_ln_trains_its_norms_not_its_layer_scales():
    model = tiny("dinov2_ln")
    names = trainable(model) - HEAD
    assert names == {
        *{f"encoder.encoder.layer.{i}.norm{n}.{p}" for i in range(L) for n in (1, 2) for p in ("weight", "bias")},
        "encoder.layernorm.weight",
        "encoder.layernorm.bias",
    }
    assert not any("layer_scale" in n for n in names)
    assert summarize(model, 32)["parameters_with_gradient"] == 2 * W * (2 * L + 1) + (W + 1) * 2


def test_clip_lora_trains_rank_r_updates_of_the_attention_projections():
    model = tiny("clip_lora", **{"lora-rank": 2})
    names = trainable(model) - HEAD
    assert {n.split(".")[5] for n in names} == {"q_proj", "k_proj", "v_proj", "out_proj"}
    assert all(".lora_A.default." in n or ".lora_B.default." in n for n in names)
    assert summarize(model, 32)["parameters_with_gradient"] == L * 4 * 2 * (2 * W) + (W + 1) * 2
    # LoRA's B starts at zero: the adapted encoder starts as the plain one
    plain = tiny("clip_ln").eval()
    torch.manual_seed(0)
    adapted = build_model({"name": "clip_lora", **TINY_VIT}).eval()
    adapted.head.load_state_dict(plain.head.state_dict())
    px = plain.preprocess(images())
    torch.testing.assert_close(adapted.forward_features(px), plain.forward_features(px), rtol=1e-5, atol=1e-5)
    with pytest.raises(ModelConfigError, match="'lora-targets' of clip_lora must list some of q_proj"):
        tiny("clip_lora", **{"lora-targets": ["fc1"]})
    only_out = tiny("clip_lora", **{"lora-targets": ["out_proj"]})  # GenD's default target
    assert {n.split(".")[5] for n in trainable(only_out) - HEAD} == {"out_proj"}


def test_effort_trains_the_last_singular_direction_of_each_attention_projection():
    model = tiny("effort")
    names = trainable(model) - HEAD
    assert len(model.decomposed) == 4 * L and {n.rsplit(".", 1)[1] for n in names} == {
        "u_residual",
        "s_residual",
        "v_residual",
    }
    assert {n.split(".")[5] for n in names} == {"q_proj", "k_proj", "v_proj", "out_proj"}
    per_projection = W + 1 + W  # U_res (W x 1), S_res (1), V_res (1 x W); ViT-L/14: 2,049
    assert summarize(model, 32)["parameters_with_gradient"] == 4 * L * per_projection + (W + 1) * 2  # ViT-L: 198,754


def test_effort_split_reproduces_the_weights_it_starts_from():
    torch.manual_seed(0)
    encoder = CLIPVisionModel(
        CLIPVisionConfig(
            hidden_size=W, num_hidden_layers=L, num_attention_heads=2, intermediate_size=64, patch_size=8, image_size=32
        )
    )
    pixels = torch.randn(2, 3, 32, 32)
    before = encoder(pixel_values=pixels).pooler_output
    decompose_attention(encoder, residual_rank=3)
    torch.testing.assert_close(encoder(pixel_values=pixels).pooler_output, before, rtol=1e-4, atol=1e-4)
    layer = encoder.encoder.layers[0].self_attn.q_proj
    assert (
        isinstance(layer, SVDResidualLinear) and layer.u_residual.shape == (W, 3) and layer.v_residual.shape == (3, W)
    )
    singular = torch.linalg.svdvals(layer.weight_main)
    assert (singular[-3:] < 1e-4).all() and (singular[:-3] > 1e-3).all()  # the residual's directions were taken out


def reference_orthogonal_loss(u_r, u_res, v_r, v_res):
    """Effort's compute_orthogonal_loss with the frozen U_r, V_r kept (as its code keeps them)."""
    u = torch.cat((u_r, u_res), dim=1)
    v = torch.cat((v_r, v_res), dim=0)
    eye_u, eye_v = torch.eye(u.shape[0]), torch.eye(v.shape[0])
    return 0.5 * torch.norm(u @ u.T - eye_u, p="fro") + 0.5 * torch.norm(v @ v.T - eye_v, p="fro")


def test_effort_orthogonality_and_norm_losses_equal_the_paper_formulas():
    torch.manual_seed(0)
    linear = torch.nn.Linear(16, 16)
    layer = SVDResidualLinear(linear, residual_rank=2)
    u, s, vh = torch.linalg.svd(linear.weight.detach(), full_matrices=False)
    assert layer.keep_norm_loss().item() < 1e-3 and layer.orthogonal_loss().item() < 1e-3  # at the start
    with torch.no_grad():
        layer.u_residual.add_(0.1 * torch.randn_like(layer.u_residual))
        layer.v_residual.add_(0.1 * torch.randn_like(layer.v_residual))
        layer.s_residual.mul_(1.5)
    reference = reference_orthogonal_loss(u[:, :14], layer.u_residual, vh[:14], layer.v_residual)
    torch.testing.assert_close(layer.orthogonal_loss(), reference, rtol=1e-4, atol=1e-5)
    weight = (u[:, :14] * s[:14]) @ vh[:14] + (layer.u_residual * layer.s_residual) @ layer.v_residual
    expected = (weight.square().sum() - linear.weight.square().sum()).abs()
    torch.testing.assert_close(layer.keep_norm_loss(), expected, rtol=1e-4, atol=1e-4)
    layer.orthogonal_loss().backward()
    assert torch.isfinite(layer.u_residual.grad).all() and layer.u_residual.grad.abs().sum() > 0


def test_effort_regularizer_is_off_as_in_its_code_and_adds_to_the_loss_when_asked():
    x, labels = images(), torch.tensor([0, 1, 0, 1])
    assert "regularizer" not in tiny("effort").train()(x)  # the public code: cross-entropy only
    model = tiny("effort", **{"regularizer-weight": 1.0}).train()
    with torch.no_grad():  # move the residuals off their start, so that the terms are not zero
        for layer in model.svd_layers():
            layer.u_residual.add_(0.05)
    outputs = model(x)
    expected = torch.stack([layer.orthogonal_loss() + layer.keep_norm_loss() for layer in model.svd_layers()]).mean()
    torch.testing.assert_close(outputs["regularizer"], expected)
    loss = build_loss({"name": "ce"})
    torch.testing.assert_close(loss(outputs, {"label": labels}), F.cross_entropy(outputs["logits"], labels) + expected)
    with pytest.raises(ModelConfigError, match="regularizer-weight"):
        tiny("effort", **{"regularizer-weight": -1.0})


# --------------------------------------------------------------------------------- frozen parts, head, feature
@pytest.mark.parametrize("name", FOUNDATION)
def test_frozen_parts_stay_in_eval_mode_and_out_of_the_optimiser(name):
    model = tiny(name).train()
    for module_name, module in model.named_modules():
        parameters = list(module.parameters())
        if parameters and not any(p.requires_grad for p in parameters):
            assert not module.training, module_name
        if any(p.requires_grad for p in module.parameters(recurse=False)):
            assert module.training, module_name
    assert model.training and model.head.training
    optimizer = build_optimizer(model, DEFAULTS["optim"], torch.device("cpu"))
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert in_optimizer == {id(p) for p in model.parameters() if p.requires_grad}
    model.eval()
    assert not any(module.training for module in model.modules())
    assert isinstance(model(images()), torch.Tensor)  # evaluation: the logits alone


@pytest.mark.parametrize("name", FOUNDATION)
def test_head_reads_the_pooled_feature_and_training_returns_its_l2_embedding(name):
    model = tiny(name).eval()
    x = images()
    with torch.no_grad():
        outputs = model.encoder(pixel_values=model.preprocess(x))
        feature = outputs.pooler_output
        if name == "dinov2_ln":  # DINO: the CLS token after the final norm
            torch.testing.assert_close(feature, outputs.last_hidden_state[:, 0])
        else:  # CLIP: the CLS token after post_layernorm, not the projection
            torch.testing.assert_close(feature, model.encoder.post_layernorm(outputs.last_hidden_state[:, 0]))
        head_input = F.normalize(feature, dim=-1) if model.config["l2-normalize"] else feature
        torch.testing.assert_close(model(x), model.head(head_input), rtol=1e-5, atol=1e-5)
        train_outputs = model.train()(x)
    torch.testing.assert_close(train_outputs["embeddings"], F.normalize(feature, dim=-1), rtol=1e-4, atol=1e-5)
    assert model.config["l2-normalize"] is (name in ("clip_ln", "dinov2_ln"))  # GenD's LinearNorm head


def test_clip_and_dino_normalise_as_their_processors():
    pixels = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    clip_mean, clip_std = (
        torch.tensor([0.48145466, 0.4578275, 0.40821073]),
        torch.tensor([0.26862954, 0.26130258, 0.27577711]),
    )
    imagenet_mean, imagenet_std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    for name, (mean, std) in {
        "clip_ln": (clip_mean, clip_std),
        "clip_lora": (clip_mean, clip_std),
        "effort": (clip_mean, clip_std),
        "dinov2_ln": (imagenet_mean, imagenet_std),
    }.items():
        expected = (pixels / 255.0 - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
        torch.testing.assert_close(tiny(name).preprocess(pixels), expected, rtol=1e-5, atol=1e-5)


def test_other_image_sizes_interpolate_the_position_grid():
    for name in ("clip_ln", "dinov2_ln"):
        model = tiny(name, **{"image-size": 48}).eval()
        assert model(torch.zeros(1, 3, 48, 48, dtype=torch.uint8)).shape == (1, 2)
    with pytest.raises(
        ModelConfigError, match="'image-size' \\(36\\) of clip_ln must be a multiple of its 'patch-size'"
    ):
        tiny("clip_ln", **{"image-size": 36})
    with pytest.raises(ModelConfigError, match="'family' of dinov2_ln is 'dinov9'"):
        tiny("dinov2_ln", family="dinov9")


def test_dinov2_ln_takes_dinov3_and_registers_too():
    for family in ("dinov3", "dinov2-registers"):
        model = tiny("dinov2_ln", family=family).eval()
        assert model(images(2)).shape == (2, 2) and trainable(model) - HEAD
        assert all("norm" in n for n in trainable(model) - HEAD)


# -------------------------------------------------------------------------------- GenD's feature-space losses
def test_uniformity_and_alignment_are_genD_s_terms():
    from loss_folder.losses import alignment, uniformity

    z = F.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]), dim=1)
    labels = torch.tensor([0, 0, 1, 1])
    pairs = [(i, j) for i in range(4) for j in range(i + 1, 4)]
    expected_uniformity = np.log(np.mean([np.exp(-2 * float((z[i] - z[j]).square().sum())) for i, j in pairs]))
    assert uniformity(z).item() == pytest.approx(expected_uniformity, rel=1e-6)
    same = [(0, 1), (2, 3)]
    assert alignment(z, labels).item() == pytest.approx(
        np.mean([float((z[i] - z[j]).square().sum()) for i, j in same]), rel=1e-6
    )
    assert alignment(z, torch.tensor([0, 1, 2, 3])).item() == 0.0  # no pair of one label

    logits = torch.randn(4, 2)
    loss = build_loss({"name": "ce", "uniformity-weight": 0.5, "alignment-weight": 0.1})
    total = loss({"logits": logits, "embeddings": z}, {"label": labels})
    expected = F.cross_entropy(logits, labels) + 0.5 * uniformity(z) + 0.1 * alignment(z, labels)
    torch.testing.assert_close(total, expected)
    with pytest.raises(ConfigError, match="need a detector that returns embeddings"):
        loss(logits, {"label": labels})
    with pytest.raises(ConfigError, match="uniformity-weight must be 0 or more"):
        build_loss({"name": "ce", "uniformity-weight": -1.0})


# ---------------------------------------------------------------------------------------- layer-wise lr decay
def test_layer_ids_of_clip_dino_and_timm_names():
    assert vit_layer_id("encoder.embeddings.patch_embedding.weight", "encoder.", 24) == 0
    assert vit_layer_id("encoder.pre_layrnorm.weight", "encoder.", 24) == 0
    assert vit_layer_id("encoder.encoder.layers.0.self_attn.q_proj.weight", "encoder.", 24) == 1
    assert vit_layer_id("encoder.encoder.layers.23.mlp.fc1.weight", "encoder.", 24) == 24
    assert vit_layer_id("encoder.encoder.layers.5.self_attn.q_proj.lora_A.default.weight", "encoder.", 24) == 6
    assert vit_layer_id("encoder.post_layernorm.weight", "encoder.", 24) == 25
    assert vit_layer_id("head.weight", "encoder.", 24) == 25
    assert vit_layer_id("encoder.encoder.layer.3.norm1.weight", "encoder.", 24) == 4  # DINOv2
    assert vit_layer_id("encoder.model.layer.3.norm1.weight", "encoder.", 24) == 4  # DINOv3
    assert vit_layer_id("encoder.embeddings.cls_token", "encoder.", 24) == 0
    assert vit_layer_id("network.blocks.11.attn.qkv.weight", "network.", 12) == 12  # timm
    assert vit_layer_id("network.cls_token", "network.", 12) == 0


@pytest.mark.parametrize("name", ["clip_ln", "dinov2_ln", "effort", "univfd"])
def test_layer_decay_scales_each_blocks_learning_rate(name):
    univfd = {"name": "univfd", "image-size": 32, "clip-image-size": 32, "patch-size": 8, "vision-width": 32}
    univfd.update({"vision-layers": 2, "vision-heads": 2, "vision-mlp-dim": 64, "projection-dim": 16})
    model = build_model(univfd) if name == "univfd" else tiny(name)
    if name == "univfd":
        model.encoder.requires_grad_(True)  # univfd trains its probe only: open the encoder to see its groups
    config = {**DEFAULTS["optim"], "lr": 1e-3, "layer-decay": 0.5}
    optimizer = build_optimizer(model, config, torch.device("cpu"))
    lr_of = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    for parameter_name, parameter in model.named_parameters():
        if parameter.requires_grad:
            layer = vit_layer_id(parameter_name, "encoder.", L)
            assert lr_of[id(parameter)] == pytest.approx(1e-3 * 0.5 ** (L + 1 - layer)), parameter_name
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)  # the head's group first: logs show the base rate
    assert len({group["lr"] for group in optimizer.param_groups}) >= 3
    plain = build_optimizer(model, DEFAULTS["optim"], torch.device("cpu"))  # 1.0: off, one rate
    assert {group["lr"] for group in plain.param_groups} == {DEFAULTS["optim"]["lr"]}


def test_layer_decay_is_a_config_key_refused_where_there_is_no_vit():
    config = load_config("cnndet", ["model.pretrained=false", "model.image-size=32", "optim.layer-decay=0.75"])
    assert config["optim"]["layer-decay"] == 0.75
    with pytest.raises(ConfigError, match="optim.layer-decay needs a detector with a ViT backbone"):
        build_optimizer(build_model(config["model"]), config["optim"], torch.device("cpu"))
    with pytest.raises(ConfigError, match="must lie in \\(0, 1\\]"):
        build_optimizer(tiny("clip_ln"), {**DEFAULTS["optim"], "layer-decay": 1.5}, torch.device("cpu"))


# ------------------------------------------------------------------------------------ bundled configs vs code
# Values read from each reference's code (files named in each config's header).
REFERENCES = {
    # yermandy/GenD src/exp/wacv_rebuttal.py wacv-LN+L2+UnAl over src/config.py's defaults and get_common()
    "clip_ln": {
        "model": {
            "backbone": "openai/clip-vit-large-patch14",
            "image-size": 224,
            "l2-normalize": True,
            "patch-size": 14,
        },
        "loss": {"uniformity-weight": 0.5, "alignment-weight": 0.1},
        "optim": {"lr": 3e-4, "weight-decay": 0.0},
        "train": {"batch-size": 512, "epochs": 30},
    },
    "dinov2_ln": {
        "model": {"backbone": "facebook/dinov2-large", "family": "dinov2", "image-size": 224, "l2-normalize": True},
        "loss": {"uniformity-weight": 0.5, "alignment-weight": 0.1},
        "optim": {"lr": 3e-4, "weight-decay": 0.0},
    },
    # GenD src/config.py LoRA(rank=1, alpha=32, dropout=0.05)
    "clip_lora": {
        "model": {"lora-rank": 1, "lora-alpha": 32.0, "lora-dropout": 0.05, "l2-normalize": False},
        "loss": {"uniformity-weight": 0.0, "alignment-weight": 0.0},
    },
    # YZY-stack/Effort-AIGI-Detection effort_detector.py (r = 1024 - 1, CE only) and config/detector/effort.yaml
    "effort": {
        "model": {"backbone": "openai/clip-vit-large-patch14", "image-size": 224, "svd-residual-rank": 1},
        "model-extra": {"regularizer-weight": 0.0, "l2-normalize": False},
        "optim": {"lr": 2e-4, "weight-decay": 5e-4, "no-decay": []},
        "train": {"batch-size": 32, "epochs": 10},
        "schedule": {"name": "constant"},
    },
}


@pytest.mark.parametrize("name", FOUNDATION)
def test_bundled_configs_follow_their_reference_code(name):
    config = load_config(name)
    for section, values in REFERENCES[name].items():
        for key, value in values.items():
            assert config[section.replace("-extra", "")][key] == value, (section, key)
    assert config["model"]["vision-width"] == 1024 and config["model"]["vision-layers"] == 24  # ViT-L
    assert config["model"]["pretrained"] is True


@pytest.mark.slow
@pytest.mark.parametrize("name,trained", [("clip_ln", 104_450), ("dinov2_ln", 102_402), ("clip_lora", 198_658)])
def test_full_size_trainable_counts_are_the_references(name, trained):
    """ViT-L/14 with random weights (no download): GenD's 0.03%, LoRA's rank-1 updates. Effort's 198,754 (its paper's
    0.19M) is model.summary's count (docs/baselines.md): building it runs 96 SVDs, 20 min on the loaded 2-core CPU."""
    model = build_model(load_config(name, ["model.pretrained=false"])["model"])
    total = sum(p.numel() for p in model.parameters())
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == trained
    assert 303_000_000 < total < 304_500_000  # CLIP ViT-L/14's vision tower 303.18 M, DINOv2-L 304.37 M


def test_offline_errors_are_one_sentence(tmp_path):
    with pytest.raises(UserError, match="is not a folder: give a local copy of openai/clip-vit-large-patch14"):
        build_model({"name": "clip_ln", **TINY_VIT, "pretrained": True, "pretrained-file": str(tmp_path / "x.bin")})


# ------------------------------------------------------------------- the demo: train, save, load back, same scores
QUICK = ["--set", "train.epochs=1", "--set", "train.max-steps-per-epoch=3", "--set", "train.batch-size=8"]
QUICK += ["--set", "data.workers=0", "--set", "eval.batch-size=64"]


@pytest.fixture(scope="module")
def foundation_runs(tmp_path_factory):
    """Each foundation detector trained a few steps on a small demo set with its demo recipe (tools.train_set)."""
    import tools.train_set as train_set
    from data.make_demo import make_demo

    root = tmp_path_factory.mktemp("foundation")
    csv_path = make_demo(root / "data", identities=8, fakes_per_generator=12)
    results = train_set.main([*FOUNDATION, "--demo", "--csv", str(csv_path), "--out", str(root / "runs"), *QUICK])
    return csv_path, root / "runs", results


@pytest.mark.parametrize("name", FOUNDATION)
def test_a_trained_detector_loads_back_from_its_checkpoint_with_the_same_scores(foundation_runs, name):
    """best.pt rebuilt offline (random encoder, then the saved weights: model.hub.load_detector) scores the validation
    rows exactly as training did: the same AUC as recorded, the same probabilities on a second load."""
    from sklearn.metrics import roc_auc_score

    from common.checkpoint import load_checkpoint
    from data.csv_dataset import SplitDataset
    from model.hub import load_detector

    csv_path, runs, results = foundation_runs
    best = runs / name / "best.pt"
    checkpoint = load_checkpoint(best)
    config = checkpoint["config"]
    table = load_table(csv_path)
    rows = resolve(config["data"]["protocol"], table).val
    dataset = SplitDataset(table, rows, size=config["model"]["image-size"])
    batch = torch.stack([dataset[i]["image"] for i in range(len(dataset))])

    def scores() -> np.ndarray:
        model = load_detector(best).model
        assert not model.training
        with torch.no_grad():
            return model(batch).softmax(-1)[:, 1].numpy()

    first, second = scores(), scores()
    np.testing.assert_array_equal(first, second)
    auc = roc_auc_score(table.labels[rows], first)
    assert auc == pytest.approx(checkpoint["metrics"]["val_auc"], abs=1e-9)
    assert checkpoint["metrics"]["val_auc"] == results[name]["best_value"]
