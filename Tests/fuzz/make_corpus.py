#!/usr/bin/env python3
"""Writes the seed corpus of Tests/fuzz/fuzz_era.c into Tests/fuzz/corpus/ (deterministic).

The first byte of an input picks the entry point (byte % 36, the order of the FN_ enum in
fuzz_era.c), the second the thread count and whether the call is repeated with another one;
the rest drives sizes, parameters and values. Four seeds per entry point, 96..400 bytes each:
one plain (small sizes, default-like parameters, moderate values), three from a fixed
pseudo-random stream.
"""
import os
import random

ENTRY_POINTS = 36
here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "corpus")
os.makedirs(out, exist_ok=True)
rng = random.Random(20251008)
for fn in range(ENTRY_POINTS):
    # plain: small sizes (bytes < 64 give sizes 0..3, 64..242 a 16-bit size), byte 0 picks
    # mostly-default parameters, values from the first finite profiles.
    plain = bytes([fn, 0x01, 70, 5, 0, 70, 40, 1]) + bytes(rng.randrange(0, 128) for _ in range(200))
    seeds = [plain]
    for k in range(3):
        n = rng.randrange(96, 400)
        seeds.append(bytes([fn, rng.randrange(256)]) + bytes(rng.randrange(256) for _ in range(n - 2)))
    for k, data in enumerate(seeds):
        with open(os.path.join(out, "seed-%02d-%d" % (fn, k)), "wb") as f:
            f.write(data)
print("wrote %d seeds to %s" % (ENTRY_POINTS * 4, out))
