import pytest
import torch

from realtime.adain import (adain, adain_affine, adain_with_stats, blend_alpha, calc_mean_std, keep_content_colour,
                            match_colour, mix_style_stats)


def test_adain_output_has_style_statistics():
    torch.manual_seed(0)
    content = torch.randn(2, 16, 20, 24) * 3 + 1
    style = torch.randn(2, 16, 11, 9) * torch.rand(1, 16, 1, 1) * 5 - 2
    out = adain(content, style)
    om, os_ = calc_mean_std(out)
    sm, ss = calc_mean_std(style)
    # tolerance: float32 arithmetic plus the eps=1e-5 inside the std
    assert torch.allclose(om, sm, atol=1e-4)
    assert torch.allclose(os_, ss, atol=1e-3, rtol=1e-3)


def test_adain_keeps_spatial_structure():
    content = torch.randn(1, 4, 8, 8)
    out = adain(content, torch.randn(1, 4, 5, 5))
    # per channel the map is an increasing affine function of the content
    for c in range(4):
        a, b = content[0, c].flatten(), out[0, c].flatten()
        assert torch.equal(a.argsort(), b.argsort())


def test_shape_checks():
    with pytest.raises(ValueError, match="N, C, H, W"):
        calc_mean_std(torch.zeros(3, 4, 5))
    with pytest.raises(ValueError, match="channels"):
        adain_with_stats(torch.zeros(1, 4, 2, 2), torch.zeros(1, 3, 1, 1), torch.ones(1, 3, 1, 1))


def test_alpha_blends_between_content_and_style():
    c, s = torch.randn(1, 4, 6, 6), torch.randn(1, 4, 6, 6)
    t = adain(c, s)
    assert torch.equal(blend_alpha(c, t, 0.0), c)
    assert torch.allclose(blend_alpha(c, t, 1.0), t)
    assert torch.allclose(blend_alpha(c, t, 0.25), 0.25 * t + 0.75 * c)
    with pytest.raises(ValueError):
        blend_alpha(c, t, 1.5)


def test_affine_form_equals_adain_then_alpha_blend():
    torch.manual_seed(2)
    c = torch.randn(1, 8, 9, 7) * 2 + 1
    content, style = calc_mean_std(c), calc_mean_std(torch.randn(1, 8, 5, 5) * 3 - 1)
    for alpha in (0.0, 0.3, 1.0):
        scale, shift = adain_affine(content, style, alpha)
        expected = blend_alpha(c, adain_with_stats(c, *style, content), alpha)
        assert torch.allclose(c * scale + shift, expected, atol=1e-5)
    with pytest.raises(ValueError, match="alpha"):
        adain_affine(content, style, -0.1)


def test_mixing_stats_equals_mixing_outputs():
    c = torch.randn(1, 8, 10, 10)
    s1, s2 = torch.randn(1, 8, 7, 7) * 2, torch.randn(1, 8, 7, 7) + 3
    st1, st2 = calc_mean_std(s1), calc_mean_std(s2)
    mixed = adain_with_stats(c, *mix_style_stats([st1, st2], [3, 1]))
    expected = 0.75 * adain(c, s1) + 0.25 * adain(c, s2)
    assert torch.allclose(mixed, expected, atol=1e-5)
    with pytest.raises(ValueError, match="weights"):
        mix_style_stats([st1, st2], [1])


def test_keep_content_colour_keeps_chroma_and_output_luma():
    torch.manual_seed(1)
    # mid-grey ranges, so luma + chroma stays inside [0, 1] and no pixel is clipped
    content = torch.rand(1, 3, 16, 16) * 0.2 + 0.4
    stylised = torch.rand(1, 3, 16, 16) * 0.2 + 0.4
    out = keep_content_colour(stylised, content)
    luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    assert torch.allclose((out * luma).sum(1), (stylised * luma).sum(1), atol=1e-4)
    # chroma differences (R - luma, B - luma) follow the content
    def chroma(x):
        y = (x * luma).sum(1, keepdim=True)
        return x - y
    assert torch.allclose(chroma(out), chroma(content), atol=1e-4)


def test_match_colour_matches_mean_and_covariance():
    torch.manual_seed(2)
    src = torch.rand(1, 3, 20, 30)
    tgt = torch.rand(1, 3, 25, 25) * torch.tensor([0.3, 0.5, 0.2]).view(1, 3, 1, 1) + 0.2
    out = match_colour(src, tgt)
    o, t = out[0].reshape(3, -1).double(), tgt[0].reshape(3, -1).double()
    assert torch.allclose(o.mean(1), t.mean(1), atol=1e-3)
    assert torch.allclose(torch.cov(o), torch.cov(t), atol=2e-3)
