"""ViT parts (clusterbench/nn/vit.py): random masking keeps exactly the requested ratio per
sample, the PISD loss covers only masked patches, sin-cos positions, stems, sizes, MAE shapes."""

from __future__ import annotations

import math

import pytest
import torch

from clusterbench.errors import ConfigError
from clusterbench.losses.pici import masked_patch_mse, pisd_loss
from clusterbench.nn.vit import (
    VIT_SIZES,
    Attention,
    ConvStem,
    MAEDecoder,
    MAEEncoder,
    PatchEmbed,
    VisionTransformer,
    math_attention,
    patchify,
    random_masking,
    sincos_pos_embed_2d,
    vit_size,
)


def test_math_attention_is_scaled_dot_product_attention():
    torch.manual_seed(0)
    q, k, v = (torch.randn(4, 3, 10, 8, dtype=torch.float64) for _ in range(3))
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    assert torch.allclose(math_attention(q, k, v), expected, atol=1e-12)


def test_cpu_bf16_attention_takes_the_math_path_and_stays_close_to_float32(monkeypatch):
    torch.manual_seed(0)
    attention = Attention(24, 3)
    x = torch.randn(8, 17, 24)
    fused = torch.nn.functional.scaled_dot_product_attention
    calls = []
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or fused(*a, **k))
    reference = attention(x)
    assert calls == [1]  # float32 keeps torch's fused kernel (and its results, bit for bit)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = attention(x)
    assert calls == [1] and out.dtype == torch.bfloat16
    assert torch.allclose(out.float(), reference, atol=0.05)
    out.float().sum().backward()
    assert attention.qkv.weight.grad is not None and torch.isfinite(attention.qkv.weight.grad).all()


@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.75, 0.9])
def test_random_masking_keeps_exactly_the_ratio_per_sample(ratio):
    torch.manual_seed(0)
    b, length, dim = 16, 49, 8
    tokens = torch.randn(b, length, dim)
    kept, mask, restore = random_masking(tokens, ratio)
    n_masked = round(length * ratio)
    assert kept.shape == (b, length - n_masked, dim)
    assert torch.equal(mask.sum(dim=1), torch.full((b,), float(n_masked)))
    # the kept tokens are exactly the unmasked ones (as a set, per sample)
    for i in range(b):
        visible = tokens[i][mask[i] == 0]
        assert torch.equal(torch.sort(visible, dim=0).values, torch.sort(kept[i], dim=0).values)
    # per sample, not one pattern for the batch; restore is a permutation
    assert len({tuple(m.tolist()) for m in mask}) > 1
    assert torch.equal(torch.sort(restore, dim=1).values, torch.arange(length).expand(b, -1))


def test_masked_patch_loss_covers_only_masked_patches():
    torch.manual_seed(0)
    pred = torch.randn(4, 16, 12, requires_grad=True)
    target = torch.randn(4, 16, 12)
    mask = (torch.rand(4, 16) < 0.5).float()
    loss = masked_patch_mse(pred, target, mask)
    by_hand = ((pred - target) ** 2).mean(-1)[mask.bool()].mean()
    assert loss.item() == pytest.approx(by_hand.item(), rel=1e-6)
    loss.backward()
    assert torch.all(pred.grad[mask == 0] == 0) and torch.all(pred.grad[mask == 1].abs().sum(-1) > 0)
    # changing a visible patch's prediction changes nothing
    changed = pred.detach().clone()
    changed[mask == 0] += 100.0
    assert masked_patch_mse(changed, target, mask).item() == pytest.approx(loss.item(), rel=1e-6)
    assert pisd_loss(torch.tensor(1.0), torch.tensor(3.0)).item() == 2.0  # Eq. 1


def test_mae_encoder_decoder_shapes_and_unmasked_inference():
    torch.manual_seed(0)
    enc = MAEEncoder(image_size=16, in_channels=3, patch_size=4, embed_dim=32, depth=1, num_heads=4)
    dec = MAEDecoder(enc.num_patches, 4, 3, encoder_dim=32, embed_dim=16, depth=1, num_heads=2)
    x = torch.randn(2, 3, 16, 16)
    tokens, mask, restore = enc(x, 0.75)
    assert tokens.shape == (2, 1 + 4, 32) and mask.sum().item() == 2 * 12
    assert dec(tokens, restore).shape == (2, 16, 4 * 4 * 3)
    full, mask0, _ = enc(x, 0.0)
    assert full.shape == (2, 17, 32) and mask0.sum().item() == 0
    enc.eval()
    assert torch.equal(enc(x, 0.0)[0], enc(x, 0.0)[0])  # no masking: deterministic


