// The skip test of the top-k selection (docs/math.md, "Top-k log-probabilities"): most blocks
// of 64 logits hold nothing above the running k-th value, and eight float32 lanes find the
// next block that does.

/// Scans blocks of 64 logits from `from` on: the start of the first group of eight that holds
/// a value above `threshold`, or, when there is none, the start of the first block of 64 that
/// does not fit below `count`; -1 when a value passed over is NaN. The group it returns is not
/// checked for NaN (the caller reads its eight values one at a time).
func firstBlockAbove<L: LogitLanes>(_: L.Type, _ z: UnsafeRawPointer, count: Int, from: Int,
                                    threshold: Float) -> Int {
    let limit = SIMD8<Float>(repeating: threshold)
    var start = from
    while start + 64 <= count {
        var above = SIMDMask<SIMD8<Int32>>(repeating: false)
        var nan = SIMDMask<SIMD8<Int32>>(repeating: false)
        for k in stride(from: start, to: start + 64, by: 8) {
            let v = L.load8(z + k * L.stride)
            above .|= v .> limit
            nan .|= v .!= v
        }
        if any(above) || any(nan) {  // which eight, in order: the first above, or a NaN before it
            for k in stride(from: start, to: start + 64, by: 8) {
                let v = L.load8(z + k * L.stride)
                if any(v .> limit) { return k }
                if any(v .!= v) { return -1 }
            }
        }
        start += 64
    }
    return start
}

/// firstBlockAbove over float32 logits.
@inline(never)
public func firstBlockAbove(_ z: UnsafePointer<Float>, count: Int, from: Int, threshold: Float) -> Int {
    firstBlockAbove(Float32Lanes.self, UnsafeRawPointer(z), count: count, from: from, threshold: threshold)
}

/// firstBlockAbove over bfloat16 logits (raw bits).
@inline(never)
public func firstBlockAbove(bfloat16 z: UnsafePointer<UInt16>, count: Int, from: Int, threshold: Float) -> Int {
    firstBlockAbove(BFloat16Lanes.self, UnsafeRawPointer(z), count: count, from: from, threshold: threshold)
}
