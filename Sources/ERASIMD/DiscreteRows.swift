// Discrete ERA over one row of float32 logits, four double lanes at a time (math 2;
// docs/math.md, "Vector kernels"): p = softmax(z), y = a p + b clamped to
// [smallest normal, up], t = log h^-1(y), and the backward's s_i = g_i (a p_i / y_i)(y_i dt/dy)
// with the most probable class's gradient as minus the sum of the others: the portable
// kernel's formulas, in double, with exp4/log4 (about 1e-12 relative) and a fixed number of
// Halley steps instead of a convergence test. Results are rounded once to float32.

/// Everything the row kernels need from a DiscreteERA.
public struct DiscreteRowConstants {
    public var slope: Double      // a
    public var offset: Double     // b
    public var up: Double         // log(tau)/tau, the largest y
    public var topLogit: Double   // -log(tau), the largest output (exact and tight modes)
    public var reference: Bool    // the official closed-form inverse instead of the exact one

    public init(slope: Double, offset: Double, up: Double, topLogit: Double, reference: Bool) {
        self.slope = slope
        self.offset = offset
        self.up = up
        self.topLogit = topLogit
        self.reference = reference
    }
}

/// The smallest y: below it y is clamped, as in the portable kernels (math 2, "Clamping").
let smallestY = Double.leastNormalMagnitude

/// Row maximum (inputs are finite).
@inline(__always)
func rowMaximum(_ z: UnsafePointer<Float>, count: Int) -> Float {
    var maximum = SIMD8<Float>(repeating: -.greatestFiniteMagnitude)
    var i = 0
    while i + 8 <= count {
        let v = UnsafeRawPointer(z + i).loadUnaligned(as: SIMD8<Float>.self)
        maximum.replace(with: v, where: v .> maximum)
        i += 8
    }
    var m = maximum[0]
    for k in 1..<8 { m = Swift.max(m, maximum[k]) }
    while i < count { m = Swift.max(m, z[i]); i += 1 }
    return m
}

/// sqrt for four non-negative doubles without a call per lane (the scalar squareRoot calls
/// the C library here): 1/sqrt(x) from the exponent-halving bit trick (3.4% off), four Newton
/// steps y <- y (3/2 - x y^2 / 2) (relative error squared each time, below 1e-20), then
/// s = x y corrected once, s <- s + y (x - s^2)/2. Exact to a few ulp; 0 gives 0.
@inline(__always)
func squareRoot4(_ x: SIMD4<Double>) -> SIMD4<Double> {
    typealias V = SIMD4<Double>
    let bits = unsafeBitCast(x, to: SIMD4<Int64>.self)
    var y = unsafeBitCast(SIMD4<Int64>(repeating: 0x5FE6_EB50_C7B5_37A9) &- (bits &>> 1), to: V.self)
    let half = V(repeating: 0.5) * x
    for _ in 0..<4 { y = y * (V(repeating: 1.5) - half * y * y) }
    var s = x * y
    s = s.addingProduct(V(repeating: 0.5) * y, x - s * s)
    return s.replacing(with: V(repeating: 0), where: x .== V(repeating: 0))
}

