"""Loading the paper's pretrained weights through timm, tested without any download.

The hub cannot be reached from CI, so the download is replaced by a randomly initialised timm
model (the loading path) or by the error the hub client raises offline (the offline path).
"""

import socket

import pytest
import timm
import torch
from huggingface_hub.errors import LocalEntryNotFoundError
from timm.models.mlp_mixer import MlpMixer as TimmMlpMixer

from mixer_edu import MlpMixer, model_config
from mixer_edu.tools import pretrained

from .helpers import randomize_


def _small_timm_mixer():
    """A timm Mixer with a non-default shape everywhere, random weights (no zero head)."""
    model = TimmMlpMixer(
        num_classes=7, img_size=48, patch_size=8, num_blocks=2, embed_dim=24, mlp_ratio=(1.0, 2.0)
    )
    return randomize_(model).eval()


@pytest.fixture
def hub(monkeypatch):
    """Replace the hub: `hub.reply` is what timm.create_model(pretrained=True) returns or raises."""

    class Hub:
        reachable = True
        cached = None
        reply = None
        calls = []

    def create_model(name, pretrained=False, **kwargs):
        Hub.calls.append((name, pretrained, kwargs))
        if isinstance(Hub.reply, BaseException):
            raise Hub.reply
        return Hub.reply

    monkeypatch.setattr(timm, "create_model", create_model)
    monkeypatch.setattr(pretrained, "hub_reachable", lambda *args, **kwargs: Hub.reachable)
    monkeypatch.setattr(pretrained, "cached_weights", lambda name: Hub.cached)
    Hub.calls = []
    return Hub


def test_from_timm_gives_the_same_outputs_as_timm():
    theirs = _small_timm_mixer()
    ours = pretrained.from_timm(theirs)
    assert isinstance(ours, MlpMixer) and not ours.training
    images = torch.randn(3, 3, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(ours(images), theirs(images), rtol=0, atol=1e-5)


def test_from_timm_rebuilds_a_paper_architecture_with_our_configuration():
    # timm's mixer_s32_224 with two of its eight blocks (to keep the test fast).
    theirs = TimmMlpMixer(num_classes=5, patch_size=32, num_blocks=2, embed_dim=512)
    config = pretrained.mixer_config_from_timm(theirs)
    expected = model_config("mixer_s32_224", num_classes=5, num_blocks=2)
    assert config == {**expected, "mlp_ratio": (0.5, 4.0), "global_pool": "avg"}
    ours = pretrained.from_timm(randomize_(theirs))
    images = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(images), theirs.eval()(images), rtol=0, atol=1e-5)


def test_load_pretrained_downloads_through_timm_and_returns_our_model(hub, capsys):
    hub.reply = _small_timm_mixer()
    model = pretrained.load_pretrained("mixer_b16_224.goog_in21k")
    assert hub.calls == [("mixer_b16_224.goog_in21k", True, {})]
    images = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(model(images), hub.reply(images), rtol=0, atol=1e-5)
    assert "Loaded Mixer-B/16" in capsys.readouterr().out


def test_load_pretrained_uses_cached_weights_without_the_network(hub, tmp_path):
    hub.reachable = False  # would skip, if the cache were not used
    hub.cached = tmp_path / "model.safetensors"
    hub.reply = _small_timm_mixer()
    assert pretrained.load_pretrained("mixer_b16_224.goog_in21k") is not None
    (_, _, kwargs) = hub.calls[0]
    assert kwargs == {"pretrained_cfg_overlay": {"file": str(hub.cached)}}


def test_offline_download_failure_says_so_in_one_sentence_and_returns_none(hub, capsys):
    hub.reply = LocalEntryNotFoundError("Please check your connection")  # what the hub raises
    assert pretrained.load_pretrained() is None
    out = capsys.readouterr().out.strip()
    assert len(out.splitlines()) == 1
    assert pretrained.DEFAULT_WEIGHTS in out
    assert "needs internet access" in out and "nothing else is affected" in out


def test_unreachable_hub_skips_without_trying_to_download(hub, capsys):
    hub.reachable = False
    assert pretrained.load_pretrained() is None
    assert hub.calls == []
    assert "cannot be reached" in capsys.readouterr().out


def test_hub_reachable_is_false_when_no_connection_can_be_opened(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(pretrained.urllib.request, "getproxies", lambda: {})
    assert pretrained.hub_reachable() is False
    # Behind a proxy a direct connection proves nothing: the hub client is left to try.
    monkeypatch.setattr(
        pretrained.urllib.request, "getproxies", lambda: {"https": "http://proxy:3128"}
    )
    assert pretrained.hub_reachable() is True


def test_an_unknown_weights_name_is_a_value_error_listing_the_known_ones():
    with pytest.raises(ValueError, match=r"'mixer_b16_224\.nope'.*mixer_b16_224\.goog_in21k"):
        pretrained.load_pretrained("mixer_b16_224.nope")
    with pytest.raises(ValueError, match="not a pretrained MLP-Mixer"):
        pretrained.load_pretrained("resnet18.a1_in1k")


def test_timm_models_that_are_not_plain_mixers_are_a_type_error():
    gmlp = TimmMlpMixer(
        img_size=32,
        patch_size=8,
        num_blocks=1,
        embed_dim=16,
        block_layer=timm.models.mlp_mixer.SpatialGatingBlock,
        mlp_layer=timm.layers.GatedMlp,
        mlp_ratio=6,
    )
    with pytest.raises(TypeError, match="SpatialGatingBlock"):
        pretrained.from_timm(gmlp)
    with pytest.raises(TypeError, match="expected a timm MLP-Mixer"):
        pretrained.from_timm(torch.nn.Linear(2, 2))


def test_describe_weights_names_the_model_and_who_trained_it():
    label = pretrained.describe_weights("mixer_b16_224.goog_in21k_ft_in1k")
    assert label.startswith("Mixer-B/16 (mixer_b16_224.goog_in21k_ft_in1k")
    assert "Google's ImageNet-21k weights, fine-tuned on ImageNet-1k" in label
