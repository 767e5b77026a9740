#!/usr/bin/env python3
"""Make the int8 ONNX graphs of a model, calibrated on training photographs and artworks.

    python scripts/quantize.py --model lite --data ../shared/data

Writes models/<name>/int8/{encoder,decoder}.onnx (beside the bundled weights), then
prints the speed of fp32 and int8 ONNX Runtime at 640x480 and the mean absolute difference of
their outputs on held-out eval pairs. Whether int8 is good enough is for scripts/evaluate.py
(--backend onnxruntime-int8) to say.
"""

from realtime.tools.quantize import main

if __name__ == "__main__":
    main()
