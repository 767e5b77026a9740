"""The evaluation peers (realtime.tools.peers): MicroAST from ../shared/peers/microast."""

import shutil

import numpy as np
import pytest

from conftest import SHARED, pattern, real_image

MICROAST = SHARED / "peers" / "microast"
needs_microast = pytest.mark.skipif(not (MICROAST / "net_microAST.py").exists(),
                                    reason="../shared/peers/microast is absent (CI has it)")


@needs_microast
def test_microast_stylises_any_size_and_follows_the_style(tmp_path):
    from realtime.images import save_image
    from realtime.tools.peers import MicroAST

    peer = MicroAST(MICROAST)
    warm, cold = tmp_path / "warm.png", tmp_path / "cold.png"
    save_image(warm, np.clip(pattern(64, 64) * [1.0, 0.5, 0.2], 0, 255).astype(np.uint8))
    save_image(cold, np.clip(pattern(64, 64) * [0.2, 0.5, 1.0], 0, 255).astype(np.uint8))
    frame = real_image(90, 118)  # not a multiple of 4: padded and cropped back
    out_warm = peer.run(frame, peer.style(warm))
    out_cold = peer.run(frame, peer.style(cold))
    assert out_warm.shape == frame.shape and out_warm.dtype == np.uint8
    red_minus_blue = [float(o[..., 0].mean()) - float(o[..., 2].mean()) for o in (out_warm, out_cold)]
    assert red_minus_blue[0] > red_minus_blue[1] + 20


@needs_microast
def test_microast_weights_are_checked_against_their_sums(tmp_path):
    from realtime.tools.peers import MicroAST, PeerUnavailableError

    copy = tmp_path / "microast"
    shutil.copytree(MICROAST, copy)
    weights = copy / "models" / "decoder_iter_160000.pth.tar"
    weights.chmod(0o644)
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(PeerUnavailableError, match="sha256"):
        MicroAST(copy)
    with pytest.raises(PeerUnavailableError, match="not found"):
        MicroAST(tmp_path / "nowhere")
