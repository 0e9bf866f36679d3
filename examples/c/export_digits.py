"""Write scikit-learn's digits set to the small binary file that digits_era.c reads.

    python3 examples/c/export_digits.py build/digits.bin

The split is fixed: stratified, 30 % test, random_state=0 (the split of
examples/python/classification), so every run of the C example sees the same 1257 training
and 540 test images. Pixels (0..16) are divided by 16, so every feature lies in [0, 1].

File format, all numbers little-endian, nothing between the fields:

    offset  size        field
    0       8           magic b"ERADIGT1"
    8       4           uint32 n_train
    12      4           uint32 n_test
    16      4           uint32 features   (64: 8x8 pixels, row by row)
    20      4           uint32 classes    (10)
    24      4*n*f       float32 train_x   [n_train][features], row-major
    ...     n_train     uint8   train_y   [n_train], each in 0..classes-1
    ...     4*m*f       float32 test_x    [n_test][features]
    ...     n_test      uint8   test_y    [n_test]

and the file ends there (its size is exactly 24 + (n_train + n_test) * (4*features + 1)).
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

MAGIC = b"ERADIGT1"
TEST_FRACTION = 0.3
SPLIT_SEED = 0
PIXEL_MAX = 16.0  # digits pixels are integers 0..16


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} OUTPUT_FILE", file=sys.stderr)
        return 2
    x, y = load_digits(return_X_y=True)
    x = (x / PIXEL_MAX).astype("<f4")
    y = y.astype(np.uint8)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=y
    )
    classes = int(y.max()) + 1
    path = Path(argv[1])
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(MAGIC)
        f.write(struct.pack("<4I", len(y_train), len(y_test), x.shape[1], classes))
        for features, labels in ((x_train, y_train), (x_test, y_test)):
            f.write(np.ascontiguousarray(features, dtype="<f4").tobytes())
            f.write(np.ascontiguousarray(labels, dtype=np.uint8).tobytes())
    print(f"wrote {path}: {len(y_train)} train + {len(y_test)} test images, {x.shape[1]} features, {classes} classes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
