// Vector kernels of the LLM passes over one row of logits (docs/math.md 3, "Efficiency";
// "Vector kernels"), float32 or bfloat16 storage: the softmax statistics of s*z in one pass,
// and the log-prob gradient row, both eight float32 lanes per step with a float32 exp2 (sums
// in double; the errors are measured in docs/math.md).

/// Logits widened from their storage to eight float32 lanes, and gradients stored back.
protocol LogitLanes {
    static func load8(_ p: UnsafeRawPointer) -> SIMD8<Float>
    static func scalar(_ p: UnsafeRawPointer, _ i: Int) -> Float
    /// Stores eight float32 values in the storage type (bfloat16: to nearest even).
    static func store8(_ v: SIMD8<Float>, _ p: UnsafeMutableRawPointer)
    /// Stores one double, rounded once to the storage type.
    static func store(_ v: Double, _ p: UnsafeMutableRawPointer)
    static var stride: Int { get }
}

enum Float32Lanes: LogitLanes {
    @inline(__always) static func load8(_ p: UnsafeRawPointer) -> SIMD8<Float> { p.loadUnaligned(as: SIMD8<Float>.self) }
    @inline(__always) static func scalar(_ p: UnsafeRawPointer, _ i: Int) -> Float { p.loadUnaligned(fromByteOffset: 4 * i, as: Float.self) }
    @inline(__always) static func store8(_ v: SIMD8<Float>, _ p: UnsafeMutableRawPointer) { p.storeBytes(of: v, as: SIMD8<Float>.self) }
    @inline(__always) static func store(_ v: Double, _ p: UnsafeMutableRawPointer) { p.storeBytes(of: Float(v), as: Float.self) }
    static var stride: Int { 4 }
}

enum BFloat16Lanes: LogitLanes {
    /// bfloat16 is the upper half of a float32: widen and shift.
    @inline(__always) static func load8(_ p: UnsafeRawPointer) -> SIMD8<Float> {
        let bits = SIMD8<UInt32>(truncatingIfNeeded: p.loadUnaligned(as: SIMD8<UInt16>.self))
        return unsafeBitCast(bits &<< 16, to: SIMD8<Float>.self)
    }
    @inline(__always) static func scalar(_ p: UnsafeRawPointer, _ i: Int) -> Float {
        Float(bitPattern: UInt32(p.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16)
    }
    /// float32 to bfloat16, to nearest even (finite values): add 0x7FFF plus the last kept bit,
    /// keep the upper half.
    @inline(__always) static func store8(_ v: SIMD8<Float>, _ p: UnsafeMutableRawPointer) {
        let bits = unsafeBitCast(v, to: SIMD8<UInt32>.self)
        let rounded = (bits &+ SIMD8(repeating: 0x7FFF) &+ ((bits &>> SIMD8(repeating: 16)) & SIMD8(repeating: 1))) &>> SIMD8(repeating: 16)
        p.storeBytes(of: SIMD8<UInt16>(truncatingIfNeeded: rounded), as: SIMD8<UInt16>.self)
    }
    @inline(__always) static func store(_ v: Double, _ p: UnsafeMutableRawPointer) {
        p.storeBytes(of: bfloat16Bits(SIMD4(repeating: v))[0], as: UInt16.self)
    }
    static var stride: Int { 2 }
}

@inline(__always)
func widen(_ v: SIMD4<Float>) -> SIMD4<Double> { SIMD4<Double>(v) }

@inline(__always)
func narrow(_ v: SIMD4<Double>) -> SIMD4<Float> { SIMD4<Float>(v) }

/// Softmax statistics of one row relative to a reference M (`statistics`): S = sum exp(s*z - M)
/// in two parts, a count of logits at the reference (each term exactly 1; at least the first,
/// while a tie in another chunk may be in the sum) and the sum of the other terms, and
/// T = sum (s*z - M) exp(s*z - M).
public struct LogitRowStatistics {
    public let maximum: Double
    public let maximumCount: Double
    public let sumExpBelowMaximum: Double
    public let sumShiftedTimesExp: Double
    /// S = sum exp(s*z - M).
    public var sumExp: Double { maximumCount + sumExpBelowMaximum }

