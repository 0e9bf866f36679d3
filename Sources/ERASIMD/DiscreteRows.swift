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

/// sum exp(z - m) over the row.
@inline(__always)
func rowSum(_ z: UnsafePointer<Float>, count: Int, maximum: Double) -> Double {
    let m = SIMD4<Double>(repeating: maximum)
    var sum = SIMD4<Double>()
    var i = 0
    while i < count {
        sum += exp4(load4(z, i, count, padding: -.infinity) - m)
        i += 4
    }
    return sum.sum()
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

/// t = log h^-1(y) for smallest normal <= y <= up < 1/e: t <= -1 with t + log(-t) = log y.
/// Start: the asymptotic expansion of W_{-1} to five terms (L1 = log y, L2 = log(-L1)) for
/// y <= 0.25, the branch-point series to q^6 (q = -sqrt(2(1 - e y))) above; both within
/// 0.021 of the root on their ranges. Then two Halley steps, step = g 2t(t+1)/(2(t+1)^2 + g),
/// g = t + log(-t) - log y: from 0.021 the error falls below 1e-14 (cubic convergence, for
/// condition numbers 1/|1 + t| up to 100, which the callers keep).
@_transparent
func logInverseEntropyTerm4(_ y: SIMD4<Double>, logY: SIMD4<Double>) -> SIMD4<Double> {
    typealias V = SIMD4<Double>
    let one = V(repeating: 1), two = V(repeating: 2), zero = V(repeating: 0)
    let l1 = logY, l2 = log4(-logY)
    let inverseL1 = one / l1
    let i2 = inverseL1 * inverseL1
    let third: V = l2 * (l2 - two) * V(repeating: 0.5) * i2
    let inner: V = V(repeating: -9) + two * l2
    let cubic: V = V(repeating: 6) + l2 * inner
    let fourth: V = l2 * cubic * (i2 * inverseL1 / V(repeating: 6))
    var t = l1 - l2 + l2 * inverseL1 + third + fourth
    let nearBranch = y .> V(repeating: 0.25)
    if any(nearBranch) {  // in most steps of a row no class has y > 0.25
        var twiceGap = two * one.addingProduct(V(repeating: -2.718_281_828_459_045), y)  // 2(1 - e y) >= 0
        twiceGap.replace(with: zero, where: twiceGap .< zero)
        let q = -squareRoot4(twiceGap)
        var series = V(repeating: -221.0 / 8505)
        series = V(repeating: 769.0 / 17280).addingProduct(series, q)
        series = V(repeating: -43.0 / 540).addingProduct(series, q)
        series = V(repeating: 11.0 / 72).addingProduct(series, q)
        series = V(repeating: -1.0 / 3).addingProduct(series, q)
        series = one.addingProduct(series, q)
        series = (-one).addingProduct(series, q)
        t.replace(with: series, where: nearBranch)
    }
    let minusOne = -one
    t.replace(with: minusOne, where: t .> minusOne)
    for _ in 0..<2 {
        let g = t + log4(-t) - logY
        let t1 = t + one
        t -= g * (two * t * t1) / (two * t1 * t1 + g)
        t.replace(with: minusOne, where: t .> minusOne)
    }
    return t
}

/// For y (already clamped to [smallestY, up]): the output logit and y dt/dy (math 2).
@_transparent
func outputAndElasticity(_ y: SIMD4<Double>, _ k: DiscreteRowConstants) -> (SIMD4<Double>, SIMD4<Double>) {
    typealias V = SIMD4<Double>
    let logY = log4(y)
    let one = V(repeating: 1), threeQuarters = V(repeating: 0.75)
    if k.reference {
        // u = -1 - log y, t = -1 - sqrt(2u) - 0.75u; y dt/dy = 1/sqrt(2u) + 0.75.
        let u = -one - logY
        let root = squareRoot4(V(repeating: 2) * u)
        return (-one - root - threeQuarters * u, one / root + threeQuarters)
    }
    let t = logInverseEntropyTerm4(y, logY: logY)
    let top = V(repeating: k.topLogit)
    return (t.replacing(with: top, where: t .> top), t / (t + one))
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

/// Forward pass over one float32 row. `out` may be `z`.
@inline(never)
public func discreteForwardRow(_ z: UnsafePointer<Float>, count: Int, constants k: DiscreteRowConstants,
                               out: UnsafeMutablePointer<Float>) {
    let maximum = Double(rowMaximum(z, count: count))
    let inverseSum = SIMD4<Double>(repeating: 1 / rowSum(z, count: count, maximum: maximum))
    let m = SIMD4<Double>(repeating: maximum)
    var i = 0
    while i + 8 <= count {
        let p0 = exp4(load4(z, i, count, padding: -.infinity) - m) * inverseSum
        let p1 = exp4(load4(z, i + 4, count, padding: -.infinity) - m) * inverseSum
        let t0 = outputAndElasticity(clampedY(p0, k).0, k).0
        let t1 = outputAndElasticity(clampedY(p1, k).0, k).0
        store4(t0, out, i, count)
        store4(t1, out, i + 4, count)
        i += 8
    }
    while i < count {
        let p = exp4(load4(z, i, count, padding: -.infinity) - m) * inverseSum
        store4(outputAndElasticity(clampedY(p, k).0, k).0, out, i, count)
        i += 4
    }
}

/// Backward pass over one float32 row. `scratch` holds 2*count doubles; `out` may be `z` or `g`.
@inline(never)
public func discreteBackwardRow(_ z: UnsafePointer<Float>, _ g: UnsafePointer<Float>, count: Int,
                                constants k: DiscreteRowConstants, scratch: UnsafeMutablePointer<Double>,
                                out: UnsafeMutablePointer<Float>) {
    let rawMaximum = rowMaximum(z, count: count)
    let maximum = Double(rawMaximum)
    let inverseSum = SIMD4<Double>(repeating: 1 / rowSum(z, count: count, maximum: maximum))
    let m = SIMD4<Double>(repeating: maximum)
    let slope = SIMD4<Double>(repeating: k.slope), zero = SIMD4<Double>(repeating: 0)
    let probabilities = scratch, s = scratch + count
    var weighted = SIMD4<Double>()  // sum_i s_i
    /// s_i for four classes from i, and p_i.
    @_transparent
    func terms(_ i: Int) -> (SIMD4<Double>, SIMD4<Double>) {
        let p = exp4(load4(z, i, count, padding: -.infinity) - m) * inverseSum
        let (y, clamped) = clampedY(p, k)
        let elasticity = outputAndElasticity(y, k).1.replacing(with: zero, where: clamped)
        return (p, load4(g, i, count, padding: 0) * (slope * p / y) * elasticity)
    }
    var i = 0
    while i + 8 <= count {  // two independent chains per step (see DiscreteRows: forward)
        let (p0, s0) = terms(i), (p1, s1) = terms(i + 4)
        weighted += s0 + s1
        storeLanes(p0, probabilities + i)
        storeLanes(p1, probabilities + i + 4)
        storeLanes(s0, s + i)
        storeLanes(s1, s + i + 4)
        i += 8
    }
    while i < count {
        let (p, si) = terms(i)
        weighted += si
        if i + 4 <= count {
            storeLanes(p, probabilities + i)
            storeLanes(si, s + i)
        } else {
            for lane in 0..<(count - i) { probabilities[i + lane] = p[lane]; s[i + lane] = si[lane] }
        }
        i += 4
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
