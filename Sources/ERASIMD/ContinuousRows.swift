// Continuous ERA over one row of float32 raw scales, four double lanes at a time (math 1;
// docs/math.md, "Vector kernels"): w = softmax(s), log_std = max(log_std_max + K w,
// log_std_min) rounded up to float32, and the backward K w_j (gt_j - sum_i gt_i w_i). The
// portable kernel's formulas in double with exp4; w is normalised by the sum of the same
// exponentials, so sum w = 1 to rounding whatever exp4's error, which is what the floor needs.

/// Everything the row kernels need from a ContinuousERA.
public struct ContinuousRowConstants {
    public var logStdMax: Double
    public var logStdMin: Double
    public var scale: Double  // K <= 0

    public init(logStdMax: Double, logStdMin: Double, scale: Double) {
        self.logStdMax = logStdMax
        self.logStdMin = logStdMin
        self.scale = scale
    }
}

/// Four doubles rounded to float32 towards +inf (the smallest float32 >= each value).
@inline(__always)
func roundedUp(_ v: SIMD4<Double>) -> SIMD4<Float> {
    let nearest = SIMD4<Float>(v)
    let below = SIMD4<Double>(nearest) .< v
    guard any(below) else { return nearest }
    var result = nearest
    for lane in 0..<4 where below[lane] { result[lane] = nearest[lane].nextUp }
    return result
}

/// Forward pass over one float32 row. `out` may be `s`.
@inline(never)
public func continuousForwardRow(_ s: UnsafePointer<Float>, count: Int, constants k: ContinuousRowConstants,
                                 out: UnsafeMutablePointer<Float>) {
    let maximum = Double(rowMaximum(s, count: count))
    let factor = k.scale / rowSum(s, count: count, maximum: maximum)  // K / S
    let m = SIMD4<Double>(repeating: maximum)
    let top = SIMD4<Double>(repeating: k.logStdMax), bottom = SIMD4<Double>(repeating: k.logStdMin)
    var i = 0
    while i < count {
        var y = top.addingProduct(exp4(load4(s, i, count, padding: -.infinity) - m), SIMD4(repeating: factor))
        y.replace(with: bottom, where: y .< bottom)
        let stored = roundedUp(y)
        if i + 4 <= count {
            UnsafeMutableRawPointer(out + i).storeBytes(of: stored, as: SIMD4<Float>.self)
        } else {
            for lane in 0..<(count - i) { out[i + lane] = stored[lane] }
        }
        i += 4
    }
}

/// Backward pass over one float32 row: out = K w (gt - sum gt w), gt = g where the forward did
/// not clip; returns sum gt w (the gradient of the residual). `scratch` holds 2*count doubles;
/// `out` may be `s` or `g`.
@inline(never)
public func continuousBackwardRow(_ s: UnsafePointer<Float>, _ g: UnsafePointer<Float>, count: Int,
                                  constants k: ContinuousRowConstants, scratch: UnsafeMutablePointer<Double>,
                                  out: UnsafeMutablePointer<Float>) -> Double {
    let maximum = Double(rowMaximum(s, count: count))
    let inverseSum = 1 / rowSum(s, count: count, maximum: maximum)
    let m = SIMD4<Double>(repeating: maximum)
    let top = SIMD4<Double>(repeating: k.logStdMax), bottom = SIMD4<Double>(repeating: k.logStdMin)
    let weights = scratch, masked = scratch + count
    var weighted = SIMD4<Double>()
    var i = 0
    while i < count {
        let w = exp4(load4(s, i, count, padding: -.infinity) - m) * inverseSum
        let y = top.addingProduct(w, SIMD4(repeating: k.scale))
        // The forward output is max(y, min): clipped exactly where y <= log_std_min.
        let gt = load4(g, i, count, padding: 0).replacing(with: 0, where: y .<= bottom)
        weighted = weighted.addingProduct(gt, w)
        if i + 4 <= count {
            UnsafeMutableRawPointer(weights + i).storeBytes(of: w, as: SIMD4<Double>.self)
            UnsafeMutableRawPointer(masked + i).storeBytes(of: gt, as: SIMD4<Double>.self)
        } else {
            for lane in 0..<(count - i) { weights[i + lane] = w[lane]; masked[i + lane] = gt[lane] }
        }
        i += 4
    }
    let total = weighted.sum()
    for j in 0..<count { out[j] = Float(k.scale * weights[j] * (masked[j] - total)) }
    return total
}
