#!/usr/bin/env python3
"""Writes the seed corpus of Tests/fuzz/fuzz_era.c into Tests/fuzz/corpus/ (deterministic).

The first byte of an input picks the entry point (fn_of_byte in fuzz_era.c: the FN_ enum's
order; byte % 36 for the first 36 entry points, as before the fused linear heads were added,
and the bytes 36..38 and 232..255 for those three), the second the thread count and whether
the call is repeated with another one; the rest drives sizes, parameters and values. The
eight truncated-normal entry points (39..46) start with the bytes 210..222 and 225..231,
which no committed input used; their seeds start with 210..217. The eight entry points of
the truncated-normal entropy gradient and the sampled floor (47..54) start with the bytes
39..62; their seeds start with 39..46. Those of the tanh-Gaussian entropy gradient and the
tanh sampled floor (55..62) start with the bytes 78..101; their seeds start with 78..85.
Four seeds per entry point, 96..400 bytes each: one plain (small sizes, default-like
parameters, moderate values), three from a fixed pseudo-random stream. The three fused
linear heads (entry points 36..38) get four more each, aimed at their edges: a vocabulary
across the 2048-entry tile chunks, dim above INT32_MAX, huge values (logits beyond float32),
tokens across the 128-token block (classification: more classes, dim above INT32_MAX, huge
values, rows across 128), and for the LLM heads a fifth: 33769 entries, 17 chunks in 16 groups. The seeds of the first 36 entry points are the same bytes as
before: the stream is drawn in the same order, and the new seeds come after it. Last, the
top-k variants: six encoded calls per LLM head (top_k 20, 1, 5, vocab, across 128 tokens,
and 0) and four random streams per logprob entry point (seed-topk-*).
"""
import os
import random
import struct

ENTRY_POINTS = 36          # the entry points before the fused linear heads
LINEAR_HEADS = (36, 37, 38)  # FN_LINF, FN_LINB, FN_LCE
here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "corpus")
os.makedirs(out, exist_ok=True)


TRUNCATED_NORMAL = range(39, 47)  # FN_TNS_F32 .. FN_TNLPB_F64, first bytes 210..217


def fn_of_byte(b):
    """fuzz_era.c's fn_of_byte."""
    if b < 39:
        return b
    if b < 63:
        return 47 + (b - 39) % 8
    if 78 <= b <= 101:
        return 55 + (b - 78) % 8
    if b >= 232:
        return 36 + (b - 232) % 3
    if 210 <= b <= 222:
        return 39 + (b - 210) % 8
    if 225 <= b <= 231:
        return 39 + (b - 225 + 5) % 8
    return b % 36


# Every committed input decodes to the entry point it did when the mapping was byte % 36.
for name in sorted(os.listdir(os.path.join(here, "regressions"))):
    path = os.path.join(here, "regressions", name)
    if name.startswith("README") or not os.path.isfile(path):
        continue
    with open(path, "rb") as f:
        first = f.read(1)
    # (inputs of the fused linear heads, bytes 36..38 and 232..255, of the sampled floor's
    # entry points, bytes 39..62, and of the tanh floor's, bytes 78..101, were written after
    # that mapping)
    assert not first or fn_of_byte(first[0]) == first[0] % 36 or 36 <= first[0] < 63 or 78 <= first[0] <= 101 \
        or first[0] >= 232, \
        "regression input %s changes entry point" % name

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
written = ENTRY_POINTS * 4

# The fused linear heads, after the stream of the first 36 entry points. Their plain seeds
# are encoded for fuzz_era.c's decoder (setup_linear_llm / setup_linear_ce) so that they make
# a successful call: after the first two bytes, tokens or rows (gen_size: < 64 gives 0..3),
# the 128-block extension byte (>= 248: 120 + next % 16), dim (< 64: 1 + b % 4; 236..247
# special), vocab or classes (64..199: a 16-bit size follows; 200..239 larger), then
# (classification) mode, tau, target and params-NULL bytes, then the arrays.
def values(n, amp=512):
    """fill_values, profile 0 (P_MOD): profile, knob, special_at (u32), masked_row, then per
    element a class byte (< 230: C_MOD) and an int16 / 256 (here within +-amp/256, +-2)."""
    out = bytes([0, 0, 0, 0, 0, 0, 0])
    for _ in range(n):
        out += bytes([rng.randrange(0, 230)]) + struct.pack("<h", rng.randrange(-amp, amp))
    return out


