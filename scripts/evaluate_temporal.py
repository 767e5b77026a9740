#!/usr/bin/env python3
"""Temporal consistency of per-frame output, the naive 0.6 pixel blend, and our smoothing.

    python scripts/evaluate_temporal.py --data ../shared/data \
        --teacher ../shared/weights/vgg16_imagenet_caffe.safetensors --out eval/temporal

Clips are resized to --width px wide (640 keeps the 640x480 clip native). Writes
OUT/report.json and OUT/moving_region.png (input / per-frame / blend / ours).
"""

from realtime.tools.temporal_eval import main

if __name__ == "__main__":
    main()