/// t = log h^-1(y) for eight classes (two halves of four doubles) with
/// smallest normal <= y <= up < 1/e: t <= -1 with t + log(-t) = log y. The start and a first
/// Halley step run in eight float32 lanes, a last Halley step in double:
/// - start: the asymptotic expansion of W_{-1} to five terms (L1 = log y, L2 = log(-L1)) for
///   y <= 0.25, the branch-point series to q^6 (q = -sqrt(2(1 - e y)), in double) above; both
///   within 0.021 of the root on their ranges;
/// - a Halley step in float32, step = g 2t(t+1)/(2(t+1)^2 + g), g = t + log(-t) - log y: from
///   0.021 to about 1e-5 (cubic convergence; float32 rounding adds about 1e-6 near the branch
///   point, where |1 + t| >= 0.01 for the condition numbers 1/|1 + t| <= 100 the callers keep);
/// - the same step in double, with log y in double: from 1e-5 to below 1e-13, far below the
///   float32 outputs' rounding.
/// Every lane is computed alone (no lane depends on another), so equal inputs give equal
/// outputs wherever they sit in a row.
@_transparent
func logInverseEntropyTerm8(_ y0: SIMD4<Double>, _ y1: SIMD4<Double>,
                            logY0: SIMD4<Double>, logY1: SIMD4<Double>) -> (SIMD4<Double>, SIMD4<Double>) {
    typealias F = SIMD8<Float>
    let one = F(repeating: 1), two = F(repeating: 2), minusOne = F(repeating: -1)
    let l1 = F(lowHalf: lanesToFloat(logY0), highHalf: lanesToFloat(logY1))
    let l2 = logFloat8(-l1)
    let inverseL1 = one / l1
    let i2 = inverseL1 * inverseL1
    let third: F = l2 * (l2 - two) * F(repeating: 0.5) * i2
    let inner: F = F(repeating: -9) + two * l2
    let cubic: F = F(repeating: 6) + l2 * inner
    let fourth: F = l2 * cubic * (i2 * inverseL1 / F(repeating: 6))
    var t = l1 - l2 + l2 * inverseL1 + third + fourth
    let nearBranch = F(lowHalf: lanesToFloat(y0), highHalf: lanesToFloat(y1)) .> F(repeating: 0.25)
    let quarter = SIMD4<Double>(repeating: 0.25)
    // In most steps of a row no class has y > 0.25. (The double masks: any() of the float32 one
    // is left as a call; float32(y) > 0.25 implies y > 0.25.)
    if any(y0 .> quarter) || any(y1 .> quarter) {
        t.replace(with: F(lowHalf: lanesToFloat(branchSeries(y0)), highHalf: lanesToFloat(branchSeries(y1))),
                  where: nearBranch)
    }
    t.replace(with: minusOne, where: t .> minusOne)
    let g = t + logFloat8(-t) - l1
    let t1 = t + one
    t -= g * (two * t * t1) / (two * t1 * t1 + g)
    t.replace(with: minusOne, where: t .> minusOne)
    return (halleyStep(lanesToDouble(t.lowHalf), logY: logY0), halleyStep(lanesToDouble(t.highHalf), logY: logY1))
}

/// SIMD4<Float>(v) lane by lane: in the large row kernels the compiler leaves the generic
/// conversion as a call; this form becomes one vcvtpd2ps.
@_transparent
func lanesToFloat(_ v: SIMD4<Double>) -> SIMD4<Float> {
    SIMD4(Float(v[0]), Float(v[1]), Float(v[2]), Float(v[3]))
}

/// SIMD4<Double>(v) lane by lane (see lanesToFloat).
@_transparent
func lanesToDouble(_ v: SIMD4<Float>) -> SIMD4<Double> {
    SIMD4(Double(v[0]), Double(v[1]), Double(v[2]), Double(v[3]))
}

/// The start near the branch point y = 1/e: t = -1 + q - q^2/3 + 11q^3/72 - ... to q^6,
/// q = -sqrt(2(1 - e y)).
@inline(__always)
func branchSeries(_ y: SIMD4<Double>) -> SIMD4<Double> {
    typealias V = SIMD4<Double>
    let one = V(repeating: 1), zero = V(repeating: 0)
    var twiceGap = V(repeating: 2) * one.addingProduct(V(repeating: -2.718_281_828_459_045), y)  // 2(1 - e y) >= 0
    twiceGap.replace(with: zero, where: twiceGap .< zero)
    let q = -squareRoot4(twiceGap)
    var series = V(repeating: -221.0 / 8505)
    series = V(repeating: 769.0 / 17280).addingProduct(series, q)
    series = V(repeating: -43.0 / 540).addingProduct(series, q)
    series = V(repeating: 11.0 / 72).addingProduct(series, q)
    series = V(repeating: -1.0 / 3).addingProduct(series, q)
    series = one.addingProduct(series, q)
    return (-one).addingProduct(series, q)
}

/// One Halley step on t + log(-t) = log y in double, t kept <= -1.
@inline(__always)
func halleyStep(_ t: SIMD4<Double>, logY: SIMD4<Double>) -> SIMD4<Double> {
    typealias V = SIMD4<Double>
    let one = V(repeating: 1), two = V(repeating: 2), minusOne = -one
    let g = t + log4(-t) - logY
    let t1 = t + one
    var next = t - g * (two * t * t1) / (two * t1 * t1 + g)
    next.replace(with: minusOne, where: next .> minusOne)
    return next
}

