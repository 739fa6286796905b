"""Baselines and CAEL ablations: every registered detector builds offline, gives logits and learns; the edge
operators match scikit-image; the ablation switches drop exactly their parts; the configs and the cost summary."""

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_MODEL
from skimage import filters

import model.summary
from common.config import MODEL_CONFIG_DIR
from common.errors import UsageError, UserError
from data.csv_dataset import SplitDataset
from data.make_demo import make_demo
from data.schema import load_table
from engine.config import load_config
from loss_folder import logits_of
from model import build_model, list_models
from model.baselines.base import ModelConfigError
from model.preprocess import EDGE_OPERATORS, InputAdapter, PixelNormalizer, edge_magnitude
from model.pretrained import PretrainedWeightsError

TINY_CLIP = {
    "image-size": 32,
    "clip-image-size": 32,
    "patch-size": 8,
    "vision-width": 32,
    "vision-layers": 2,
    "vision-heads": 2,
    "vision-mlp-dim": 64,
    "projection-dim": 16,
}
# The foundation detectors' tiny ViT (CLIP's or DINOv2's classes, random weights).
TINY_VIT = {
    "image-size": 32,
    "backbone-image-size": 32,
    "patch-size": 8,
    "vision-width": 32,
    "vision-layers": 2,
    "vision-heads": 2,
    "vision-mlp-dim": 64,
}
# A tiny offline config of every registered detector (random weights, 32 or 64 px).
TINY = {
    "cael": {**TINY_MODEL, "image-size": 32},  # 1 fine token, 1 coarse and 1 edge token
    "cross_efficient_vit": {**TINY_MODEL, "image-size": 32, "name": "cross_efficient_vit"},
    "xception": {"name": "xception", "image-size": 32},
    "efficientnet_b4": {"name": "efficientnet_b4", "image-size": 32},
    "cnndet": {"name": "cnndet", "image-size": 32},
    "efficientnet_sobel": {"name": "efficientnet_sobel", "image-size": 32},
    "univfd": {"name": "univfd", **TINY_CLIP},
    **{name: {"name": name, **TINY_VIT} for name in ("clip_ln", "dinov2_ln", "clip_lora", "effort")},
}
ABLATION_SWITCHES = {
    "no_edge": {"streams": ["fine", "coarse"], "aeca-fusion": "none"},
    "no_aeca": {"aeca-fusion": "none"},
    "aeca_concat": {"aeca-fusion": "concat"},
    "no_cross_attention": {"cross-attention": False},
    "fine_only": {"streams": ["fine"], "cross-attention": False, "aeca-fusion": "none"},
    "coarse_only": {"streams": ["coarse"], "cross-attention": False, "aeca-fusion": "none"},
    "edge_laplacian": {"edge-operator": "laplacian"},
}


def test_every_registered_detector_has_a_tiny_test_config():
    assert sorted(TINY) == list_models()


@pytest.fixture(scope="module")
def demo_batch(tmp_path_factory):
    """8 demo images (4 real, 4 fake) at 32 px and their labels."""
    csv_path = make_demo(tmp_path_factory.mktemp("demo"), identities=8, fakes_per_generator=12)
    table = load_table(csv_path)
    rows = np.concatenate([np.flatnonzero(table.labels == label)[:4] for label in (0, 1)])
    dataset = SplitDataset(table, rows, size=32)
    images = torch.stack([dataset[i]["image"] for i in range(len(dataset))])
    return images, torch.as_tensor(table.labels[rows], dtype=torch.long)


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    if images.shape[-1] == size:
        return images
    return torch.nn.functional.interpolate(images.float(), size=(size, size), mode="area").round().to(torch.uint8)


@pytest.mark.parametrize("name", sorted(TINY))
def test_detector_builds_offline_and_takes_uint8_rgb(name, demo_batch):
    torch.manual_seed(0)
    detector = build_model(TINY[name]).eval()
    images = _resize(demo_batch[0][:3], detector.image_size)
    with torch.no_grad():
        logits = detector(images)
        assert logits.shape == (3, 2) and logits.dtype == torch.float32 and torch.isfinite(logits).all()
        torch.testing.assert_close(detector(images.float()), logits, rtol=1e-5, atol=1e-5)
        channels_last = images.contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(detector(channels_last), logits, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="built for"):
        detector(_resize(demo_batch[0][:1], detector.image_size * 2))
    with pytest.raises(ValueError, match="channels-last"):
        detector(images.permute(0, 2, 3, 1))


