import pytest
import torch

from mixer_edu import MixerBlock, Mlp
from mixer_edu.seq_mixing import (
    EncoderLayer,
    MlpTokenMixer,
    SelfAttention,
    TextEncoder,
    gelu_slope,
)

from .helpers import randomize_

L, B, D = 12, 3, 8  # num_tokens, batch, d_model


def test_mlp_token_mixer_equals_an_mlp_on_the_transposed_sequence():
    """What the reference implementation does: put the sequence axis last, apply the MLP."""
    mixer = randomize_(MlpTokenMixer(L, hidden_features=5))
    reference = Mlp(L, 5)
    reference.load_state_dict(mixer.mlp.state_dict(), strict=True)
    x = torch.randn(L, B, D)  # [num_tokens, batch, d_model]
    expected = reference(x.transpose(0, 2)).transpose(0, 2)  # [d_model, batch, num_tokens] and back
    torch.testing.assert_close(mixer(x, x, x), expected, rtol=0, atol=1e-6)


def test_mlp_token_mixer_mixes_only_across_positions():
    mixer = randomize_(MlpTokenMixer(L))
    x = torch.randn(L, B, D)
    x2 = x.clone()
    x2[4, 1, 2] += 1.0  # position 4, sample 1, channel 2
    changed = (mixer(x2, x2, x2) - mixer(x, x, x)).abs() > 1e-6
    assert changed[:, 1, 2].all()  # every position of that sample's channel changes
    changed[:, 1, 2] = False
    assert not changed.any()  # nothing else: no other channel, no other sample


def test_mlp_token_mixer_rejects_different_query_key_value_and_says_why():
    mixer = MlpTokenMixer(L)
    x = torch.randn(L, B, D)
    with pytest.raises(ValueError, match=r"self-mixing only.*mixer\(x, x, x\).*no queries or keys"):
        mixer(x, torch.randn(L, B, D), x)
    with pytest.raises(ValueError, match="same tensor"):
        mixer(x, x, x.clone())  # equal values are not enough: it must be one sequence


def test_mlp_token_mixer_rejects_a_per_call_mask_and_says_where_a_causal_one_belongs():
    mixer = MlpTokenMixer(L)
    x = torch.randn(L, B, D)
    causal = torch.ones(L, L).tril().bool()
    expected = r"per-call mask.*same for every input.*mask=None.*causal mask belongs in the weights"
    with pytest.raises(ValueError, match=expected):
        mixer(x, x, x, mask=causal)


def test_mlp_token_mixer_rejects_another_sequence_length_and_names_the_fix():
    mixer = MlpTokenMixer(L, hidden_features=20)
    x = torch.randn(L + 3, B, D)
    expected = r"built for num_tokens=12.*12 -> 20 -> 12 map.*length 15.*num_tokens=15"
    with pytest.raises(ValueError, match=expected):
        mixer(x, x, x)


def test_mlp_token_mixer_rejects_batch_first_input():
    x = torch.randn(B, L, D, 1)
    with pytest.raises(ValueError, match=r"\[num_tokens, batch, d_model\]"):
        MlpTokenMixer(L)(x, x, x)


def test_self_attention_equals_torch_multihead_attention_and_its_maps_are_distributions():
    attention = randomize_(SelfAttention(D, num_heads=2))
    x = torch.randn(L, B, D)
    expected, weights = attention.attention(x, x, x, average_attn_weights=False)
    attention.keep_maps = True
    torch.testing.assert_close(attention(x, x, x), expected)
    assert attention.maps.shape == (B, 2, L, L)
    torch.testing.assert_close(attention.maps, weights)
    torch.testing.assert_close(attention.maps.sum(-1), torch.ones(B, 2, L))


def test_self_attention_mask_true_means_may_attend():
    attention = randomize_(SelfAttention(D, num_heads=2))
    causal = torch.ones(L, L).tril().bool()  # position i may look at positions <= i
    x = torch.randn(L, B, D)
    x2 = x.clone()
    x2[7] += 1.0  # change a later position
    out, out2 = attention(x, x, x, mask=causal), attention(x2, x2, x2, mask=causal)
    torch.testing.assert_close(out[:7], out2[:7])  # earlier positions cannot see it
    assert not torch.allclose(out[7:], out2[7:])