/// For y (already clamped to [smallestY, up]), eight classes: the output logits and y dt/dy
/// (math 2), per half.
@_transparent
func outputAndElasticity8(_ y0: SIMD4<Double>, _ y1: SIMD4<Double>, _ k: DiscreteRowConstants)
    -> (SIMD4<Double>, SIMD4<Double>, SIMD4<Double>, SIMD4<Double>) {
    typealias V = SIMD4<Double>
    let logY0 = log4(y0), logY1 = log4(y1)
    let one = V(repeating: 1), threeQuarters = V(repeating: 0.75)
    if k.reference {
        // u = -1 - log y, t = -1 - sqrt(2u) - 0.75u; y dt/dy = 1/sqrt(2u) + 0.75.
        let u0 = -one - logY0, u1 = -one - logY1
        let root0 = squareRoot4(V(repeating: 2) * u0), root1 = squareRoot4(V(repeating: 2) * u1)
        return (-one - root0 - threeQuarters * u0, -one - root1 - threeQuarters * u1,
                one / root0 + threeQuarters, one / root1 + threeQuarters)
    }
    let (t0, t1) = logInverseEntropyTerm8(y0, y1, logY0: logY0, logY1: logY1)
    let top = V(repeating: k.topLogit)
    return (t0.replacing(with: top, where: t0 .> top), t1.replacing(with: top, where: t1 .> top),
            t0 / (t0 + one), t1 / (t1 + one))
}

/// y = a p + b, kept in [smallestY, up]; and whether it was clamped at smallestY.
@inline(__always)
func clampedY(_ p: SIMD4<Double>, _ k: DiscreteRowConstants) -> (SIMD4<Double>, SIMDMask<SIMD4<Int64>>) {
    typealias V = SIMD4<Double>
    var y = V(repeating: k.offset).addingProduct(V(repeating: k.slope), p)  // a p + b
    let clamped = y .<= V(repeating: smallestY)
    y.replace(with: V(repeating: smallestY), where: clamped)
    let up = V(repeating: k.up)
    y.replace(with: up, where: y .> up)
    return (y, clamped)
}

/// Four values of a float32 row as doubles, padded past its end with `padding`.
@inline(__always)
func load4(_ z: UnsafePointer<Float>, _ i: Int, _ count: Int, padding: Double) -> SIMD4<Double> {
    if i + 4 <= count { return SIMD4<Double>(UnsafeRawPointer(z + i).loadUnaligned(as: SIMD4<Float>.self)) }
    var v = SIMD4<Double>(repeating: padding)
    for k in 0..<(count - i) { v[k] = Double(z[i + k]) }
    return v
}

@inline(__always)
func store4(_ v: SIMD4<Double>, _ out: UnsafeMutablePointer<Float>, _ i: Int, _ count: Int) {
    if i + 4 <= count {
        UnsafeMutableRawPointer(out + i).storeBytes(of: SIMD4<Float>(v), as: SIMD4<Float>.self)
    } else {
        for k in 0..<(count - i) { out[i + k] = Float(v[k]) }
    }
}

/// Four doubles stored lane by lane (one vector store once compiled): the generic raw-pointer
/// storeBytes was left as a call in the backward loop.
@_transparent
func storeLanes(_ v: SIMD4<Double>, _ p: UnsafeMutablePointer<Double>) {
    p[0] = v[0]
    p[1] = v[1]
    p[2] = v[2]
    p[3] = v[3]
}

/// Four doubles loaded lane by lane (see storeLanes).
@_transparent
func loadLanes(_ p: UnsafePointer<Double>) -> SIMD4<Double> {
    SIMD4(p[0], p[1], p[2], p[3])
}

/// Forward pass over one float32 row. `scratch` holds count + 3 doubles; `out` may be `z`.
@inline(never)
public func discreteForwardRow(_ z: UnsafePointer<Float>, count: Int, constants k: DiscreteRowConstants,
                               scratch: UnsafeMutablePointer<Double>, out: UnsafeMutablePointer<Float>) {
    // exp(z - max) once per class, kept for the main loop.
    let inverseSum = SIMD4<Double>(repeating: 1 / rowExponentials(z, count: count, into: scratch))
    var i = 0
    while i < count {  // eight classes per step; a last step of four or fewer computes them twice
        let second = i + 4 < count ? i + 4 : i
        let p0 = loadLanes(scratch + i) * inverseSum
        let p1 = loadLanes(scratch + second) * inverseSum
        let (t0, t1, _, _) = outputAndElasticity8(clampedY(p0, k).0, clampedY(p1, k).0, k)
        store4(t0, out, i, count)
        if second > i { store4(t1, out, second, count) }
        i += 8
    }
}

