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

/// Four doubles rounded to float32 towards +inf (the smallest float32 >= each value), without a
/// branch per lane: the nearest float32, moved one step up (its bits +1 when positive, -1 when
/// negative) where it fell below. -0 is made +0 first, so that a step from it goes up.
@inline(__always)
func roundedUp(_ v: SIMD4<Double>) -> SIMD4<Float> {
    let nearest = SIMD4<Float>(v) + SIMD4<Float>(repeating: 0)
    let below = unsafeBitCast(SIMD4<Double>(nearest) .< v, to: SIMD4<Int64>.self)  // -1 or 0
    let bits = unsafeBitCast(nearest, to: SIMD4<Int32>.self)
    let step = (bits &>> 31) | SIMD4(repeating: 1)  // -1 for a negative value, else +1
    return unsafeBitCast(bits &+ (step & SIMD4<Int32>(truncatingIfNeeded: below)), to: SIMD4<Float>.self)
}

/// exp(s_i - max) for the row into `e` (four lanes at a time, past the end as 0: `e` holds
/// count + 3 doubles); returns their sum.
@inline(__always)
func rowExponentials(_ s: UnsafePointer<Float>, count: Int, into e: UnsafeMutablePointer<Double>) -> Double {
    let m = SIMD4<Double>(repeating: Double(rowMaximum(s, count: count)))
    var sum = SIMD4<Double>()
    var i = 0
    while i < count {
        let x = exp4(load4(s, i, count, padding: -.infinity) - m)
        sum += x
        UnsafeMutableRawPointer(e + i).storeBytes(of: x, as: SIMD4<Double>.self)
        i += 4
    }
    return sum.sum()
}

/// Rows per batch of the row kernels below. A batch is done pass by pass (first every row's
/// exponentials and sum, then every row's outputs), so that one row's division and sums do not
/// wait on the row before: for the policies' 6 to 61 dimensions a row is too short to keep
/// the processor busy alone.
public let continuousBatchRows = 16

/// The scratch the row kernels need for rows of `count` values: doubles.
public func continuousScratch(count: Int) -> Int { continuousBatchRows * (2 * (count + 3) + 2) }

/// Forward pass over `rows` float32 rows of `count` values; `scratch` holds
/// continuousScratch(count) doubles. `out` may be `s` (a batch reads all its rows first).
@inline(never)
public func continuousForwardRows(_ s: UnsafePointer<Float>, rows: Int, count: Int, constants k: ContinuousRowConstants,
                                  scratch: UnsafeMutablePointer<Double>, out: UnsafeMutablePointer<Float>) {
    let stride = count + 3
    let factors = scratch + continuousBatchRows * stride
    let top = SIMD4<Double>(repeating: k.logStdMax), bottom = SIMD4<Double>(repeating: k.logStdMin)
    var first = 0
    while first < rows {
        let batch = min(continuousBatchRows, rows - first)
        for r in 0..<batch {  // K / S per row
            factors[r] = k.scale / rowExponentials(s + (first + r) * count, count: count, into: scratch + r * stride)
        }
        for r in 0..<batch {
            let e = scratch + r * stride, rowOut = out + (first + r) * count
            let factor = SIMD4<Double>(repeating: factors[r])
            var i = 0
            while i < count {
                var y = top.addingProduct(UnsafeRawPointer(e + i).loadUnaligned(as: SIMD4<Double>.self), factor)
                y.replace(with: bottom, where: y .< bottom)
                let stored = roundedUp(y)
                if i + 4 <= count {
                    UnsafeMutableRawPointer(rowOut + i).storeBytes(of: stored, as: SIMD4<Float>.self)
                } else {
                    for lane in 0..<(count - i) { rowOut[i + lane] = stored[lane] }
                }
                i += 4
            }
        }
        first += batch
    }
}

/// Backward pass over `rows` float32 rows of `count` values: out = K w (gt - sum gt w), gt = g
/// where the forward did not clip; sum gt w (the gradient of the residual) into `residual`
/// when given. `scratch` holds continuousScratch(count) doubles; `out` may be `s` or `g`.
@inline(never)
public func continuousBackwardRows(_ s: UnsafePointer<Float>, _ g: UnsafePointer<Float>, rows: Int, count: Int,
                                   constants k: ContinuousRowConstants, scratch: UnsafeMutablePointer<Double>,
                                   out: UnsafeMutablePointer<Float>, residual: UnsafeMutablePointer<Float>?) {
    let stride = count + 3
    let masked = scratch + continuousBatchRows * stride
    let inverseSums = masked + continuousBatchRows * stride, totals = inverseSums + continuousBatchRows
    let top = SIMD4<Double>(repeating: k.logStdMax), bottom = SIMD4<Double>(repeating: k.logStdMin)
    let scale = SIMD4<Double>(repeating: k.scale)
    var first = 0
    while first < rows {
        let batch = min(continuousBatchRows, rows - first)
        for r in 0..<batch {
            inverseSums[r] = 1 / rowExponentials(s + (first + r) * count, count: count, into: scratch + r * stride)
        }
        for r in 0..<batch {  // w, the masked gradient and their product's sum
            let weights = scratch + r * stride, gts = masked + r * stride, rowG = g + (first + r) * count
            let inverseSum = SIMD4<Double>(repeating: inverseSums[r])
            var weighted = SIMD4<Double>()
            var i = 0
            while i < count {
                let w = UnsafeRawPointer(weights + i).loadUnaligned(as: SIMD4<Double>.self) * inverseSum
                let y = top.addingProduct(w, scale)
                // The forward output is max(y, min): clipped exactly where y <= log_std_min.
                let gt = load4(rowG, i, count, padding: 0).replacing(with: SIMD4(repeating: 0), where: y .<= bottom)
                weighted = weighted.addingProduct(gt, w)
                UnsafeMutableRawPointer(weights + i).storeBytes(of: w, as: SIMD4<Double>.self)
                UnsafeMutableRawPointer(gts + i).storeBytes(of: gt, as: SIMD4<Double>.self)
                i += 4
            }
            totals[r] = weighted.sum()
        }
        for r in 0..<batch {
            let weights = scratch + r * stride, gts = masked + r * stride, rowOut = out + (first + r) * count
            let total = SIMD4<Double>(repeating: totals[r])
            var i = 0
            while i < count {
                let w = UnsafeRawPointer(weights + i).loadUnaligned(as: SIMD4<Double>.self)
                let gt = UnsafeRawPointer(gts + i).loadUnaligned(as: SIMD4<Double>.self)
                let gradient = SIMD4<Float>(scale * w * (gt - total))
                if i + 4 <= count {
                    UnsafeMutableRawPointer(rowOut + i).storeBytes(of: gradient, as: SIMD4<Float>.self)
                } else {
                    for lane in 0..<(count - i) { rowOut[i + lane] = gradient[lane] }
                }
                i += 4
            }
            residual?[first + r] = Float(totals[r])
        }
        first += batch
    }
}