@pytest.mark.parametrize("name", ["xception", "efficientnet_b4", "cnndet", "efficientnet_sobel", "univfd"])
def test_a_new_head_starts_small_so_the_first_loss_is_near_log_2(name, demo_batch):
    # timm's TF EfficientNets draw a 2-way head from U(-0.71, 0.71) (scaled for 1,000 classes): logit std 6-9.
    torch.manual_seed(0)
    detector = build_model(TINY[name]).eval()
    head = detector.probe if name == "univfd" else detector.network.get_classifier()
    assert abs(head.weight.std().item() - 0.02) < 0.005 and not head.bias.any()
    with torch.no_grad():
        logits = detector(_resize(demo_batch[0], detector.image_size))
    assert logits.std().item() < 0.5, logits
    loss = torch.nn.functional.cross_entropy(logits, demo_batch[1]).item()
    assert abs(loss - np.log(2)) < 0.2, loss


# No dropout in the few-steps test: with 8 images, its noise is larger than 4 steps of learning.
NO_DROPOUT = {"dropout": 0.0, "emb-dropout": 0.0, "drop-path-rate": 0.0, "drop-rate": 0.0}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.slow) if n in ("efficientnet_b4", "xception", "efficientnet_sobel") else n
        for n in sorted(TINY)
    ],
)  # the three heavy ones run with -m slow (CI)
def test_detector_learns_the_demo_batch_in_a_few_steps(name, demo_batch):
    torch.manual_seed(0)
    config = {**TINY[name], **{k: v for k, v in NO_DROPOUT.items() if k in build_model(TINY[name]).config}}
    detector = build_model(config).train()
    if hasattr(detector, "network"):  # a fresh zero head: the first loss is log 2, so any learning shows
        head = detector.network.get_classifier()
        torch.nn.init.zeros_(head.weight), torch.nn.init.zeros_(head.bias)
    images, labels = demo_batch
    images = _resize(images, detector.image_size)
    trainable = [p for p in detector.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=3e-3 if name == "univfd" else 1e-3)
    losses = []
    for _ in range(4):
        loss = torch.nn.functional.cross_entropy(logits_of(detector(images)), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all()
    assert losses[-1] < losses[0], losses


def test_univfd_trains_only_its_probe_and_keeps_the_encoder_in_eval_mode(demo_batch):
    detector = build_model(TINY["univfd"]).train()
    assert not detector.encoder.training and detector.probe.training
    logits = detector(_resize(demo_batch[0][:2], 32))
    logits.sum().backward()
    with_gradient = {name for name, p in detector.named_parameters() if p.grad is not None}
    assert with_gradient == {"probe.weight", "probe.bias"}
    summary = model.summary.summarize(detector, 32)
    assert summary["parameters_with_gradient"] == summary["trainable_parameters"] == 16 * 2 + 2


def test_univfd_probe_norm_standardises_the_embedding_and_stays_a_linear_probe(demo_batch):
    """probe-norm: batchnorm (the demo's; MAE's linear probe): a batch norm without parameters before the probe. It
    trains nothing (only the probe gets gradients) and, at evaluation, folds into the probe: one linear map of the
    frozen embedding. The default is UnivFD's plain probe; another value is one sentence naming the key."""
    assert isinstance(build_model(TINY["univfd"]).probe_norm, torch.nn.Identity)
    detector = build_model({**TINY["univfd"], "probe-norm": "batchnorm"}).train()
    norm = detector.probe_norm
    assert isinstance(norm, torch.nn.BatchNorm1d) and not norm.affine and norm.training
    images = _resize(demo_batch[0], 32)
    detector(images).sum().backward()
    assert {name for name, p in detector.named_parameters() if p.grad is not None} == {"probe.weight", "probe.bias"}
    assert norm.num_batches_tracked == 1 and not torch.equal(norm.running_mean, torch.zeros_like(norm.running_mean))

    detector.eval()
    with torch.no_grad():
        embedding = detector.forward_features(detector.preprocess(images))
        scale = (norm.running_var + norm.eps).rsqrt()
        weight = detector.probe.weight * scale
        bias = detector.probe.bias - weight @ norm.running_mean
        torch.testing.assert_close(detector(images), embedding @ weight.T + bias, rtol=1e-5, atol=1e-5)
        standardised = (embedding - norm.running_mean) * scale
        torch.testing.assert_close(detector(images), detector.probe(standardised), rtol=1e-5, atol=1e-5)

    with pytest.raises(ModelConfigError, match="'probe-norm' of univfd is 'layernorm': choose none .* or batchnorm"):
        build_model({**TINY["univfd"], "probe-norm": "layernorm"})


@pytest.mark.parametrize("name", ["xception", "univfd", "clip_ln", "dinov2_ln", "clip_lora", "effort"])
def test_pretrained_weights_offline_fail_with_one_sentence(name):
    config = {**TINY[name], "pretrained": True}
    with pytest.raises(
        PretrainedWeightsError, match="pretrained weights of .*pretrained-file.*pretrained: false"
    ) as caught:
        build_model(config)
    assert isinstance(caught.value, UserError) and "\n" not in str(caught.value)


def test_baseline_config_errors_name_the_key():
    with pytest.raises(ModelConfigError, match=r"drop-rat \(did you mean drop-rate\?\)"):
        build_model({**TINY["xception"], "drop-rat": 0.1})
    with pytest.raises(ModelConfigError, match="image-size.*patch-size"):
        build_model({**TINY["univfd"], "image-size": 36})
    with pytest.raises(ModelConfigError, match="define cross_efficient_vit"):
        build_model({**TINY["cross_efficient_vit"], "streams": ["fine", "coarse", "edge"]})


def test_baselines_normalise_like_their_papers():
    xception = build_model(TINY["xception"])
    assert torch.allclose(xception.preprocess(torch.full((1, 3, 32, 32), 255, dtype=torch.uint8)), torch.ones(1))
    assert torch.allclose(xception.preprocess(torch.zeros(1, 3, 32, 32, dtype=torch.uint8)), -torch.ones(1))
    imagenet = PixelNormalizer((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    pixels = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    cnndet = build_model(TINY["cnndet"])
    torch.testing.assert_close(cnndet.preprocess(pixels), imagenet(pixels))
    clip = build_model(TINY["univfd"]).preprocess(pixels)
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
    torch.testing.assert_close(clip, (pixels / 255.0 - mean) / std)


# --------------------------------------------------------------------------------------------- edge operators
SKIMAGE_GRADIENTS = {"sobel": (filters.sobel, 4.0), "scharr": (filters.scharr, 16.0), "prewitt": (filters.prewitt, 3.0)}


@pytest.mark.parametrize("operator", EDGE_OPERATORS)
def test_edge_operators_match_scikit_image(operator, images):
    """skimage is the oracle: its gradient filters are ours divided by the smoothing sum and by sqrt(2) (it averages
    the squared gradients over the two axes); its Laplacian is ours up to sign. Borders: we pad reflect-101."""
    grey = (0.299 * images[:, 0:1] + 0.587 * images[:, 1:2] + 0.114 * images[:, 2:3]).double()
    ours = edge_magnitude(grey, operator)[:, 0].numpy()
    for picture, got in zip(grey[:, 0].numpy(), ours):
        padded = np.pad(picture, 1, mode="reflect")  # numpy's reflect is reflect-101
        if operator == "laplacian":
            expected = np.abs(filters.laplace(padded, ksize=3))[1:-1, 1:-1]
        else:
            oracle, smoothing_sum = SKIMAGE_GRADIENTS[operator]
            expected = oracle(padded)[1:-1, 1:-1] * smoothing_sum * np.sqrt(2.0)
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-8)
        assert expected.max() > 100  # strong edges: the comparison is not between zeros


def test_edge_operators_differ_and_sobel_stays_the_default(images):
    maps = {op: InputAdapter(edge_operator=op).edge_map(images) for op in EDGE_OPERATORS}
    torch.testing.assert_close(InputAdapter().edge_map(images), maps["sobel"], rtol=0, atol=0)
    for other in ("scharr", "prewitt", "laplacian"):
        assert not torch.allclose(maps[other], maps["sobel"])
    with pytest.raises(ValueError, match="edge-operator.*sobel, scharr, prewitt, laplacian"):
        InputAdapter(edge_operator="canny")


# ------------------------------------------------------------------------------------------------ CAEL ablations
def _parameter_names(module) -> set[str]:
    return {name for name, _ in module.named_parameters()}


@pytest.mark.parametrize(
    "ablation",
    [
        pytest.param(a, marks=pytest.mark.slow) if a not in ("no_edge", "edge_laplacian") else a
        for a in sorted(ABLATION_SWITCHES)
    ],
)  # two in the fast suite, all with -m slow
def test_ablation_keeps_cael_weights_and_drops_only_its_parts(ablation, tiny_config, images):
    torch.manual_seed(0)
    cael = build_model(tiny_config())
    torch.manual_seed(0)
    variant = build_model(tiny_config(**{k.replace("-", "_"): v for k, v in ABLATION_SWITCHES[ablation].items()}))
    cael_weights, variant_weights = cael.state_dict(), variant.state_dict()
    added = set(variant_weights) - set(cael_weights)
    assert added == ({"edge_fusion.weight", "edge_fusion.bias"} if ablation == "aeca_concat" else set())
    for name in set(variant_weights) & set(cael_weights):  # the same seed builds the kept parts identically
        torch.testing.assert_close(variant_weights[name], cael_weights[name], rtol=0, atol=0)
    dropped = {
        name.split(".")[0] if not name.startswith("blocks") else name.split(".")[2]
        for name in set(cael_weights) - set(variant_weights)
    }
    expected = {
        "no_edge": {"edge_stream", "edge_encoder", "aeca", "head_edge"},
        "no_aeca": {"aeca"},
        "aeca_concat": {"aeca"},
        "no_cross_attention": {"cross_attention"},
        "fine_only": {
            "appearance_coarse",
            "coarse_encoder",
            "edge_stream",
            "edge_encoder",
            "cross_attention",
            "aeca",
            "head_coarse",
            "head_edge",
        },
        "coarse_only": {
            "appearance_fine",
            "fine_encoder",
            "edge_stream",
            "edge_encoder",
            "cross_attention",
            "aeca",
            "head_fine",
            "head_edge",
        },
        "edge_laplacian": set(),
    }[ablation]
    assert dropped == expected
    variant.eval()
    logits = variant(images)
    assert logits.shape == (3, 2)
    logits.sum().backward()
    assert all(p.grad is not None for p in variant.parameters()), "every kept parameter is used"
    if ablation != "edge_laplacian":
        with torch.no_grad():
            assert not torch.allclose(variant(images), cael.eval()(images))


def test_cross_efficient_vit_is_cael_without_the_edge_stream(tiny_config, images):
    torch.manual_seed(0)
    parent = build_model({**tiny_config(), "name": "cross_efficient_vit"}).eval()
    torch.manual_seed(0)
    no_edge = build_model(tiny_config(**{"streams": ["fine", "coarse"], "aeca_fusion": "none"})).eval()
    with torch.no_grad():
        torch.testing.assert_close(parent(images), no_edge(images), rtol=0, atol=0)


@pytest.mark.parametrize(
    "switches, message",
    [
        ({"streams": ["fine"]}, "cross-attention: false"),
        ({"streams": ["fine", "coarse"]}, "aeca-fusion: none"),
        ({"streams": ["fine", "fine"]}, "once each"),
        ({"streams": []}, "'streams' must list"),
        ({"aeca-fusion": "sum"}, "attention, none, concat"),
    ],
)
def test_impossible_ablation_switches_name_the_key(tiny_config, switches, message):
    with pytest.raises(ValueError, match=message):
        build_model({**tiny_config(), **switches})


def test_fine_grained_heads_follow_the_kept_streams(tiny_config, images):
    variant = build_model(tiny_config(fine_grained_heads=True, streams=["fine", "coarse"], aeca_fusion="none"))
    out = variant.eval()(images)
    assert out["logits"].shape == (3, 2) and out["level3_logits"].shape == (3, 5)
    assert variant.head_level2.fc.in_features == 32 + 48


# -------------------------------------------------------------------------------------------- configs and summary
BUNDLED = sorted(path.stem for path in MODEL_CONFIG_DIR.glob("*.yaml"))


@pytest.mark.parametrize("name", BUNDLED)
def test_every_bundled_config_names_a_registered_detector_with_known_keys(name):
    config = load_config(name)
    assert config["model"]["name"] in list_models()
    assert config["model"]["pretrained"] is (name != "cael_demo")  # every detector starts from its paper's weights
    assert {"image-size", "num-classes"} <= set(config["model"])


def test_every_registered_detector_has_a_config_and_cael_an_ablation_per_switch():
    names = {load_config(name)["model"]["name"] for name in BUNDLED}
    assert names == set(list_models())
    for ablation in ABLATION_SWITCHES:
        assert f"cael_{ablation}" in BUNDLED
    from tools.train_set import ABLATIONS, BASELINES

    assert set(BASELINES) | set(ABLATIONS) <= set(BUNDLED)
    assert {load_config(name)["model"]["name"] for name in BASELINES} == set(list_models()) - {"cael"}


def test_summary_of_a_bundled_name_counts_parameters_and_flops(capsys):
    result = model.summary.main(["cnndet", "--set", "model.image-size=64"])
    detector = build_model(load_config("cnndet", ["model.pretrained=false", "model.image-size=64"])["model"])
    assert result["parameters"] == sum(p.numel() for p in detector.parameters())
    assert result["gflops_per_image"] > 0.3  # ResNet-50 at 64 px: about 4.1 * (64 / 224)^2 GMAC = 0.67 GFLOPs
    assert "cnndet" in capsys.readouterr().out
    with pytest.raises(UsageError, match="--all"):
        model.summary.main([])
    with pytest.raises(UsageError, match="not found"):
        model.summary.main(["no_such_detector"])


# ------------------------------------------------------------------------------- baselines true to their references
# Values read from each reference's code (the files named); a bundled config that drifts from them fails here.
REFERENCE_DEFAULTS = {
    # ondyari/FaceForensics classification/network/models.py: model_selection('xception') -> TransferModel(dropout=0.0),
    # 299 px; classification/dataset/transform.py: Normalize([0.5] * 3, [0.5] * 3).
    "xception": {"image-size": 299, "drop-rate": 0.0, "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)},
    # selimsef/dfdc_deepfake_challenge training/zoo/classifiers.py: DeepFakeClassifier(dropout_rate=0.0) over a timm
    # Noisy Student EfficientNet, drop_path_rate 0.2 (B7); configs/b7.json: size 380, ImageNet mean / std.
    "efficientnet_b4": {
        "image-size": 380,
        "drop-rate": 0.0,
        "drop-path-rate": 0.2,
        "backbone": "tf_efficientnet_b4.ns_jft_in1k",
        "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225),
    },
    # PeterWang512/CNNDetection data/datasets.py: Normalize(ImageNet mean, std) after RandomCrop(cropSize 224).
    "cnndet": {"image-size": 224, "drop-rate": 0.0, "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)},
}
# SCLBD/DeepfakeBench training/config/detector/{xception,efficientnetb4,resnet34}.yaml: resolution 256,
# mean = std = [0.5, 0.5, 0.5], backbone_config dropout: false; training/networks/{xception,efficientnetb4,resnet34}.py:
# pooled features -> one nn.Linear(features, 2); efficientnetb4: EfficientNet-PyTorch's efficientnet-b4-6ed6700e.pth
# (the TensorFlow AutoAugment weights), drop-connect 0.2; resnet34: torchvision's ImageNet ResNet-34.
DEEPFAKEBENCH_REFERENCE = {
    "xception_deepfakebench": {"backbone": "legacy_xception.tf_in1k", "lr": 2e-4, "batch-size": 32, "epochs": 10},
    "efficientnet_b4_deepfakebench": {
        "backbone": "tf_efficientnet_b4.aa_in1k",
        "lr": 2e-4,
        "batch-size": 32,
        "epochs": 10,
    },
    "cnndet_deepfakebench": {"backbone": "resnet34.tv_in1k", "lr": 2e-4, "batch-size": 32, "epochs": 10},
}


def _built_offline(config_name: str, *overrides: str):
    return build_model(load_config(config_name, ["model.pretrained=false", *overrides])["model"])


def _normalisation(detector) -> tuple[torch.Tensor, torch.Tensor]:
    """The (mean, std) a PixelNormalizer applies, recovered from what it makes of 0 and 255."""
    zero = detector.preprocess(torch.zeros(1, 3, 1, 1, dtype=torch.uint8)).flatten()
    full = detector.preprocess(torch.full((1, 3, 1, 1), 255, dtype=torch.uint8)).flatten()
    std = 1.0 / (full - zero)
    return -zero * std, std


@pytest.mark.parametrize("name", sorted(REFERENCE_DEFAULTS))
def test_bundled_baselines_follow_their_reference(name):
    expected = REFERENCE_DEFAULTS[name]
    detector = _built_offline(name)
    for key in ("image-size", "drop-rate", "drop-path-rate", "backbone"):
        if key in expected:
            assert detector.config[key] == expected[key], key
    assert detector.network.drop_rate == 0.0  # no dropout before the classifier
    mean, std = _normalisation(detector)
    torch.testing.assert_close(mean, torch.tensor(expected["mean"]), rtol=0, atol=1e-5)
    torch.testing.assert_close(std, torch.tensor(expected["std"]), rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", sorted(DEEPFAKEBENCH_REFERENCE))
def test_deepfakebench_configs_have_its_input_size_normalisation_and_head(name):
    expected = DEEPFAKEBENCH_REFERENCE[name]
    config = load_config(name)
    assert config["model"]["image-size"] == 256
    assert config["model"]["mean"] == [0.5, 0.5, 0.5] and config["model"]["std"] == [0.5, 0.5, 0.5]
    assert config["model"]["drop-rate"] == 0.0 and config["model"]["backbone"] == expected["backbone"]
    assert config["optim"]["lr"] == expected["lr"] and config["schedule"]["name"] == "constant"
    assert config["train"]["batch-size"] == expected["batch-size"] and config["train"]["epochs"] == expected["epochs"]
    detector = _built_offline(name)
    mean, std = _normalisation(detector)
    torch.testing.assert_close(mean, torch.full((3,), 0.5), rtol=0, atol=1e-6)
    torch.testing.assert_close(std, torch.full((3,), 0.5), rtol=0, atol=1e-6)
    head = detector.network.get_classifier()
    assert isinstance(head, torch.nn.Linear) and head.out_features == 2 and detector.network.drop_rate == 0.0
    from tools.train_set import SETS

    assert name in SETS["deepfakebench"]


def test_timm_baseline_mean_and_std_replace_the_weights_statistics_and_are_checked():
    detector = build_model({**TINY["cnndet"], "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.5, 1.0]})
    mean, std = _normalisation(detector)
    torch.testing.assert_close(std, torch.tensor([0.25, 0.5, 1.0]), rtol=0, atol=1e-5)
    torch.testing.assert_close(mean, torch.full((3,), 0.5), rtol=0, atol=1e-5)
    with pytest.raises(ModelConfigError, match="'std' of cnndet must be three numbers .*above 0"):
        build_model({**TINY["cnndet"], "std": [0.5, 0.0, 0.5]})
    with pytest.raises(ModelConfigError, match="'mean' of xception must be three numbers"):
        build_model({**TINY["xception"], "mean": 0.5})


def test_cross_efficient_vit_original_input_feeds_bgr_0_to_255_unnormalised(tiny_config, images):
    """original-input: true gives the streams what the original code gives them (cv2's BGR pixels, 0..255); the
    default is the harness's RGB with ImageNet statistics. The switch survives a rebuild from the saved config."""
    config = {**tiny_config(), "name": "cross_efficient_vit"}
    default = build_model(config)
    appearance, _ = default.preprocess(images)
    imagenet = PixelNormalizer((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    torch.testing.assert_close(appearance, imagenet(images), rtol=1e-5, atol=1e-5)
    original = build_model({**config, "original-input": True}).eval()
    appearance, _ = original.preprocess(images)
    torch.testing.assert_close(appearance, images.flip(1).float(), rtol=0, atol=0)
    assert original.config["original-input"] is True
    rebuilt = build_model(original.config)
    assert (
        rebuilt.preprocess.appearance_channel_order == "bgr" and rebuilt.preprocess.appearance_normalization == "none"
    )
    assert load_config("cross_efficient_vit")["model"]["original-input"] is False
    with pytest.raises(UserError, match="model.original-input must be true or false"):
        build_model({**config, "original-input": "yes"})


@pytest.mark.parametrize("name", ["cnndet", "univfd"])
def test_cnndet_and_univfd_train_on_a_random_224_crop_of_the_image_resized_to_256(name):
    """CNNDetection (and UnivFD, which trains with its data code): blur / JPEG, then the shorter side to 256 and a
    random 224 window (no random-resized crop), then a flip."""
    from data.transforms import build_augment, split_native

    augment = load_config(name)["data"]["augment"]
    assert [entry["name"] for entry in augment] == ["blur", "jpeg", "random-crop", "hflip"]
    native, sized = split_native(augment)
    assert [e["name"] for e in native] == ["blur", "jpeg", "random-crop"] and [e["name"] for e in sized] == ["hflip"]
    crop = next(entry for entry in augment if entry["name"] == "random-crop")
    generator = torch.Generator().manual_seed(1)
    image = torch.randint(0, 256, (3, 300, 400), generator=generator, dtype=torch.uint8)
    resized = torchvision_resize(image, crop["resize"])  # (3, 256, 341)
    torch.manual_seed(0)
    out = build_augment([crop], 224)(image)
    assert out.shape == (3, 224, 224) and out.dtype == torch.uint8
    corners = (resized[:, : 256 - 224 + 1, : 341 - 224 + 1] == out[:, :1, :1]).all(dim=0).nonzero().tolist()
    assert any(torch.equal(resized[:, y : y + 224, x : x + 224], out) for y, x in corners)
    with pytest.raises(ValueError, match=r"data\.augment\[0\] \(random-crop\): 'resize' must be .* at least"):
        build_augment([{"name": "random-crop", "resize": 200}], 224)


def torchvision_resize(image: torch.Tensor, shorter_side: int) -> torch.Tensor:
    from torchvision.transforms import v2

    return v2.Resize(shorter_side, interpolation=v2.InterpolationMode.BILINEAR, antialias=True)(image)


@pytest.mark.parametrize("name", BUNDLED)
def test_every_bundled_config_builds_offline(name):
    """Each bundled config's model section builds without weights; CAEL's family and univfd at TINY's widths (their
    full widths are hundreds of millions of parameters), keeping every switch the config sets."""
    model_config = load_config(name, ["model.pretrained=false"])["model"]
    shrink = {"cael": TINY["cael"], "cross_efficient_vit": TINY["cael"], "univfd": TINY["univfd"]}
    shrink.update({name: TINY_VIT for name in ("clip_ln", "dinov2_ln", "clip_lora", "effort")})
    small = {key: value for key, value in shrink.get(model_config["name"], {}).items() if key != "name"}
    detector = build_model({**model_config, **small})
    assert detector.num_classes == 2 and detector.config["name"] == model_config["name"]


@pytest.mark.parametrize("name", ["cross_efficient_vit", "xception_deepfakebench", "efficientnet_b4_deepfakebench"])
def test_train_set_demo_arguments_load(name):
    """tools.train_set --demo shrinks each config through --set overrides that train.py must accept (a key CAEL's
    demo config lacks, such as original-input at its default, is left out)."""
    from tools.train_set import demo_arguments

    argv = demo_arguments(name, Path("demo.csv"))
    config = load_config(argv[1], [arg.split("=", 1)[1] for arg in argv if arg.startswith("--set=")])
    assert config["model"]["name"] == load_config(name)["model"]["name"] and config["model"]["image-size"] == 64
