#!/usr/bin/env python3
"""Train (or resume) a student model, then export it to safetensors.

Example (two CPU cores, ~2.5 h):
    python scripts/train.py --run runs/lite --teacher ../shared/weights/vgg16_imagenet_caffe.safetensors \
        --data ../shared/data --export models/lite/model.safetensors --max-minutes 150
Rerunning the same command resumes from runs/lite/last.pt.
"""

from realtime.tools.train.cli import main

if __name__ == "__main__":
    main()
