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