def test_attention_is_permutation_equivariant_but_mlp_mixing_is_not():
    """Why attention needs position embeddings and the MLP mixer does not."""
    perm = torch.randperm(L)
    x = torch.randn(L, B, D)
    xp = x[perm]
    attention = randomize_(SelfAttention(D, num_heads=2))
    torch.testing.assert_close(attention(xp, xp, xp), attention(x, x, x)[perm])
    mlp = randomize_(MlpTokenMixer(L))
    assert not torch.allclose(mlp(xp, xp, xp), mlp(x, x, x)[perm], atol=1e-3)


def test_mlp_encoder_layer_is_a_mixer_block_in_another_layout():
    layer = randomize_(EncoderLayer(D, L, mixer="mlp", mlp_ratio=4.0, token_mlp_hidden=6))
    block = MixerBlock(dim=D, num_tokens=L, mlp_ratio=(6 / D, 4.0))
    block.load_state_dict(
        {
            "norm1.weight": layer.norm1.weight,
            "norm1.bias": layer.norm1.bias,
            **{f"mlp_tokens.{k}": v for k, v in layer.token_mixer.mlp.state_dict().items()},
            "norm2.weight": layer.norm2.weight,
            "norm2.bias": layer.norm2.bias,
            **{f"mlp_channels.{k}": v for k, v in layer.feed_forward.state_dict().items()},
        },
        strict=True,
    )
    x = torch.randn(L, B, D)  # (L, B, D) for the encoder, (B, N, C) for the Mixer
    expected = block(x.transpose(0, 1)).transpose(0, 1)
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-5)


def test_mixing_matrix_is_the_average_jacobian_over_the_batch():
    mixer = randomize_(MlpTokenMixer(6, hidden_features=5))
    x = torch.randn(6, 2, 3)

    def columns(flat):  # (6,) -> (6,): one column of the sequence, as the mixer sees it
        sequence = flat.view(6, 1, 1)
        return mixer(sequence, sequence, sequence).view(6)

    jacobians = [
        torch.autograd.functional.jacobian(columns, x[:, b, c]) for b in range(2) for c in range(3)
    ]
    expected = torch.stack(jacobians).mean(0)  # (6, 6)
    torch.testing.assert_close(mixer.mixing_matrix(x), expected, rtol=1e-4, atol=1e-5)


def test_gelu_slope_is_the_derivative_of_gelu():
    x = torch.linspace(-4, 4, 81, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(torch.nn.functional.gelu(x).sum(), x)
    torch.testing.assert_close(gelu_slope(x.detach()), grad)


@pytest.mark.parametrize("mixer", ["attention", "mlp"])
def test_text_encoder_predicts_every_position_and_shows_its_mixing(mixer):
    encoder = TextEncoder(vocab_size=11, num_tokens=L, mixer=mixer, d_model=D, num_layers=2)
    tokens = torch.randint(11, (B, L))
    assert encoder(tokens).shape == (B, L, 11)
    maps = encoder.token_mixing_maps(tokens)
    assert len(maps) == 2
    expected = (B, 4, L, L) if mixer == "attention" else (L, L)
    assert all(m.shape == expected for m in maps)
    assert (encoder.position_embedding is not None) == (mixer == "attention")


def test_text_encoder_errors_name_the_problem():
    encoder = TextEncoder(vocab_size=11, num_tokens=L, mixer="mlp", d_model=D, num_layers=1)
    with pytest.raises(ValueError, match="built for num_tokens=12"):
        encoder(torch.randint(11, (B, L - 2)))  # MLP mixing: exactly num_tokens
    with pytest.raises(ValueError, match="at most num_tokens=12"):
        encoder(torch.randint(11, (B, L + 1)))
    with pytest.raises(ValueError, match="int64 token ids"):
        encoder(torch.randn(B, L))
    with pytest.raises(ValueError, match="'attention'.*'mlp'.*'conv'"):
        TextEncoder(vocab_size=11, num_tokens=L, mixer="conv")
    with pytest.raises(ValueError, match="num_heads=3 must divide d_model=8"):
        SelfAttention(8, num_heads=3)
    # attention works on shorter sequences (the position embeddings are cut to length)
    attention = TextEncoder(vocab_size=11, num_tokens=L, mixer="attention", d_model=D, num_layers=1)
    assert attention(torch.randint(11, (B, L - 2))).shape == (B, L - 2, 11)
