"""Style and content pictures of every common kind, and the Stylizer's size contract."""

import numpy as np
import pytest
from PIL import Image

from realtime.errors import BadImageError, InputNotFoundError, InputTooLargeError
from realtime.images import load_image
from realtime.stylizer import Stylizer


def _base(h=40, w=60):
    rng = np.random.default_rng(0)
    return (rng.random((h, w, 3)) * 255).astype(np.uint8)


def test_modes_become_rgb8(tmp_path):
    rgb = _base()
    Image.fromarray(rgb).convert("L").save(tmp_path / "grey.png")
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg")
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 0, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "clear.png")
    grey16 = (np.linspace(0, 65535, 40 * 60).reshape(40, 60)).astype(np.uint16)
    Image.fromarray(grey16).save(tmp_path / "deep.png")
    Image.fromarray(rgb).convert("P").save(tmp_path / "palette.gif")
    for name in ("grey.png", "cmyk.jpg", "clear.png", "deep.png", "palette.gif"):
        out = load_image(tmp_path / name)
        assert out.dtype == np.uint8 and out.shape == (40, 60, 3), name
    assert (load_image(tmp_path / "clear.png") == 255).all()  # fully transparent -> white
    deep = load_image(tmp_path / "deep.png")
    assert deep[0, 0, 0] == 0 and deep[-1, -1, 0] == 255  # 16-bit range kept, not clipped


def test_exif_rotation_is_applied(tmp_path):
    rgb = _base(20, 50)
    img = Image.fromarray(rgb)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to view"
    img.save(tmp_path / "rot.jpg", exif=exif)
    assert load_image(tmp_path / "rot.jpg").shape == (50, 20, 3)


def test_bad_pictures_are_one_line_errors(tmp_path):
    with pytest.raises(InputNotFoundError):
        load_image(tmp_path / "nope.jpg")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(BadImageError, match="not an image"):
        load_image(tmp_path / "empty.png")
    (tmp_path / "text.jpg").write_text("hello")
    with pytest.raises(BadImageError):
        load_image(tmp_path / "text.jpg")
    good = tmp_path / "half.png"
    Image.fromarray(_base(200, 200)).save(good)
    (tmp_path / "cut.png").write_bytes(good.read_bytes()[:300])
    with pytest.raises(BadImageError):
        load_image(tmp_path / "cut.png")


def test_styles_of_every_kind_drive_the_stylizer(tmp_path, tiny_model):
    rgb = _base()
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg")
    Image.fromarray(rgb).convert("L").save(tmp_path / "grey.png")
    s = Stylizer(tiny_model, device="cpu")
    s.set_style([tmp_path / "cmyk.jpg", tmp_path / "grey.png"], weights=[2, 1])
    out = s.stylize(_base(33, 47))
    assert out.shape == (33, 47, 3) and out.dtype == np.uint8


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (37, 51), (64, 64), (121, 17)])
def test_output_size_equals_input_size(tiny_model, shape):
    s = Stylizer(tiny_model, device="cpu")
    s.set_style(_base())
    out = s.stylize(_base(*shape))
    assert out.shape == (*shape, 3)


def test_alpha_changes_the_output(default_model):
    s = Stylizer(default_model, device="cpu", alpha=0.0)
    frame = _base(64, 64)
    s.set_style(np.full((32, 32, 3), [250, 10, 10], np.uint8))
    a0 = s.stylize(frame).astype(float)
    s.alpha = 1.0
    a1 = s.stylize(frame).astype(float)
    assert np.abs(a0 - a1).mean() > 1.0  # the strength changes the output
    with pytest.raises(ValueError):
        s.alpha = 2


def test_preserve_colour_modes(default_model, tiny_model):
    frame = _base(48, 64)
    style = np.full((32, 32, 3), [250, 10, 10], np.uint8)
    outs = {}
    for mode in (None, "luminance", "match"):
        s = Stylizer(default_model, device="cpu", preserve_color=mode)
        s.set_style(style)
        outs[mode] = s.stylize(frame)
        assert outs[mode].shape == frame.shape
    # luminance mode keeps the content's chroma: its mean colour is closer to the content's
    def chroma(x):
        x = x.astype(float)
        return x - x.mean(axis=2, keepdims=True)
    err = {m: np.abs(chroma(o).mean((0, 1)) - chroma(frame).mean((0, 1))).sum() for m, o in outs.items()}
    assert err["luminance"] < 0.5 * err[None]
    with pytest.raises(ValueError):
        Stylizer(tiny_model, device="cpu", preserve_color="sepia")


def test_8k_needs_max_size(tiny_model):
    s = Stylizer(tiny_model, device="cpu")
    s.set_style(_base())
    big = np.zeros((4320, 7680, 3), np.uint8)
    with pytest.raises(InputTooLargeError, match="--max-size"):
        s.stylize(big)
    s.max_size = 512
    out = s.stylize(big)
    assert out.shape == big.shape


def test_frame_contract_is_checked(tiny_model):
    s = Stylizer(tiny_model, device="cpu")
    with pytest.raises(RuntimeError, match="set_style"):
        s.stylize(_base())
    s.set_style(_base())
    with pytest.raises(ValueError, match="uint8"):
        s.stylize(_base().astype(np.float32))
    with pytest.raises(ValueError, match="uint8"):
        s.stylize(_base()[..., :2])
