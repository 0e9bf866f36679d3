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

/// 1/sqrt for four positive normal doubles: the exponent-halving bit trick (3.4% off), then
/// four Newton steps y <- y (3/2 - x y^2 / 2), each squaring the relative error (below 1e-20
/// after the fourth): exact to a few ulp, with no division. 0 gives a huge finite value.
@inline(__always)
func inverseSquareRoot4(_ x: SIMD4<Double>) -> SIMD4<Double> {
    typealias V = SIMD4<Double>
    let bits = unsafeBitCast(x, to: SIMD4<Int64>.self)
    var y = unsafeBitCast(SIMD4<Int64>(repeating: 0x5FE6_EB50_C7B5_37A9) &- (bits &>> 1), to: V.self)
    let half = V(repeating: 0.5) * x
    for _ in 0..<4 { y = y * (V(repeating: 1.5) - half * y * y) }
    return y
}

/// sqrt for four non-negative doubles without a call per lane (the scalar squareRoot calls
/// the C library here): y = inverseSquareRoot4(x), then s = x y corrected once,
/// s <- s + y (x - s^2)/2. Exact to a few ulp; 0 gives 0.
@inline(__always)
func squareRoot4(_ x: SIMD4<Double>) -> SIMD4<Double> {
    typealias V = SIMD4<Double>
    let y = inverseSquareRoot4(x)
    var s = x * y
    s = s.addingProduct(V(repeating: 0.5) * y, x - s * s)
    return s.replacing(with: V(repeating: 0), where: x .== V(repeating: 0))
}