/// Backward pass over one float32 row. `scratch` holds 2*count + 6 doubles; `out` may be `z` or `g`.
@inline(never)
public func discreteBackwardRow(_ z: UnsafePointer<Float>, _ g: UnsafePointer<Float>, count: Int,
                                constants k: DiscreteRowConstants, scratch: UnsafeMutablePointer<Double>,
                                out: UnsafeMutablePointer<Float>) {
    let rawMaximum = rowMaximum(z, count: count)
    // exp(z - max) once per class, into the probabilities' place (count + 3 doubles).
    let probabilities = scratch, s = scratch + count + 3
    let inverseSum = SIMD4<Double>(repeating: 1 / rowExponentials(z, count: count, into: probabilities))
    let slope = SIMD4<Double>(repeating: k.slope), zero = SIMD4<Double>(repeating: 0)
    var weighted = SIMD4<Double>()  // sum_i s_i
    /// p_i and s_i for four classes from i and from `second`.
    @_transparent
    func terms(_ i: Int, _ second: Int) -> (SIMD4<Double>, SIMD4<Double>, SIMD4<Double>, SIMD4<Double>) {
        let p0 = loadLanes(probabilities + i) * inverseSum
        let p1 = loadLanes(probabilities + second) * inverseSum
        let (y0, clamped0) = clampedY(p0, k), (y1, clamped1) = clampedY(p1, k)
        let (_, _, e0, e1) = outputAndElasticity8(y0, y1, k)
        let s0 = load4(g, i, count, padding: 0) * (slope * p0 / y0) * e0.replacing(with: zero, where: clamped0)
        let s1 = load4(g, second, count, padding: 0) * (slope * p1 / y1) * e1.replacing(with: zero, where: clamped1)
        return (p0, s0, p1, s1)
    }
    var i = 0
    while i < count {  // eight classes per step; a last step of four or fewer computes them twice
        let second = i + 4 < count ? i + 4 : i
        let (p0, s0, p1, s1) = terms(i, second)
        weighted += s0
        if second > i { weighted += s1 }
        if i + 8 <= count {
            storeLanes(p0, probabilities + i)
            storeLanes(p1, probabilities + i + 4)
            storeLanes(s0, s + i)
            storeLanes(s1, s + i + 4)
        } else {
            for lane in 0..<min(4, count - i) { probabilities[i + lane] = p0[lane]; s[i + lane] = s0[lane] }
            if second > i {
                for lane in 0..<(count - second) { probabilities[second + lane] = p1[lane]; s[second + lane] = s1[lane] }
            }
        }
        i += 8
    }
    let w = weighted.sum()
    // The most probable class (the first maximum) gets minus the sum of the others.
    var top = 0
    while z[top] != rawMaximum { top += 1 }
    discreteGradients(s, probabilities, count: count, weightedSum: w, top: top, out: out)
}

/// out_j = s_j - p_j sum_i s_i, and for the top class minus the sum of the others; four lanes
/// per step (a scalar sum is one dependent add per class), the top class's lane left out of the
/// sum. A function of its own: in the row kernel, the compiler left the vector loads and stores
/// here as calls.
@inline(never)
func discreteGradients(_ s: UnsafePointer<Double>, _ probabilities: UnsafePointer<Double>, count: Int,
                       weightedSum w: Double, top: Int, out: UnsafeMutablePointer<Float>) {
    let wLanes = SIMD4<Double>(repeating: w), topLanes = SIMD4<Int64>(repeating: Int64(top))
    var index = SIMD4<Int64>(0, 1, 2, 3)
    var othersLanes = SIMD4<Double>()
    var j = 0
    while j + 4 <= count {
        let gradient = UnsafeRawPointer(s + j).loadUnaligned(as: SIMD4<Double>.self)
            - UnsafeRawPointer(probabilities + j).loadUnaligned(as: SIMD4<Double>.self) * wLanes
        othersLanes += gradient.replacing(with: SIMD4(repeating: 0), where: index .== topLanes)
        UnsafeMutableRawPointer(out + j).storeBytes(of: SIMD4<Float>(gradient), as: SIMD4<Float>.self)
        index &+= SIMD4(repeating: 4)
        j += 4
    }
    var others = othersLanes.sum()
    while j < count {
        let gradient = s[j] - probabilities[j] * w
        if j != top { others += gradient }
        out[j] = Float(gradient)
        j += 1
    }
    out[top] = Float(-others)
}
