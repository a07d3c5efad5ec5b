"""Unpacking rules per scheme: weights before quantization from packed tensor shapes, and the
stored count, flagged, where the layout or the config's bits are not known."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.detect.formats.safetensors import DTYPE_BITS
from agent.detect.quantized import Count, Packed, Scheme, Tensor, count, may_be_packed, merge
from bench import model_layouts as layouts

BITS = DTYPE_BITS
SHAPES = {
    "model.embed_tokens.weight": (1024, 256),
    "model.layers.0.self_attn.q_proj.weight": (256, 256),
    "model.layers.0.mlp.down_proj.weight": (256, 512),
    "model.layers.0.input_layernorm.weight": (256,),
    "lm_head.weight": (1024, 256),
}
WEIGHTS = sum(math.prod(s) for s in SHAPES.values())
MLX = Scheme("mlx", 4, 64)
GPTQ = Scheme("gptq", 4, 128)


def packed(tensors: list[layouts.Tensor]) -> Packed:
    """What the safetensors parser keeps: possibly packed tensors apart, plain ones summed."""
    kept = [Tensor(n, d, s, BITS[d]) for n, d, s in tensors if may_be_packed(n, d)]
    plain = sum(math.prod(s) for n, d, s in tensors if not may_be_packed(n, d))
    return Packed(plain, tuple(kept))


def stored(tensors: list[layouts.Tensor]) -> int:
    return sum(math.prod(s) for _, _, s in tensors)


def test_plain_weights_are_counted_as_they_are() -> None:
    assert count(packed(layouts.plain_tensors(SHAPES)), None) == Count(WEIGHTS, True)


def test_mlx_unpacks_with_the_configs_bits_and_group_size() -> None:
    tensors = layouts.mlx_tensors(SHAPES, 4, 64)

    assert count(packed(tensors), MLX) == Count(WEIGHTS, True)


def test_mlx_without_a_config_is_the_stored_count_flagged() -> None:
    tensors = layouts.mlx_tensors(SHAPES, 4, 64)

    assert count(packed(tensors), None) == Count(stored(tensors), False)


def test_mlx_bits_that_disagree_with_the_group_size_are_not_guessed() -> None:
    tensors = layouts.mlx_tensors(SHAPES, 8, 64)

    assert count(packed(tensors), MLX) == Count(stored(tensors), False)


def test_mlx_per_module_overrides_unpack_mixed_precision() -> None:
    four = layouts.mlx_tensors(SHAPES, 4, 64)
    eight = layouts.mlx_tensors({"lm_head.weight": SHAPES["lm_head.weight"]}, 8, 64)
    mixed = [t for t in four if not t[0].startswith("lm_head")] + eight
    scheme = Scheme("mlx", 4, 64, (("lm_head", 8, 64),))

    assert count(packed(mixed), scheme) == Count(WEIGHTS, True)
    assert count(packed(mixed), MLX).recognised is False


def test_a_module_split_across_shards_is_unpacked_once_merged() -> None:
    tensors = layouts.mlx_tensors(SHAPES, 4, 64)
    weights = [t for t in tensors if not t[0].endswith((".scales", ".biases"))]
    state = [t for t in tensors if t[0].endswith((".scales", ".biases"))]

    merged = merge([packed(weights), packed(state)])

    assert count(merged, MLX) == Count(WEIGHTS, True)


def test_gptq_unpacks_qweight_with_the_configs_bits() -> None:
    tensors = layouts.gptq_tensors(SHAPES, 4, 128)

    assert count(packed(tensors), GPTQ) == Count(WEIGHTS, True)
    assert count(packed(tensors), Scheme("awq", 4, 128)) == Count(WEIGHTS, True)


def test_gptq_without_bits_is_the_stored_count_flagged() -> None:
    tensors = layouts.gptq_tensors(SHAPES, 4, 128)

    assert count(packed(tensors), Scheme("gptq")) == Count(stored(tensors), False)
    assert count(packed(tensors), MLX).recognised is False


def test_awq_packs_along_columns_and_counts_the_same() -> None:
    n_in, n_out = 512, 256
    tensors = [
        ("l.qweight", "I32", (n_in, n_out * 4 // 32)),
        ("l.qzeros", "I32", (n_in // 128, n_out * 4 // 32)),
        ("l.scales", "F16", (n_in // 128, n_out)),
    ]

    assert count(packed(tensors), Scheme("awq", 4, 128)) == Count(n_in * n_out, True)


def test_bitsandbytes_nf4_is_two_weights_per_byte_without_a_config() -> None:
    tensors = layouts.bnb4_tensors(SHAPES)

    assert count(packed(tensors), None) == Count(WEIGHTS, True)


def test_bitsandbytes_int8_weights_count_once_and_their_scales_not_at_all() -> None:
    tensors = [
        ("l.weight", "I8", (256, 512)),
        ("l.SCB", "F32", (256,)),
        ("l.weight_format", "U8", ()),
        ("l.bias", "F16", (256,)),
    ]

    assert count(packed(tensors), Scheme("bitsandbytes", 8)) == Count(256 * 512 + 256, True)


def test_compressed_tensors_pack_quantized_unpacks_with_num_bits() -> None:
    tensors = [
        ("l.weight_packed", "I32", (256, 512 * 4 // 32)),
        ("l.weight_scale", "BF16", (256, 512 // 128)),
        ("l.weight_zero_point", "I32", (256, 512 // 128 * 4 // 32)),
        ("l.weight_shape", "I64", (2,)),
    ]

    scheme = Scheme("compressed-tensors", 4, 128)
    assert count(packed(tensors), scheme) == Count(256 * 512, True)


def test_fp8_weights_count_once_and_their_block_scales_not_at_all() -> None:
    tensors = [("l.weight", "F8_E4M3", (256, 512)), ("l.weight_scale_inv", "F32", (2, 4))]
    kept = [Tensor(n, d, s, 8 if d == "F8_E4M3" else 32) for n, d, s in tensors]

    assert count(Packed(0, tuple(kept)), None) == Count(256 * 512, True)


def test_exl2_counts_from_its_permutation_and_columns_whatever_the_bits() -> None:
    tensors = [
        ("l.q_weight", "I32", (512 * 5 // 32, 256)),
        ("l.q_invperm", "I16", (512,)),
        ("l.q_scale", "I32", (4, 256 // 8)),
        ("l.q_scale_max", "F16", (4,)),
        ("l.q_groups", "I16", (8,)),
    ]

    assert count(packed(tensors), Scheme("exl2", 4.65)) == Count(512 * 256, True)


def test_an_unknown_packed_weight_is_the_stored_count_flagged() -> None:
    tensors = [("l.weight", "U32", (256, 64)), ("l.codebook", "F16", (16, 8))]

    assert count(packed(tensors), None) == Count(256 * 64 + 16 * 8, False)


LEAVES = ["weight", "qweight", "qzeros", "scales", "biases", "g_idx", "q_weight", "q_invperm",
          "weight_packed", "weight_scale", "SCB", "weight.absmax",
          "weight.quant_state.bitsandbytes__nf4"]  # fmt: skip
tensors = st.builds(
    lambda module, leaf, dtype, shape: Tensor(
        f"m{module}.{leaf}", dtype, tuple(shape), BITS[dtype]
    ),
    st.integers(0, 3),
    st.sampled_from(LEAVES),
    st.sampled_from(["U32", "I32", "U8", "I8", "F16", "I16"]),
    st.lists(st.integers(0, 1 << 20), max_size=3),
)
schemes = st.none() | st.builds(
    Scheme,
    st.sampled_from(["mlx", "gptq", "awq", "compressed-tensors", "exl2", "other"]),
    st.none() | st.floats(-8, 64) | st.just(float("nan")),
    st.none() | st.integers(-1, 256),
)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 1 << 40), st.lists(tensors, max_size=12), schemes)
def test_any_tensors_and_scheme_give_a_count_never_below_the_plain_weights(
    plain: int, kept: list[Tensor], scheme: Scheme | None
) -> None:
    found = count(Packed(plain, tuple(kept)), scheme)

    assert found.parameters >= plain
    assert isinstance(found.recognised, bool)


def test_mlx_moe_experts_stacked_in_three_dimensions_unpack_the_same_way() -> None:
    experts, n_out, n_in = 8, 128, 256
    tensors = [
        ("switch_mlp.up_proj.weight", "U32", (experts, n_out, n_in * 4 // 32)),
        ("switch_mlp.up_proj.scales", "BF16", (experts, n_out, n_in // 64)),
        ("switch_mlp.up_proj.biases", "BF16", (experts, n_out, n_in // 64)),
        ("mixer.conv1d.weight", "BF16", (512, 1, 4)),  # mlx leaves convolutions unquantized
    ]

    assert count(packed(tensors), MLX) == Count(experts * n_out * n_in + 512 * 4, True)