/// The start of t = log h^-1(y) and a first Halley step, for eight classes (two halves of four
/// doubles) with smallest normal <= y <= up < 1/e: t <= -1 with t + log(-t) = log y, in eight
/// float32 lanes:
/// - start: the asymptotic expansion of W_{-1} to five terms (L1 = log y, L2 = log(-L1)) for
///   y <= 0.25, the branch-point series to q^6 (q = -sqrt(2(1 - e y)), in double) above; both
///   within 0.021 of the root on their ranges;
/// - a Halley step, step = g 2t(t+1)/(2(t+1)^2 + g), g = t + log(-t) - log y: from 0.021 to
///   about 1e-5 (cubic convergence; float32 rounding adds about 1e-6 near the branch point,
///   where |1 + t| >= 0.01 for the condition numbers 1/|1 + t| <= 100 the callers keep).
/// `halleyStep` in double, against log y in double, then takes t below 1e-13, far below the
/// float32 outputs' rounding. Every lane is computed alone (no lane depends on another), so
/// equal inputs give equal outputs wherever they sit in a row.
@_transparent
func startAndFloatStep(logY l1: SIMD8<Float>, _ y0: SIMD4<Double>, _ y1: SIMD4<Double>) -> SIMD8<Float> {
    typealias F = SIMD8<Float>
    let one = F(repeating: 1), two = F(repeating: 2), minusOne = F(repeating: -1)
    let l2 = logFloat8(-l1)
    let inverseL1 = one / l1
    let i2 = inverseL1 * inverseL1
    let third: F = l2 * (l2 - two) * F(repeating: 0.5) * i2
    let inner: F = F(repeating: -9) + two * l2
    let cubic: F = F(repeating: 6) + l2 * inner
    let fourth: F = l2 * cubic * (i2 * inverseL1 / F(repeating: 6))
    var t = l1 - l2 + l2 * inverseL1 + third + fourth
    let quarter = SIMD4<Double>(repeating: 0.25)
    // In most steps of a row no class has y > 0.25. (The double masks: any() of the float32 one
    // is left as a call; float32(y) > 0.25 implies y > 0.25.)
    if any(y0 .> quarter) || any(y1 .> quarter) {
        let nearBranch = F(lowHalf: lanesToFloat(y0), highHalf: lanesToFloat(y1)) .> F(repeating: 0.25)
        t.replace(with: F(lowHalf: lanesToFloat(branchSeries(y0)), highHalf: lanesToFloat(branchSeries(y1))),
                  where: nearBranch)
    }
    t.replace(with: minusOne, where: t .> minusOne)
    let g = t + logFloat8(-t) - l1
    let t1 = t + one
    t -= g * (two * t * t1) / (two * t1 * t1 + g)
    t.replace(with: minusOne, where: t .> minusOne)
    return t
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

/// y = a p + b, kept in [smallestY, up] (a y clamped at smallestY is one with y <= smallestY).
@inline(__always)
func clampedY(_ p: SIMD4<Double>, _ k: DiscreteRowConstants) -> SIMD4<Double> {
    typealias V = SIMD4<Double>
    var y = V(repeating: k.offset).addingProduct(V(repeating: k.slope), p)  // a p + b
    let smallest = V(repeating: smallestY)
    y.replace(with: smallest, where: y .<= smallest)
    let up = V(repeating: k.up)
    y.replace(with: up, where: y .> up)
    return y
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

/// The length of each scratch array of the kernels below for `count` values: count plus the
/// three rowExponentials may write past the last row, rounded up to a multiple of 8.
@inline(__always)
func discreteRowArrayLength(_ count: Int) -> Int { (count + 3 + 7) & ~7 }

/// Rows per batch of the row kernels below: short rows are done many at a time, their values
/// side by side in the scratch arrays, so that each pass runs over hundreds of values (for the
/// processor to overlap many steps) and pads only the batch, not each row, to whole vectors.
/// Rows of 256 classes or more go one at a time.
public func discreteBatchRows(count: Int) -> Int { max(1, 256 / max(count, 1)) }

/// The scratch discreteForwardRows needs for rows of `count` classes: doubles (four arrays of
/// doubles and one of float32, as long, over a batch).
public func discreteForwardScratch(count: Int) -> Int { 5 * discreteRowArrayLength(discreteBatchRows(count: count) * count) }

/// The scratch discreteBackwardRows needs: one array more than the forward (the s_i).
public func discreteBackwardScratch(count: Int) -> Int { 6 * discreteRowArrayLength(discreteBatchRows(count: count) * count) }

/// p = softmax(z) of every row of a batch, side by side into `ps` (`rows * count` values, and
/// zeros after them to the array's end): e_i = exp(z_i - max) by rowExponentials, then each row
/// times 1/sum e (the one rounding the single-row kernels made).
@inline(__always)
func batchProbabilities(_ z: UnsafePointer<Float>, rows: Int, count: Int, into ps: UnsafeMutablePointer<Double>) {
    for r in 0..<rows {  // in order: a row's exponentials write up to three values past it
        let row = ps + r * count
        let inverseSum = 1 / rowExponentials(z + r * count, count: count, into: row)
        for i in 0..<count { row[i] *= inverseSum }
    }
    for i in (rows * count)..<discreteRowArrayLength(rows * count) { ps[i] = 0 }
}

/// For every value p_i in `ps` (a batch's probabilities, padded with zeros): y_i = a p_i + b
/// clamped to [smallestY, up] into `ys`, log y_i into `logs`, and t_i = log h^-1(y_i) into
/// `ts` (exact and tight modes; the reference mode's rows take referenceForwardRows); arrays of
/// discreteRowArrayLength(count) doubles, and `floats`, as many float32 values. Separate passes
/// over the row, each with a short chain of work per step, so that the processor overlaps many
/// steps (one pass doing all of it waits on a chain of three logs and three divisions per
/// class): log y in double (and in float32, into `floats`); the start and a float32 Halley
/// step, eight lanes loaded whole from `floats` (t back into `floats`); a double Halley step.
@inline(never)
func inverseRow(_ ps: UnsafePointer<Double>, count: Int, constants k: DiscreteRowConstants,
                ys: UnsafeMutablePointer<Double>, logs: UnsafeMutablePointer<Double>, ts: UnsafeMutablePointer<Double>,
                floats: UnsafeMutablePointer<Float>) {
    let n = (count + 7) & ~7  // whole steps of eight, within discreteRowArrayLength(count)
    var i = 0
    while i < n {
        let y = clampedY(loadLanes(ps + i), k)
        let logY = log4(y)
        storeLanes(y, ys + i)
        storeLanes(logY, logs + i)
        UnsafeMutableRawPointer(floats + i).storeBytes(of: lanesToFloat(logY), as: SIMD4<Float>.self)
        i += 4
    }
    i = 0
    while i < n {
        let logY = UnsafeRawPointer(floats + i).loadUnaligned(as: SIMD8<Float>.self)
        let t = startAndFloatStep(logY: logY, loadLanes(ys + i), loadLanes(ys + i + 4))
        UnsafeMutableRawPointer(floats + i).storeBytes(of: t, as: SIMD8<Float>.self)
        i += 8
    }
    i = 0
    while i < n {
        let t = lanesToDouble(UnsafeRawPointer(floats + i).loadUnaligned(as: SIMD4<Float>.self))
        storeLanes(halleyStep(t, logY: loadLanes(logs + i)), ts + i)
        i += 4
    }
}

/// The reference mode's outputs from a batch's probabilities `ps` (`count` values): y = a p + b
/// clamped, u = -1 - log y into `logs` (discreteRowArrayLength(count) doubles), then
/// t = -1 - sqrt(2u) - 0.75u (the official closed form; no cap) into `out`. Two passes, each a
/// short chain per step (one pass waits on a log's division and then the square root's Newton
/// steps: 40% slower measured).
@inline(never)
func referenceForwardRows(_ ps: UnsafePointer<Double>, count: Int, constants k: DiscreteRowConstants,
                          logs: UnsafeMutablePointer<Double>, out: UnsafeMutablePointer<Float>) {
    typealias V = SIMD4<Double>
    let one = V(repeating: 1), two = V(repeating: 2), threeQuarters = V(repeating: 0.75)
    var i = 0
    while i < count {  // ps is padded with zeros to whole steps
        storeLanes(-one - log4(clampedY(loadLanes(ps + i), k)), logs + i)
        i += 4
    }
    i = 0
    while i < count {
        let u = loadLanes(logs + i)
        store4(-one - squareRoot4(two * u) - threeQuarters * u, out, i, count)
        i += 4
    }
}

/// Forward pass over `rows` float32 rows of `count` classes, discreteBatchRows(count) rows at a
/// time. `scratch` holds discreteForwardScratch(count) doubles; `out` may be `z` (a batch reads
/// its logits before it writes).
@inline(never)
public func discreteForwardRows(_ z: UnsafePointer<Float>, rows: Int, count: Int, constants k: DiscreteRowConstants,
                                scratch: UnsafeMutablePointer<Double>, out: UnsafeMutablePointer<Float>) {
    let batch = discreteBatchRows(count: count)
    let n = discreteRowArrayLength(batch * count)
    let ps = scratch, ys = scratch + n, logs = scratch + 2 * n, ts = scratch + 3 * n
    let floats = UnsafeMutableRawPointer(scratch + 4 * n).bindMemory(to: Float.self, capacity: n)
    let top = SIMD4<Double>(repeating: k.topLogit)
    var first = 0
    while first < rows {
        let batchRows = min(batch, rows - first), values = batchRows * count
        let zb = z + first * count, outb = out + first * count
        first += batchRows
        batchProbabilities(zb, rows: batchRows, count: count, into: ps)
        if k.reference {
            referenceForwardRows(ps, count: values, constants: k, logs: logs, out: outb)
            continue
        }
        inverseRow(ps, count: values, constants: k, ys: ys, logs: logs, ts: ts, floats: floats)
        var i = 0
        while i < values {
            let t = loadLanes(ts + i)
            store4(t.replacing(with: top, where: t .> top), outb, i, values)
            i += 4
        }
    }
}

/// Backward pass over `rows` float32 rows of `count` classes, discreteBatchRows(count) rows at a
/// time. `scratch` holds discreteBackwardScratch(count) doubles; `out` may be `z` or `g`.
@inline(never)
public func discreteBackwardRows(_ z: UnsafePointer<Float>, _ g: UnsafePointer<Float>, rows: Int, count: Int,
                                 constants k: DiscreteRowConstants, scratch: UnsafeMutablePointer<Double>,
                                 out: UnsafeMutablePointer<Float>) {
    typealias V = SIMD4<Double>
    let batch = discreteBatchRows(count: count)
    let n = discreteRowArrayLength(batch * count)
    let ps = scratch, ys = scratch + n, logs = scratch + 2 * n, ts = scratch + 3 * n, s = scratch + 4 * n
    let floats = UnsafeMutableRawPointer(scratch + 5 * n).bindMemory(to: Float.self, capacity: n)
    let slope = V(repeating: k.slope), one = V(repeating: 1), zero = V(repeating: 0)
    let smallest = V(repeating: smallestY), two = V(repeating: 2), threeQuarters = V(repeating: 0.75)
    var first = 0
    while first < rows {
        let batchRows = min(batch, rows - first), values = batchRows * count
        let zb = z + first * count, gb = g + first * count, outb = out + first * count
        first += batchRows
        batchProbabilities(zb, rows: batchRows, count: count, into: ps)
        // y dt/dy: t/(1 + t) (exact, tight); 1/sqrt(2u) + 0.75 with u = -1 - log y > 0 (reference,
        // y <= up < 1/e, where t itself is not needed); 0 where y was clamped at smallestY.
        var i = 0
        if k.reference {
            while i < values {  // two passes, as in referenceForwardRows: y and 2u, then the rest
                let y = clampedY(loadLanes(ps + i), k)
                storeLanes(y, ys + i)
                storeLanes(two * (-one - log4(y)), logs + i)
                i += 4
            }
        } else {
            inverseRow(ps, count: values, constants: k, ys: ys, logs: logs, ts: ts, floats: floats)
        }
        i = 0
        while i < values {  // past the batch, p and g are 0
            let p = loadLanes(ps + i), y = loadLanes(ys + i)
            var elasticity: V
            if k.reference {
                elasticity = inverseSquareRoot4(loadLanes(logs + i)) + threeQuarters
            } else {
                let t = loadLanes(ts + i)
                elasticity = t / (t + one)
            }
            elasticity.replace(with: zero, where: y .<= smallest)
            storeLanes(load4(gb, i, values, padding: 0) * (slope * p / y) * elasticity, s + i)
            i += 4
        }
        for r in 0..<batchRows {
            let row = r * count
            // The most probable class (the first maximum) gets minus the sum of the others.
            let rawMaximum = rowMaximum(zb + row, count: count)
            var top = 0
            while zb[row + top] != rawMaximum { top += 1 }
            discreteGradients(s + row, ps + row, count: count, weightedSum: rowSum(s + row, count: count), top: top,
                              out: outb + row)
        }
    }
}

/// sum of `count` doubles, four lanes per step.
@inline(__always)
func rowSum(_ x: UnsafePointer<Double>, count: Int) -> Double {
    var lanes = SIMD4<Double>()
    var i = 0
    while i + 4 <= count {
        lanes += loadLanes(x + i)
        i += 4
    }
    var total = lanes.sum()
    while i < count {
        total += x[i]
        i += 1
    }
    return total
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
