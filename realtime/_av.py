"""PyAV, always loaded after OpenCV.

With PyAV's bundled FFmpeg libraries loaded first, OpenCV's Qt window never opens
(`cv2.namedWindow` blocks forever; measured with opencv-python 5.0 and av 18.1); loading cv2
first avoids it. Every module of this package gets PyAV from here.
"""

from __future__ import annotations


def import_av():
    import cv2  # noqa: F401 - order matters, see the module docstring

    import av

    return av


def video_frame(av, rgb, pix_fmt: str):
    """A PyAV VideoFrame of a uint8 RGB image, ready for an encoder that takes pix_fmt.

    yuv420p is made here with OpenCV: FFmpeg's swscale, which the encoder would otherwise use,
    took 4.8 ms to convert a 640x360 RGB frame on two cores; this takes 0.4 ms. The result is
    BT.601 limited range, as swscale's default (the same luma within 0.03 grey levels; the
    chroma is the 2x2 mean, within 0.3 levels of swscale's on smooth images). Other formats and
    odd sizes go through swscale in the encoder.
    """
    import cv2
    import numpy as np

    h, w = rgb.shape[:2]
    rgb = np.ascontiguousarray(rgb)
    if pix_fmt != "yuv420p" or h % 2 or w % 2:
        return av.VideoFrame.from_ndarray(rgb, format="rgb24")
    i420 = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)  # its luma is right; its chroma is point-sampled
    ycrcb = cv2.cvtColor(cv2.resize(rgb, (w // 2, h // 2), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2YCrCb)
    ycrcb = cv2.convertScaleAbs(ycrcb, alpha=224 / 255, beta=128 * (1 - 224 / 255))  # full -> limited chroma range
    chroma = i420[h:].reshape(2, -1)
    chroma[0] = ycrcb[..., 2].reshape(-1)  # U = Cb
    chroma[1] = ycrcb[..., 1].reshape(-1)  # V = Cr
    return av.VideoFrame.from_ndarray(i420, format="yuv420p")
