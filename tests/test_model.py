"""CAEL on CPU with tiny configs: shapes, input contract, edge map, gradients, heads, compile and autocast."""

import numpy as np
import pytest
import timm
import torch
from conftest import NO_RANDOM_OPS, gradient_errors
from scipy import ndimage

from common.errors import ConfigError
from engine.config import load_config
from model import CAEL, build_model, list_models
from model.preprocess import InputAdapter, sobel_magnitude


@pytest.mark.parametrize("released", [False, True])
@pytest.mark.parametrize("patches", [(1, 8), (2, 16), (1, 4)])
def test_output_shape_in_both_modes_and_token_counts(tiny_config, images, released, patches):
    fg_patch, cg_patch = patches
    model = build_model(tiny_config(released=released, fg_patch_size=fg_patch, cg_patch_size=cg_patch, num_classes=3))
    fine, coarse, edge = model.eval().forward_features(images)
    assert fine.shape == (3, 1 + (2 // fg_patch) ** 2, 32)
    assert coarse.shape == edge.shape == (3, 1 + (16 // cg_patch) ** 2, 48)
    assert model.appearance_fine.embedder.pos_embedding.shape[1] == fine.shape[1]
    assert model.edge_stream.embedder.pos_embedding.shape[1] == edge.shape[1]
    assert model(images).shape == (3, 3)


def test_uint8_and_float_input_agree(tiny_config, images):
    model = build_model(tiny_config()).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(images), model(images.float()), rtol=0, atol=0)
        torch.testing.assert_close(model(images), model(images.double()), rtol=0, atol=1e-6)


def test_channels_last_input_gives_the_same_logits(tiny_config, images):
    model = build_model(tiny_config()).eval()
    with torch.no_grad():
        expected = model(images)
        got = model(images.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_edge_map_equals_scipy_sobel_magnitude(images):
    adapter = InputAdapter()
    edge = adapter.edge_map(images)
    assert edge.shape == (3, 1, 64, 64) and edge.dtype == torch.float32
    for picture, got in zip(images.double().numpy(), edge[:, 0].double().numpy()):
        grey = 0.299 * picture[0] + 0.587 * picture[1] + 0.114 * picture[2]
        expected = np.hypot(ndimage.sobel(grey, axis=0, mode="mirror"), ndimage.sobel(grey, axis=1, mode="mirror"))
        np.testing.assert_allclose(got, expected / 255.0, rtol=1e-5, atol=2e-5)
    assert edge.max() > 0.5  # the test image has strong edges: the comparison is not between zeros


def test_edge_map_is_not_clipped():
    step = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    step[..., 4:] = 255
    assert InputAdapter().edge_map(step).max().item() == pytest.approx(4.0, abs=1e-5)  # 4 * 255 / 255
    grey = torch.zeros(1, 1, 5, 5)
    grey[..., 2, 2] = 1.0  # a single bright pixel: reflect-101 keeps the border rows symmetric
    magnitude = sobel_magnitude(grey)[0, 0]
    torch.testing.assert_close(magnitude, magnitude.flip(0).flip(1))


def test_bgr_input_order_switch(tiny_config, images):
    rgb_model = build_model(tiny_config()).eval()
    bgr_model = build_model(tiny_config(input_channel_order="bgr")).eval()
    bgr_model.load_state_dict(rgb_model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(bgr_model(images.flip(1)), rgb_model(images), rtol=1e-5, atol=1e-5)


def test_released_switches_change_what_the_appearance_streams_see(images):
    released = InputAdapter(appearance_channel_order="bgr", appearance_normalization="unit", transpose_appearance=True)
    appearance, _ = released(images)
    expected = (images.float() / 255.0).flip(1).transpose(-1, -2)
    torch.testing.assert_close(appearance, expected)
    default, _ = InputAdapter()(images)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(default, (images.float() / 255.0 - mean) / std)


def test_every_parameter_gets_a_gradient_in_default_mode(tiny_config, images):
    model = build_model(tiny_config()).train()
    assert not model.has_unused_parameters
    model(images).logsumexp(dim=1).sum().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_released_mode_leaves_only_the_dead_aeca_rounds_without_gradient(tiny_config, images):
    model = build_model(tiny_config(released=True)).train()
    assert model.has_unused_parameters
    model(images).sum().backward()
    missing = {name for name, p in model.named_parameters() if p.grad is None}
    assert missing and all(".aeca.rounds.0." in name for name in missing)


def test_aeca_modes_differ_and_released_ignores_early_rounds(tiny_config, images):
    sequential = build_model(tiny_config()).eval()
    released = build_model(tiny_config(aeca_rounds="last", aeca_residual="double")).eval()
    released.load_state_dict(sequential.state_dict())
    with torch.no_grad():
        before = released(images)
        assert not torch.allclose(before, sequential(images), atol=1e-4)
        for block in released.blocks:  # the released code never reads the first round
            for p in block.aeca.rounds[0].parameters():
                p.add_(1.0)
        torch.testing.assert_close(released(images), before)


def test_fine_grained_heads_return_a_dict(tiny_config, images):
    model = build_model(tiny_config(fine_grained_heads=True, level2_num_classes=3, level3_num_classes=5)).eval()
    output = model(images)
    assert set(output) == {"logits", "level2_logits", "level3_logits"}
    assert output["logits"].shape == (3, 2)
    assert output["level2_logits"].shape == (3, 3)
    assert output["level3_logits"].shape == (3, 5)


def test_bf16_autocast_runs_and_stays_close(tiny_config, images):
    model = build_model(tiny_config()).eval()
    with torch.no_grad():
        reference = model(images)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(images)
    assert torch.isfinite(low).all()
    torch.testing.assert_close(low.float(), reference, rtol=0.1, atol=0.1)


def test_no_random_ops_config_is_deterministic_in_train_mode(tiny_config, images):
    """The precondition of tests/test_cuda.py's compiled-vs-eager check: with NO_RANDOM_OPS two train-mode forward
    passes under different seeds agree exactly, while the default config (drop-path 0.2) does not."""

    def two_draws(config):
        torch.manual_seed(0)
        model = build_model(config).train()
        with torch.no_grad():
            torch.manual_seed(1)
            first = model(images)
            torch.manual_seed(2)
            return first, model(images)

    first, second = two_draws(tiny_config(**NO_RANDOM_OPS))
    assert torch.equal(first, second)
    first, second = two_draws(tiny_config(dropout=0.0, emb_dropout=0.0))  # drop-path still on
    assert not torch.allclose(first, second, rtol=1e-3, atol=1e-3)


def test_gradient_comparison_of_the_compiled_check_sees_through_gradients_zero_in_exact_arithmetic(tiny_config, images):
    """tests/test_cuda.py compares compiled with eager gradients. The edge stream's convolution biases sit before
    train-mode batch norms, so their gradients are zero in exact arithmetic: in float32 and float64 they are unrelated
    noise, about 1e-7. The comparison must pass float32 against float64 on the CPU (every gradient is right), and
    must still catch a gradient that is wrong."""

    def gradients(dtype):
        torch.manual_seed(0)
        model = build_model(tiny_config(**NO_RANDOM_OPS)).to(dtype).train()
        model(images).sum().backward()
        return {name: p.grad.double() for name, p in model.named_parameters() if p.grad is not None}

    single, double = gradients(torch.float32), gradients(torch.float64)
    bias = "edge_stream.cnn.3.bias"
    assert double[bias].norm() < 1e-6 * double["edge_stream.cnn.3.weight"].norm()  # zero in exact arithmetic
    assert (single[bias] - double[bias]).norm() > 0.5 * double[bias].norm()  # so its own norm is no yardstick
    errors = gradient_errors(single, double)
    assert max(errors.values()) < 1e-2, max(errors, key=errors.get)  # the compiled check's tolerance
    wrong = dict(single, **{"edge_stream.cnn.3.weight": 1.05 * single["edge_stream.cnn.3.weight"]})
    assert gradient_errors(wrong, double)["edge_stream.cnn.3.weight"] > 1e-2


def test_torch_compile_traces_the_whole_forward_without_graph_breaks(tiny_config, images):
    model = build_model(tiny_config()).eval()
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(images), model(images), rtol=1e-5, atol=1e-5)


def test_bad_input_gets_one_clear_error(tiny_config, images):
    model = build_model(tiny_config()).eval()
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\).*channels-last"):
        model(images.permute(0, 2, 3, 1))
    with pytest.raises(ValueError, match="built for 64x64 images"):
        model(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"cg_patch_size": 5}, r"cg-patch-size.*choose one of \[1, 2, 4, 8, 16\]"),
        ({"fg_channels": 1000}, "fg-channels.*1280"),
        ({"aeca_rounds": "all"}, "aeca-rounds"),
        ({"appearance_normalization": "zscore"}, "appearance-normalization"),
        ({"fg_dimm": 3}, "did you mean fg-dim"),
    ],
)
def test_bad_model_config_names_the_key(tiny_config, overrides, message):
    with pytest.raises((ValueError, KeyError), match=message):
        build_model(tiny_config(**overrides))


