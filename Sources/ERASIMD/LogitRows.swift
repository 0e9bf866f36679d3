// Vector kernels of the LLM passes over one row of logits (docs/math.md 3, "Efficiency";
// "Vector kernels"): softmax statistics of s*z, and the log-prob gradient row. float32 or
// bfloat16 storage, four values per step, widened to double before anything is rounded:
// v = s*z is exact in double (a 24-bit by 24-bit product), the shift v - max rounds once in
// double, exp4 is accurate to a few ulp, and the sums are double.

/// Logits widened from their storage: eight as float32 lanes (for the max), four as doubles.
protocol LogitLanes {
    static func load8(_ p: UnsafeRawPointer) -> SIMD8<Float>
    static func load4(_ p: UnsafeRawPointer) -> SIMD4<Double>
    static func scalar(_ p: UnsafeRawPointer, _ i: Int) -> Float
    static var stride: Int { get }
}

enum Float32Lanes: LogitLanes {
    @inline(__always) static func load8(_ p: UnsafeRawPointer) -> SIMD8<Float> { p.loadUnaligned(as: SIMD8<Float>.self) }
    @inline(__always) static func load4(_ p: UnsafeRawPointer) -> SIMD4<Double> {
        SIMD4<Double>(p.loadUnaligned(as: SIMD4<Float>.self))
    }
    @inline(__always) static func scalar(_ p: UnsafeRawPointer, _ i: Int) -> Float { p.loadUnaligned(fromByteOffset: 4 * i, as: Float.self) }
    static var stride: Int { 4 }
}