def ids(n, hi):
    """fill_ids, profile 100 (uniform in range): profile, bad_at (u32), one u32 per id."""
    return bytes([100, 0, 0, 0, 0]) + b"".join(struct.pack("<I", rng.randrange(hi)) for _ in range(n))


def header(fn, tokens=(3, 0), dim=(2,), outputs=(70, 20, 0)):
    head = bytes([fn, 0x01]) + bytes(tokens) + bytes(dim) + bytes(outputs)
    if fn == 38:  # EXACT (mode 0), tau 4 (byte < 128), H0 inside the feasible range, params given
        head += bytes([0, 0, 10, 0x80, 0x80, 100])
    return head


def plain_call(fn, tokens, dim, outputs, tokens_bytes=None):
    """A whole successful call: sizes (outputs in 1..300), moderate values, valid labels, all
    optional arrays given, no NULL."""
    size = bytes([70]) + struct.pack("<H", outputs - (1 if fn != 38 else 2))
    data = header(fn, tokens=tokens_bytes or (tokens, 0), dim=(dim - 1,), outputs=size)
    data += values(tokens * dim) + values(outputs * dim)
    if fn == 38:
        data += values(outputs) + bytes([200])  # bias, given
        data += ids(tokens, outputs) + bytes([0, 200])  # labels; every gradient; no NULL
    else:
        data += ids(tokens, outputs) + bytes([100, 0, 0, 0, 0]) + bytes([1] * tokens)  # scales from {1, 2, ...}
        data += bytes([200])  # scales given
        if fn == 36:
            data += bytes([200, 200])  # entropies given; no NULL
        else:
            data += bytes([0]) + b"".join(struct.pack("<h", rng.randrange(-8192, 8192)) for _ in range(tokens))
            data += bytes([200, 200])  # both gradients; no NULL
    return data + bytes(rng.randrange(0, 256) for _ in range(16))  # the checks' samples


for fn in LINEAR_HEADS:
    seeds = [plain_call(fn, 3, 3, 21)]
    for k in range(3):
        n = rng.randrange(96, 400)
        seeds.append(bytes([fn, rng.randrange(256)]) + bytes(rng.randrange(256) for _ in range(n - 2)))
    # across the 2048-entry chunks (vocab 2049) / 301..1000 classes (312); the values past
    # the input's end come from the harness's generator
    seeds.append(header(fn, outputs=(200, 2)) + values(9) + bytes(rng.randrange(0, 128) for _ in range(200)))
    # dim = INT32_MAX + 1: BAD_SHAPE before any array is read
    seeds.append(header(fn, dim=(239,)) + bytes(rng.randrange(0, 128) for _ in range(60)))
    # huge values: the first value profile 131 (P_HUGE: FLT_MAX, 1e38, 1e30, ...)
    seeds.append(header(fn) + bytes([131]) + bytes(rng.randrange(0, 128) for _ in range(200)))
    # 130 tokens (rows): across the 128-token block
    seeds.append(plain_call(fn, 130, 2, 7, tokens_bytes=(3, 255, 10)))
    if fn != 38:  # 33769 entries, 17 chunks in 16 groups (2 tokens, dim 1)
        seeds.append(header(fn, tokens=(2, 0), dim=(0,), outputs=(200, 240, 0xE8, 0x03)) + values(2) +
                     bytes(rng.randrange(0, 128) for _ in range(100)))
    for k, data in enumerate(seeds):
        assert fn_of_byte(data[0]) == fn
        with open(os.path.join(out, "seed-%02d-%d" % (fn, k)), "wb") as f:
            f.write(data)
    written += len(seeds)