def test_registry_and_config_overrides():
    assert "cael" in list_models()
    config = load_config("cael", ["model.depth=1", "model.pretrained=false"])
    assert config["model"]["depth"] == 1 and config["model"]["aeca-rounds"] == "sequential"
    released = load_config("cael_released")["model"]
    assert released["aeca-rounds"] == "last" and released["transpose-appearance"] is True
    with pytest.raises(ConfigError, match="did you mean model.depth"):
        load_config("cael", ["model.dept=1"])
    with pytest.raises(KeyError, match="unknown model name"):
        build_model({"name": "nope"})
    from model.registry import model_config_types, model_defaults

    for lookup in (model_defaults, model_config_types):  # one sentence wherever a model name is looked up
        with pytest.raises(KeyError, match="unknown model name .nope. in the model config: choose one of"):
            lookup("nope")


def test_pretrained_offline_fails_with_one_clear_sentence(tiny_config):
    with pytest.raises(RuntimeError, match="pretrained-file.*pretrained: false"):
        build_model(tiny_config(pretrained=True))


def test_pretrained_file_loads_local_weights(tiny_config, tmp_path):
    source = timm.create_model("tf_efficientnet_b0", pretrained=False)
    torch.nn.init.normal_(source.conv_stem.weight)
    path = tmp_path / "b0.pth"
    torch.save(source.state_dict(), path)
    model = build_model(tiny_config(pretrained=True, pretrained_file=str(path)))
    for backbone in (model.appearance_fine.backbone.network, model.appearance_coarse.backbone):
        torch.testing.assert_close(backbone.conv_stem.weight, source.conv_stem.weight)
    with pytest.raises(FileNotFoundError, match="pretrained-file"):
        build_model(tiny_config(pretrained=True, pretrained_file=str(tmp_path / "missing.pth")))


def test_model_follows_the_input_device_and_has_no_hidden_cuda_calls():
    import inspect

    import model.cael
    import model.preprocess

    for module in (model.cael, model.preprocess):
        source = inspect.getsource(module)
        assert ".cuda(" not in source and "numpy" not in source and "cv2" not in source
    assert issubclass(CAEL, torch.nn.Module)


def test_fast_path_matches_the_plain_fp32_path(tiny_config, images):
    """Channels-last + compiled graph: within 1e-5 of fp32 eager; adding bf16 autocast: within 5e-2 on the logits."""
    model = build_model(tiny_config()).eval()
    with torch.no_grad():
        reference = model(images)
        fast = torch.compile(model.to(memory_format=torch.channels_last), backend="aot_eager")
        channels_last = images.contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(fast(channels_last), reference, rtol=0, atol=1e-5)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = fast(channels_last).float()
    torch.testing.assert_close(low, reference, rtol=0, atol=5e-2)
