import warnings

import pytest

from interp.checkpoints.hooks import act_name, hook_layer, mlp_hooks


@pytest.mark.parametrize("name", ["pre", "post", "mlp_pre", "mlp_post", "resid_pre", "resid_mid", "resid_post",
                                  "attn_out", "mlp_out", "q", "k", "v", "z", "result", "pattern", "attn",
                                  "attn_scores"])
def test_act_name_agrees_with_transformer_lens(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from transformer_lens.utils import get_act_name
    for layer in (0, 3):
        assert act_name(name, layer) == get_act_name(name, layer)


def test_top_level_hooks_and_layers():
    from transformer_lens.utils import get_act_name

    assert act_name("embed") == get_act_name("embed") == "hook_embed"
    assert act_name("pos_embed") == get_act_name("pos_embed")
    assert mlp_hooks(2, "pre") == ("blocks.0.mlp.hook_pre", "blocks.1.mlp.hook_pre")
    assert hook_layer("blocks.12.attn.hook_z") == 12 and hook_layer("hook_embed") is None
    with pytest.raises(KeyError, match="known"):
        act_name("nonsense", 0)
    with pytest.raises(ValueError, match="layer"):
        act_name("post")