# The top-k variants (fuzz_era.c, gen_topk: one byte after the arrays, >= 205 switches the
# logprob and LLM-head inputs to era_llm_topk_logprob_* / era_llm_linear_topk_logprob_*, then
# top_k). After the streams above, so that every earlier seed keeps its bytes.
def topk_bytes(k, vocab):
    """gen_topk: on, then (byte >= 40) a u16 with 1 + u16 % (vocab + 1) == k."""
    return bytes([255, 60]) + struct.pack("<H", k - 1)


for fn in (36, 37):
    seeds = []
    for k, vocab in ((20, 21), (1, 21), (5, 21), (21, 21)):  # 21 = vocab: the full log-softmax
        call = plain_call(fn, 3, 3, vocab)
        seeds.append(call[:-16] + topk_bytes(k, vocab) + call[-16:])
    call = plain_call(fn, 130, 2, 7, tokens_bytes=(3, 255, 10))  # across the 128-token block
    seeds.append(call[:-16] + topk_bytes(3, 7) + call[-16:])
    call = plain_call(fn, 3, 3, 21)
    seeds.append(call[:-16] + bytes([255, 0]) + call[-16:])  # top_k = 0: BAD_PARAMETER
    for k, data in enumerate(seeds):
        with open(os.path.join(out, "seed-topk-%02d-%d" % (fn, k)), "wb") as f:
            f.write(data)
    written += len(seeds)
# The logprob entry points (28..31): random streams, about one call in five of them top-k.
for fn in range(28, 32):
    for k in range(4):
        n = rng.randrange(96, 400)
        data = bytes([fn, rng.randrange(256)]) + bytes(rng.randrange(256) for _ in range(n - 2))
        with open(os.path.join(out, "seed-topk-%02d-%d" % (fn, k)), "wb") as f:
            f.write(data)
        written += 1
# The truncated-normal policy, after the stream of the fused linear heads: a plain seed
# (small sizes, the interval [-1, 1], policy-like values) and three from the stream each.
for fn in TRUNCATED_NORMAL:
    first = 210 + fn - 39
    plain = bytes([first, 0x01, 70, 5, 0, 70, 40, 1, 0]) + bytes(rng.randrange(0, 128) for _ in range(300))
    seeds = [plain]
    for k in range(3):
        n = rng.randrange(96, 400)
        seeds.append(bytes([first, rng.randrange(256)]) + bytes(rng.randrange(256) for _ in range(n - 2)))
    for k, data in enumerate(seeds):
        assert fn_of_byte(data[0]) == fn
        with open(os.path.join(out, "seed-%02d-%d" % (fn, k)), "wb") as f:
            f.write(data)
    written += len(seeds)

# The truncated-normal entropy gradient and the sampled floor (entry points 47..54, first bytes 39..46: the
# gradient f32/f64, forward f32/f64, backward f32/f64, check f32/f64), after the stream of the
# linear heads. The plain seeds decode to a successful call (3 rows, 2 dims, [-1, 1], the
# defaults with H0 = -0.5 dim, values within +-2); a second one puts the target 1e-3 below
# the supremum 2 log 2 (the offset's solve near saturation); three from the stream.
SAMPLED = range(47, 55)
for fn in SAMPLED:
    first = fn - 8
    sizes = bytes([first, 0x01, 3, 2])
    if fn in (47, 48):  # setup_tn_backward: interval, loc, log_std, grad_entropy, alias, NULL
        plain = sizes + bytes([0]) + values(6) + values(6) + values(3) + bytes([100, 200])
        near = sizes + bytes([3]) + values(6) + values(6) + values(3) + bytes([0, 200])  # [0, 1], in place
    elif fn in (53, 54):  # setup_sampled_check: params, interval, params given, tol, loc, log_std, report
        plain = sizes + bytes([0, 0, 0, 0, 100, 0]) + values(6) + values(6) + bytes([200])
        near = sizes + bytes([0, 0, 0, 16, 100, 0]) + values(6) + values(6) + bytes([200])  # [-2, 2]
    else:  # setup_sampled: params, interval, target byte, params given, std logits, loc, ...
        tail = (values(6) + bytes([100, 200])) if fn in (51, 52) else bytes([100, 200])
        plain = sizes + bytes([0, 0, 0, 0, 0, 100]) + values(6) + values(6) + tail
        near = sizes + bytes([0, 0, 0, 0, 202, 2, 100]) + values(6) + values(6) + tail  # target 1e-3 below 2 log 2
    seeds = [plain + bytes(rng.randrange(0, 256) for _ in range(40)), near + bytes(rng.randrange(0, 256) for _ in range(40))]
    for k in range(3):
        n = rng.randrange(96, 400)
        seeds.append(bytes([first, rng.randrange(256)]) + bytes(rng.randrange(256) for _ in range(n - 2)))
    for k, data in enumerate(seeds):
        assert fn_of_byte(data[0]) == fn
        with open(os.path.join(out, "seed-%02d-%d" % (fn, k)), "wb") as f:
            f.write(data)
    written += len(seeds)