    @inline(__always)
    init(_ maximum: Double, _ maximumCount: Double, _ sumExpBelowMaximum: Double, _ sumShiftedTimesExp: Double) {
        self.maximum = maximum
        self.maximumCount = maximumCount
        self.sumExpBelowMaximum = sumExpBelowMaximum
        self.sumShiftedTimesExp = sumShiftedTimesExp
    }
}

/// (reference M, count of logits at M, S = sum exp(s*z - M) over the others, T = sum (s*z - M)
/// exp(s*z - M)) in one pass over the row (docs/math.md 3, "Vector kernels"), eight float32 lanes
/// per step, or nil for a scale the lanes do not take (`float32LanesTake(scale:)`; the portable
/// kernel then runs).
/// The logsumexp M + log S and the entropy log S - T/S do not depend on M, so M need not be the
/// maximum, and the sums run in base 2: with s2 = s log2(e) rounded to float32 and m a raw
/// logit, M = s*m and each term is 2^u with u = s2 (z - m) (two float32 roundings, each
/// relative to the distance z - m, so that the result does not depend on the logits' offset).
/// m is the maximum of the first chunk of 64 logits that is not all masked; when a later chunk
/// holds a larger logit, m moves up to that chunk's maximum (the sums re-centred,
/// T <- (T + (b - b') S) 2^(b - b'), S <- S 2^(b - b') with b = s log2(e) m) and the chunk is
/// computed again. So the row is read once, with no pass for its maximum, m ends as the row's
/// maximum (u <= 0: log S and -T/S are both >= 0 and the entropy does not cancel), and a chunk
/// is computed twice only when it raises the maximum (a few times per random row; every chunk
/// of a rising row). The float32 lane sums go into double sums every 64 logits. The chunk that
/// set m is held back: in a float32 lane next to the term 1 of a logit at m, terms below 6e-8
/// are lost, and a confident row, whose entropy is about (S - 1) times the distance, lost up to
/// 5.6% of it. When m moves up its sums are added as computed (its 1s are terms below the new
/// maximum, and their neighbours' loss is then relative to them); at the end the lanes of it
/// that hold a logit at m (usually one double lane: 16 logits) are summed again without their
/// terms at m, which are counted, the rest added as computed. Another chunk holding m means a
/// tie at the maximum, an entropy of log 2 or more, and is added as computed. S and T are within
/// about 1e-6 relative of the double values (measured: Tests/ERACoreTests, SIMD).
/// M is NaN when a logit is NaN or +inf, -inf when all are -inf (masked). Terms below 2^-127
/// count as 0 (against the largest term, 1, they are below 1e-38), as do masked logits.
@inline(__always)
func statistics<L: LogitLanes>(_: L.Type, _ z: UnsafeRawPointer, count: Int, scale: Double) -> LogitRowStatistics? {
    guard float32LanesTake(scale: scale) else { return nil }
    let s2 = Float(scale * log2e)
    let scaleLanes = SIMD8<Float>(repeating: s2)
    let base2Scale = scale * log2e     // s log2(e) in double, for the re-centring
    var reference = -Float.infinity    // m; -inf until a logit that is not masked is seen
    var sumExp = SIMD4<Double>(), sumShifted = SIMD4<Double>()  // double lane sums, base 2
    var referenceChunk = -1            // the chunk that set m, held back (-1: none, or the tail)
    var heldExp = SIMD4<Double>(), heldShifted = SIMD4<Double>()  // its sums as computed
    let failed = LogitRowStatistics(.nan, 0, 0, 0)
    /// Moves the reference up to rawMaximum, found in the chunk at `chunk` (-1: the tail);
    /// false for +inf (an error, reported as NaN).
    func recentre(on rawMaximum: Float, chunk: Int) -> Bool {
        guard rawMaximum < .infinity else { return false }
        if reference > -.infinity {
            if referenceChunk >= 0 {  // the chunk of the old maximum: its 1s are terms below the new one
                sumExp += heldExp
                sumShifted += heldShifted
            }
            let delta = base2Scale * (Double(reference) - Double(rawMaximum))  // b - b' <= 0
            let factor = delta * ln2 < smallestExpArgument ? 0 : exp4(SIMD4(repeating: delta * ln2))[0]
            sumShifted = sumShifted.addingProduct(delta, sumExp) * factor
            sumExp *= factor
        }
        reference = rawMaximum
        referenceChunk = chunk
        return true
    }
    var i = 0
    while i + 64 <= count {
        if reference == -.infinity {
            var m = SIMD8<Float>(repeating: -.infinity)
            var nan = SIMDMask<SIMD8<Int32>>(repeating: false)
            for k in stride(from: i, to: i + 64, by: 8) {
                let v = L.load8(z + k * L.stride)
                m.replace(with: v, where: v .> m)
                nan .|= v .!= v
            }
            if any(nan) { return failed }
            let chunkMaximum = m.max()
            if chunkMaximum == -.infinity {  // all masked
                i += 64
                continue
            }
            guard recentre(on: chunkMaximum, chunk: i) else { return failed }
        }
        let referenceLanes = SIMD8<Float>(repeating: reference), negativeReference = -referenceLanes
        var e0 = SIMD8<Float>(), t0 = SIMD8<Float>()
        var chunkMaximum = SIMD8<Float>(repeating: -.infinity)
        var k = i
        while k < i &+ 64 {
            let v0 = L.load8(z + k &* L.stride)
            k &+= 8
            chunkMaximum.replace(with: v0, where: v0 .> chunkMaximum)
            // A NaN logit gives a NaN u, term and sums; +inf raises the chunk maximum.
            let u0 = clampedExp2Argument((v0 + negativeReference) * scaleLanes)
            let x0 = exp2Float8(clamped: u0)
            e0 += x0
            t0 = t0.addingProduct(u0, x0)
        }
        if any(chunkMaximum .> referenceLanes) {  // a new maximum: re-centre, then this chunk again
            guard recentre(on: chunkMaximum.max(), chunk: i) else { return failed }
            continue
        }
        let chunkExp = widened(e0), chunkShifted = widened(t0)
        if i == referenceChunk {  // the chunk of the maximum: held back
            heldExp = chunkExp
            heldShifted = chunkShifted
            i += 64
            continue
        }
        sumExp += chunkExp
        sumShifted += chunkShifted
        i += 64
    }
    var ties = 0.0  // logits equal to m, counted
    if i < count {  // the last logits, fewer than 64: in double
        var rawMaximum = -Float.infinity
        for k in i..<count {
            let v = L.scalar(z, k)
            guard v < .infinity else { return failed }  // NaN fails the comparison too
            rawMaximum = Swift.max(rawMaximum, v)
        }
        if rawMaximum > reference {
            _ = recentre(on: rawMaximum, chunk: -1)
        }
        let holdsReference = rawMaximum == reference  // (then m is finite)
        for k in i..<count {
            let v = L.scalar(z, k)
            if holdsReference, v == reference {  // counted, not summed with the others
                ties += 1
                continue
            }
            let u = base2Scale * (Double(v) - Double(reference))
            if u * ln2 >= smallestExpArgument {
                let e = exp4(SIMD4(repeating: u * ln2))[0]
                sumExp[0] += e
                sumShifted[0] += u * e
            }
        }
    }
    if reference == -.infinity { return LogitRowStatistics(-.infinity, 0, 0, 0) }  // every logit masked
    if referenceChunk >= 0 {
        // The chunk of the maximum. Its sums went into four double lanes, lane j holding the
        // terms of logits j, j + 4, ..., j + 60 (float32 lanes j and j + 4, each summed over the chunk); where
        // one of them is m, the others were summed with its term 1, and terms below 6e-8 were
        // lost. Such a lane is summed again without the terms at m, which are counted; the other
        // lanes, and T's (the term at m is 0 there), are kept.
        let chunk = z + referenceChunk &* L.stride
        let referenceLanes = SIMD8<Float>(repeating: reference)
        var holds = SIMDMask<SIMD8<Int32>>(repeating: false)
        for k in stride(from: 0, to: 64, by: 8) { holds .|= L.load8(chunk + k &* L.stride) .== referenceLanes }
        // 1.0 in the lanes where z == m, +0 elsewhere: the comparison's all-ones lanes and the
        // bits of 1.0 (the term there is 2^0 = 1 exactly, so subtracting it leaves 0).
        let oneBits = SIMD8<UInt32>(repeating: Float(1).bitPattern)
        var kept = heldExp
        for j in 0..<4 where holds[j] || holds[j + 4] {
            var e = SIMD8<Float>(), n = SIMD8<Float>()
            for half in 0..<2 {  // logits j + 4r, r = 8 half ..< 8 half + 8
                var v = SIMD8<Float>()
                for r in 0..<8 { v[r] = L.scalar(chunk, j &+ 32 &* half &+ 4 &* r) }
                let x = exp2Float8(clamped: clampedExp2Argument((v - referenceLanes) * scaleLanes))
                let one = unsafeBitCast(unsafeBitCast(v .== referenceLanes, to: SIMD8<UInt32>.self) & oneBits,
                                        to: SIMD8<Float>.self)
                e += x - one
                n += one
            }
            kept[j] = Double(e.sum())
            ties += Double(n.sum())
        }
        sumExp += kept
        sumShifted += heldShifted
    }
    let below = sumExp.sum(), shifted = sumShifted.sum()
    guard !below.isNaN, !shifted.isNaN else { return failed }  // a NaN logit
    return LogitRowStatistics(scale * Double(reference), ties, below, shifted * ln2)
}

/// Whether the float32-lane kernels (statistics, gradient rows) take logits scaled by `scale`:
/// their exponent is s2 (z - m) with s2 = s log2(e) rounded to float32, which must be finite
/// and at least 2^-120. z - m overflows float32 (to -inf: a term of 0) only when
/// |z - m| > FLT_MAX = 2^128, and with s2 >= 2^-120 such a term's exponent is below -256: 0
/// anyway. Smaller scales (the fuzz target found 1e-38 with logits of +-3e38, whose scaled
/// differences are a few nats) and larger ones take the portable kernels.
public func float32LanesTake(scale: Double) -> Bool {
    let s2 = Float(scale * log2e)
    return s2 >= 0x1p-120 && s2.isFinite
}

/// ln 2 in double.
let ln2 = 0.693_147_180_559_945_3

/// Eight float32 lanes added pairwise into four doubles.
@inline(__always)
func widened(_ v: SIMD8<Float>) -> SIMD4<Double> {
    SIMD4<Double>(v.lowHalf) + SIMD4<Double>(v.highHalf)
}

/// Softmax statistics of scale*z over a row of float32 logits; see `statistics`.
@inline(never)
public func logitStatistics(_ z: UnsafePointer<Float>, count: Int, scale: Double) -> LogitRowStatistics? {
    statistics(Float32Lanes.self, UnsafeRawPointer(z), count: count, scale: scale)
}

/// Softmax statistics of scale*z over a row of bfloat16 logits (raw bits); see `statistics`.
@inline(never)
public func logitStatistics(bfloat16 z: UnsafePointer<UInt16>, count: Int, scale: Double) -> LogitRowStatistics? {
    statistics(BFloat16Lanes.self, UnsafeRawPointer(z), count: count, scale: scale)
}

/// out[i] = gradScale * (1{i == label} - exp(scale*z_i - maximum) * inverseSum) for one row,
/// with `maximum` and `inverseSum` from the vector statistics (`statistics`: maximum = s*m for a
/// float32 logit m). The entries in eight float32 lanes: 2^u with u = s2 (z - m) as in the
/// statistics, times -gradScale/S, rounded to float32 (about 2e-7 relative besides the sum's
/// error); the label's entry in double (1 - p cancels as p nears 1). `out` may be `z` (each
/// step reads its lanes before writing).
@inline(never)
public func logprobGradientRow(_ z: UnsafePointer<Float>, count: Int, scale: Double, maximum: Double,
                               inverseSum: Double, gradScale: Double, label: Int, out: UnsafeMutablePointer<Float>) {
    let labelValue = gradScale * (1 - exp4(SIMD4(repeating: scale * Double(z[label]) - maximum))[0] * inverseSum)
    gradientRow(Float32Lanes.self, UnsafeRawPointer(z), count: count, scale: scale, maximum: maximum,
                inverseSum: inverseSum, gradScale: gradScale, out: UnsafeMutableRawPointer(out))
    out[label] = Float(labelValue)
}

/// The same for bfloat16 logits and gradients (raw bits): each float32 entry rounded to
/// bfloat16, to nearest even; the tail and the label's entry rounded once from double.
@inline(never)
public func logprobGradientRow(bfloat16 z: UnsafePointer<UInt16>, count: Int, scale: Double, maximum: Double,
                               inverseSum: Double, gradScale: Double, label: Int, out: UnsafeMutablePointer<UInt16>) {
    let labelLogit = Double(BFloat16Lanes.scalar(UnsafeRawPointer(z), label))
    let labelValue = gradScale * (1 - exp4(SIMD4(repeating: scale * labelLogit - maximum))[0] * inverseSum)
    gradientRow(BFloat16Lanes.self, UnsafeRawPointer(z), count: count, scale: scale, maximum: maximum,
                inverseSum: inverseSum, gradScale: gradScale, out: UnsafeMutableRawPointer(out))
    out[label] = bfloat16Bits(SIMD4(repeating: labelValue))[0]
}

/// -gradScale * softmax for every entry into `out` (L's storage), eight float32 lanes at a time,
/// the last count mod 8 in double.
@inline(__always)
func gradientRow<L: LogitLanes>(_: L.Type, _ z: UnsafeRawPointer, count: Int, scale: Double, maximum: Double,
                                inverseSum: Double, gradScale: Double, out: UnsafeMutableRawPointer) {
    let scaleLanes = SIMD8<Float>(repeating: Float(scale * log2e))
    let reference = SIMD8<Float>(repeating: Float(maximum / scale))  // m: maximum = s*m exactly
    let factor = SIMD8<Float>(repeating: Float(-gradScale * inverseSum))
    var i = 0
    while i + 8 <= count {
        let u = clampedExp2Argument((L.load8(z + i * L.stride) - reference) * scaleLanes)
        L.store8(exp2Float8(clamped: u) * factor, out + i * L.stride)
        i += 8
    }
    while i < count {
        let d = scale * Double(L.scalar(z, i)) - maximum
        L.store(exp4(SIMD4(repeating: d))[0] * (-gradScale * inverseSum), out + i * L.stride)
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