enum BFloat16Lanes: LogitLanes {
    /// bfloat16 is the upper half of a float32: widen and shift.
    @inline(__always) static func load8(_ p: UnsafeRawPointer) -> SIMD8<Float> {
        let bits = SIMD8<UInt32>(truncatingIfNeeded: p.loadUnaligned(as: SIMD8<UInt16>.self))
        return unsafeBitCast(bits &<< 16, to: SIMD8<Float>.self)
    }
    @inline(__always) static func load4(_ p: UnsafeRawPointer) -> SIMD4<Double> {
        let bits = SIMD4<UInt32>(truncatingIfNeeded: p.loadUnaligned(as: SIMD4<UInt16>.self))
        return SIMD4<Double>(unsafeBitCast(bits &<< 16, to: SIMD4<Float>.self))
    }
    @inline(__always) static func scalar(_ p: UnsafeRawPointer, _ i: Int) -> Float {
        Float(bitPattern: UInt32(p.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16)
    }
    static var stride: Int { 2 }
}

@inline(__always)
func widen(_ v: SIMD4<Float>) -> SIMD4<Double> { SIMD4<Double>(v) }

@inline(__always)
func narrow(_ v: SIMD4<Double>) -> SIMD4<Float> { SIMD4<Float>(v) }

/// Row maximum of the raw logits, or NaN when a logit is NaN or +inf.
@inline(__always)
func rowMaximum<L: LogitLanes>(_: L.Type, _ z: UnsafeRawPointer, count: Int) -> Float {
    var maximum = SIMD8<Float>(repeating: -.infinity)
    var finite = SIMDMask<SIMD8<Int32>>(repeating: true)
    let infinity = SIMD8<Float>(repeating: .infinity)
    var i = 0
    while i + 8 <= count {
        let v = L.load8(z + i * L.stride)
        finite .&= v .< infinity  // false for NaN and +inf
        maximum.replace(with: v, where: v .> maximum)
        i += 8
    }
    guard all(finite) else { return .nan }
    var m = maximum.max()
    while i < count {
        let v = L.scalar(z, i)
        guard v < .infinity else { return .nan }
        m = Swift.max(m, v)
        i += 1
    }
    return m
}

/// (maximum M of s*z, S = sum exp(s*z - M), T = sum (s*z - M) exp(s*z - M)); M is NaN when a
/// logit is NaN or +inf and -inf when all are -inf (masked). Differences below
/// smallestExpArgument count as -inf, as in the scalar kernels (their terms are below 1e-307).
@inline(__always)
func statistics<L: LogitLanes>(_: L.Type, _ z: UnsafeRawPointer, count: Int, scale: Double) -> (Double, Double, Double) {
    let rawMaximum = rowMaximum(L.self, z, count: count)
    guard rawMaximum > -.infinity else { return (Double(rawMaximum), 0, 0) }  // NaN or all masked
    let maximum = scale * Double(rawMaximum)
    let s = SIMD4<Double>(repeating: scale), negativeMaximum = SIMD4<Double>(repeating: -maximum)
    let floor = SIMD4<Double>(repeating: smallestExpArgument)
    var sumExp = SIMD4<Double>(), sumShifted = SIMD4<Double>()
    var i = 0
    while i + 4 <= count {
        let d = negativeMaximum.addingProduct(s, L.load4(z + i * L.stride))
        let e = exp4(d)
        sumExp += e
        sumShifted = sumShifted.addingProduct(d.replacing(with: floor, where: d .< floor), e)
        i += 4
    }
    var total = sumExp.sum(), shifted = sumShifted.sum()
    while i < count {
        let d = scale * Double(L.scalar(z, i)) - maximum
        if d >= smallestExpArgument {
            let e = exp4(SIMD4(repeating: d))[0]
            total += e
            shifted += d * e
        }
        i += 1
    }
    return (maximum, total, shifted)
}

/// Softmax statistics of scale*z over a row of float32 logits; see `statistics`.
@inline(never)
public func logitStatistics(_ z: UnsafePointer<Float>, count: Int, scale: Double) -> (maximum: Double, sumExp: Double, sumShiftedTimesExp: Double) {
    statistics(Float32Lanes.self, UnsafeRawPointer(z), count: count, scale: scale)
}

/// Softmax statistics of scale*z over a row of bfloat16 logits (raw bits); see `statistics`.
@inline(never)
public func logitStatistics(bfloat16 z: UnsafePointer<UInt16>, count: Int, scale: Double) -> (maximum: Double, sumExp: Double, sumShiftedTimesExp: Double) {
    statistics(BFloat16Lanes.self, UnsafeRawPointer(z), count: count, scale: scale)
}

/// out[i] = gradScale * (1{i == label} - exp(scale*z_i - maximum) * inverseSum) for one row, in
/// double, rounded once to float32. `out` may be `z` (each step reads its lanes before writing).
@inline(never)
public func logprobGradientRow(_ z: UnsafePointer<Float>, count: Int, scale: Double, maximum: Double,
                               inverseSum: Double, gradScale: Double, label: Int, out: UnsafeMutablePointer<Float>) {
    let labelValue = gradScale * (1 - exp4(SIMD4(repeating: scale * Double(z[label]) - maximum))[0] * inverseSum)
    gradientRow(Float32Lanes.self, UnsafeRawPointer(z), count: count, scale: scale, maximum: maximum,
                inverseSum: inverseSum, gradScale: gradScale) { i, values in
        UnsafeMutableRawPointer(out + i).storeBytes(of: narrow(values), as: SIMD4<Float>.self)
    } scalar: { i, value in
        out[i] = Float(value)
    }
    out[label] = Float(labelValue)
}

/// The same for bfloat16 logits and gradients (raw bits), each gradient rounded once from double
/// to bfloat16, to nearest even.
@inline(never)
public func logprobGradientRow(bfloat16 z: UnsafePointer<UInt16>, count: Int, scale: Double, maximum: Double,
                               inverseSum: Double, gradScale: Double, label: Int, out: UnsafeMutablePointer<UInt16>) {
    let labelLogit = Double(BFloat16Lanes.scalar(UnsafeRawPointer(z), label))
    let labelValue = gradScale * (1 - exp4(SIMD4(repeating: scale * labelLogit - maximum))[0] * inverseSum)
    gradientRow(BFloat16Lanes.self, UnsafeRawPointer(z), count: count, scale: scale, maximum: maximum,
                inverseSum: inverseSum, gradScale: gradScale) { i, values in
        UnsafeMutableRawPointer(out + i).storeBytes(of: bfloat16Bits(values), as: SIMD4<UInt16>.self)
    } scalar: { i, value in
        out[i] = bfloat16Bits(SIMD4(repeating: value))[0]
    }
    out[label] = bfloat16Bits(SIMD4(repeating: labelValue))[0]
}

/// -gradScale * softmax for every entry, four at a time (`store`) and one at a time (`scalar`).
@inline(__always)
func gradientRow<L: LogitLanes>(_: L.Type, _ z: UnsafeRawPointer, count: Int, scale: Double, maximum: Double,
                                inverseSum: Double, gradScale: Double,
                                store: (Int, SIMD4<Double>) -> Void, scalar: (Int, Double) -> Void) {
    let s = SIMD4<Double>(repeating: scale), negativeMaximum = SIMD4<Double>(repeating: -maximum)
    let factor = SIMD4<Double>(repeating: -gradScale * inverseSum)
    var i = 0
    while i + 4 <= count {
        store(i, exp4(negativeMaximum.addingProduct(s, L.load4(z + i * L.stride))) * factor)
        i += 4
    }
    while i < count {
        let d = scale * Double(L.scalar(z, i)) - maximum
        scalar(i, exp4(SIMD4(repeating: d))[0] * factor[0])
        i += 1
    }
}

/// Rounds four doubles to bfloat16 bits, to nearest even, in one rounding: to float32 with
/// round-to-odd (an inexact conversion is truncated and its last bit set), so that the
/// second rounding, float32 to bfloat16, cannot meet a false tie. Values must be finite.
@inline(__always)
func bfloat16Bits(_ x: SIMD4<Double>) -> SIMD4<UInt16> {
    let nearest = narrow(x)
    let back = widen(nearest)
    // 64-bit lanes, so that the double comparisons' masks apply to them.
    var bits = SIMD4<UInt64>(truncatingIfNeeded: unsafeBitCast(nearest, to: SIMD4<UInt32>.self))
    let inexact = back .!= x
    // Rounded away from zero (the sign never changes): step the magnitude down one ulp.
    let zero = SIMD4<Double>(repeating: 0)
    let awayFromZero = ((x .> zero) .& (back .> x)) .| ((x .< zero) .& (back .< x))
    bits.replace(with: bits &- 1, where: awayFromZero)
    bits.replace(with: bits | 1, where: inexact)
    let rounding = SIMD4<UInt64>(repeating: 0x7FFF) &+ ((bits &>> 16) & 1)
    return SIMD4<UInt16>(truncatingIfNeeded: (bits &+ rounding) &>> 16)
}