# The tanh-Gaussian entropy gradient and the tanh sampled floor (entry points 55..62, first
# bytes 78..85: the gradient f32/f64, forward f32/f64, backward f32/f64, check f32/f64), after
# the stream above. Plain seeds decode to a successful call (3 rows, 2 dims, the defaults with
# H0 = -0.5 dim, means within +-0.5, so that every row reaches H0: offsets c > 0); a second one
# has log stds clipped at -1e-3 (std 1, beyond the peak at mean 0, std 0.874), means within
# +-0.008 and H0 + delta 1e-3 a dimension below the peak: offsets c < 0; a third puts the
# target 0.5 a dimension below the peak (the gradient: in place, with a wide log std).
TANH = range(55, 63)
for fn in TANH:
    first = fn + 23
    sizes = bytes([first, 0x01, 3, 2])
    if fn in (55, 56):  # setup_tanh_backward: mean, log_std, grad_entropy, alias, NULL
        seeds = [sizes + values(6) + values(6) + values(3) + bytes([100, 200]),
                 sizes + values(6, 128) + values(6, 1024) + values(3) + bytes([0, 200]),  # in place, stds to e^4
                 sizes + values(6, 4) + values(6, 64) + values(3) + bytes([1, 200])]  # at the peak's std
    elif fn in (61, 62):  # setup_tanh_check: params, target byte, params given, tol, mean, log_std, report
        seeds = [sizes + bytes([0, 0, 0, 0, 100, 0]) + values(6, 128) + values(6) + bytes([200]),
                 sizes + bytes([4, 0, 0, 201, 100, 0]) + values(6, 2) + values(6, 2) + bytes([200]),  # at the true peak
                 sizes + bytes([0, 0, 0, 200, 100, 0]) + values(6, 128) + values(6) + bytes([200])]  # 1.2e-5 above the peak
    else:  # setup_tanh_floor: params, target byte, params given, std logits, mean, ...
        tail = (values(6) + bytes([100, 200])) if fn in (59, 60) else bytes([100, 200])
        seeds = [sizes + bytes([0, 0, 0, 0, 100]) + values(6) + values(6, 128) + tail,
                 sizes + bytes([4, 0, 0, 201, 2, 100]) + values(6) + values(6, 2) + tail,
                 sizes + bytes([0, 0, 0, 201, 7, 100]) + values(6) + values(6, 128) + tail]
    seeds = [data + bytes(rng.randrange(0, 256) for _ in range(40)) for data in seeds]
    for k in range(3):
        n = rng.randrange(96, 400)
        seeds.append(bytes([first, rng.randrange(256)]) + bytes(rng.randrange(256) for _ in range(n - 2)))
    for k, data in enumerate(seeds):
        assert fn_of_byte(data[0]) == fn
        with open(os.path.join(out, "seed-%02d-%d" % (fn, k)), "wb") as f:
            f.write(data)
    written += len(seeds)
print("wrote %d seeds to %s" % (written, out))
