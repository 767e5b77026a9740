#!/usr/bin/env python3
"""Average the weights of exported models of one network: see realtime/tools/train/average.py.

    python scripts/average_models.py runs/a.safetensors runs/b.safetensors -o runs/mix.safetensors
"""

from realtime.tools.train.average import main

if __name__ == "__main__":
    main()