def test_patchify_orders_patches_row_major():
    x = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(1, 2, 4, 4)
    p = patchify(x, 2)
    assert p.shape == (1, 4, 8)
    # patch 1 is the top-right 2 x 2 block, pixels (row, col, channel)
    assert p[0, 1].tolist() == [2.0, 18.0, 3.0, 19.0, 6.0, 22.0, 7.0, 23.0]


def test_sincos_positions():
    emb = sincos_pos_embed_2d(16, grid=3, extra_tokens=2)
    assert emb.shape == (2 + 9, 16)
    assert torch.all(emb[:2] == 0)
    # position (row 0, col 0): sin(0) = 0 and cos(0) = 1 in each half
    assert emb[2].tolist() == [0.0] * 4 + [1.0] * 4 + [0.0] * 4 + [1.0] * 4
    # token (row 1, col 2): the column half at frequency 1 is sin(2), cos(2)
    assert emb[2 + 5, 8].item() == pytest.approx(math.sin(2.0), abs=1e-6)
    assert emb[2 + 5, 12].item() == pytest.approx(math.cos(2.0), abs=1e-6)
    assert emb[2 + 5, 0].item() == pytest.approx(math.sin(1.0), abs=1e-6)
    with pytest.raises(ConfigError, match="multiple of 4"):
        sincos_pos_embed_2d(10, 2)


def test_conv_stem_gives_the_patch_grid_and_vtcc_widths():
    x = torch.randn(2, 3, 32, 32)
    assert ConvStem(3, 64, 8)(x).shape == PatchEmbed(3, 64, 8)(x).shape == (2, 16, 64)
    stem = ConvStem(3, 512, 16)
    widths = [m.out_channels for m in stem.proj if isinstance(m, torch.nn.Conv2d)]
    assert widths == [64, 128, 256, 512, 512]  # VTCC at width 512: 4 conv3x3/2 stages + conv1x1
    with pytest.raises(ConfigError, match="model.patch_size=6"):
        ConvStem(3, 64, 6)


def test_vit_sizes_and_config_errors():
    assert VIT_SIZES == {"tiny": (192, 3), "small": (384, 6), "base": (768, 12)}
    assert vit_size("small", None, None) == (384, 6)
    assert vit_size(None, 512, 16) == (512, 16)
    with pytest.raises(ConfigError, match="model.vit_size='huge'"):
        vit_size("huge", None, None)
    with pytest.raises(ConfigError, match="not divisible"):
        vit_size(None, 100, 16)
    vit = VisionTransformer(16, 1, 4, 32, depth=2, num_heads=4, stem="patch", extra_tokens=1)
    assert vit(torch.randn(3, 1, 16, 16), torch.randn(3, 1, 32)).shape == (3, 32)
    with pytest.raises(ConfigError, match="model.stem='cnn'"):
        VisionTransformer(16, 1, 4, 32, depth=2, num_heads=4, stem="cnn")


def test_epoch_benchmark_script_runs_on_the_tiny_presets():
    from conftest import load_script

    result = load_script("bench_vit_epoch").main(["hardware=cpu", "--presets", "tiny", "--n", "32", "--size", "16", "--warmup", "0"])
    assert set(result["seconds_per_epoch"]) == {"vtcc", "mfavbs", "pici pretrain", "pici train", "pici boost"}
    assert all(s > 0 for s in result["seconds_per_epoch"].values())


def test_epoch_benchmark_script_times_the_mnist_presets_in_each_precision():
    from conftest import load_script

    argv = ["hardware=cpu", "--presets", "mnist", "--n", "32", "--size", "16", "--warmup", "0", "--precisions", "fp32,bf16"]
    result = load_script("bench_vit_epoch").main(argv)
    names = ("vtcc", "mfavbs", "pici pretrain", "pici train", "pici boost")
    assert set(result["seconds_per_epoch"]) == {f"{name} {p}" for name in names for p in ("fp32", "bf16")}
    ratios = result["fp32_over_bf16"]
    assert set(ratios) == set(names) and all(r > 0 for r in ratios.values())
    assert ratios["vtcc"] == round(result["seconds_per_epoch"]["vtcc fp32"] / result["seconds_per_epoch"]["vtcc bf16"], 2)
