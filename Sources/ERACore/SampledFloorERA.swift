// Continuous ERA with a floor on the entropy of the distribution actually sampled: the normal
// truncated to [lo, hi] (docs/math.md, "The sampled floor"; spec 6.3).
//
//   l      = the continuous ERA output (math 1) for the std logits s
//   c      = the smallest c >= 0 with sum_i H_TN(m_i, exp(l_i + c)) >= H0 + delta
//   out_i  = l_i + c
//
// H_TN increases with the scale towards log(hi - lo), so c exists iff H0 + delta < D log(hi - lo).
// The offset is not clipped at log_std_max: the floor on the sampled entropy is the point, and
// exp(l_i + c) may exceed exp(log_std_max) (never exp(log_std_min) from below).

/// The sampled-floor activation: a validated continuous ERA and the sampling interval.
public struct SampledFloorERA: SampledFloorActivation {
    public let gaussian: ContinuousERA
    public let lo: Double
    public let hi: Double

    /// Throws as ContinuousERA.init, .badParameter unless lo < hi are finite, and
    /// .infeasibleTarget unless H0 + delta < D log(hi - lo) (the supremum of the truncated
    /// entropy, approached as every scale grows without bound).
    public init(gaussian: ContinuousERA, lo: Double, hi: Double) throws(ERAError) {
        guard lo.isFinite, hi.isFinite, lo < hi else { throw .badParameter }
        let logSpan = Math.log(0.5 * hi - 0.5 * lo) + Math.log(2.0)
        guard gaussian.guaranteedFloor < Double(gaussian.dim) * logSpan else { throw .infeasibleTarget }
        self.gaussian = gaussian
        self.lo = lo
        self.hi = hi
    }

    /// H0 + delta: the truncated-normal entropy every output row reaches.
    public var target: Double { gaussian.guaranteedFloor }

    var workPerRow: Int { gaussian.dim * 400 }

    /// The stored output l + c in T, rounded up so that the floor holds for the stored value
    /// (each H_TN increases with its log scale).
    @inline(__always)
    func shifted<T: ERAReal>(_ l: T, _ c: Double) -> T {
        c == 0 ? l : gaussian.roundedUp(Double(l) + c)
    }

    /// sum_i H_TN(m_i, exp(shifted(l_i, c))) - target, in double.
    func shortfall<T: ERAReal>(_ l: UnsafePointer<T>, _ m: UnsafePointer<T>, _ c: Double) -> Double {
        var total = CompensatedSum()
        for i in 0..<gaussian.dim {
            total.add(Entropy.truncatedNormalEntropy(loc: Double(m[i]), logStd: Double(shifted(l[i], c)), lo: lo, hi: hi))
        }
        return (total.sum - target) + total.compensation
    }

    /// d/dc sum_i H_TN(m_i, exp(l_i + c)).
    func slope<T: ERAReal>(_ l: UnsafePointer<T>, _ m: UnsafePointer<T>, _ c: Double) -> Double {
        var sum = 0.0
        for i in 0..<gaussian.dim {
            sum += Entropy.truncatedNormalEntropyDerivative(loc: Double(m[i]), logStd: Double(shifted(l[i], c)),
                                                            lo: lo, hi: hi).logStd
        }
        return sum
    }

    /// The smallest offset c >= 0 whose row reaches the target (to within 1e-12 (1 + |target|)
    /// nats above it), or nil when none does in double (a target within rounding of
    /// D log(hi - lo)). The bracket [a, b], f(a) < 0 <= f(b), doubles from b = 1; then
    /// bracketedRoot's safeguarded Newton inside it.
    func offset<T: ERAReal>(_ l: UnsafePointer<T>, _ m: UnsafePointer<T>) -> Double? {
        var fa = shortfall(l, m, 0)
        if fa >= 0 { return 0 }
        let tolerance = 1e-12 * (1 + abs(target))
        var lowest = Double(l[0])
        for i in 0..<gaussian.dim { lowest = min(lowest, Double(l[i])) }
        // Beyond this every scale is e^64 times the interval: the entropy is D log(hi - lo)
        // to rounding.
        let limit = Math.log(0.5 * hi - 0.5 * lo) + Math.log(2.0) - lowest + 64
        var a = 0.0, b = 1.0
        var fb = shortfall(l, m, b)
        while fb < 0 {
            if b >= limit { return nil }
            a = b
            fa = fb
            b = min(2 * b, limit)
            fb = shortfall(l, m, b)
        }
        return bracketedRoot({ shortfall(l, m, $0) }, { slope(l, m, $0) }, a, fa, b, tolerance: tolerance)
    }

    /// The Gaussian outputs of all rows, computed by the continuous forward pass itself (so that
    /// a row with c = 0 is that output bit for bit), and each row's offset. Throws
    /// .infeasibleTarget when a row has no offset in double.
    func solve<T: ERAReal>(rows: Int, stdLogits: UnsafePointer<T>, loc: UnsafePointer<T>,
                           gaussianOut: UnsafeMutablePointer<T>, offsets: UnsafeMutablePointer<Double>) throws(ERAError) {
        try gaussian.forwardRows(rows: rows, input: stdLogits, output: gaussianOut)
        let d = gaussian.dim
        try forEachRowBlock(rows: rows, workPerRow: workPerRow) { range, _ in
            for row in range {
                offsets[row] = self.offset(UnsafePointer(gaussianOut + row * d), loc + row * d) ?? .nan
            }
        }
        for row in 0..<rows { guard !offsets[row].isNaN else { throw .infeasibleTarget } }
    }

    /// Forward pass: output[r, i] = l[r, i] + c[r]; `offset`, when given, receives c per row.
    /// `output` may be `stdLogits`.
    public func forward<T: ERAReal>(rows: Int, stdLogits: UnsafePointer<T>, loc: UnsafePointer<T>,
                                    output: UnsafeMutablePointer<T>, offset: UnsafeMutablePointer<T>?) throws(ERAError) {
        let d = gaussian.dim
        let gaussianOut = try TypedScratch<T>(perBlock: rows * d)
        let offsets = try Scratch(perBlock: rows)
        guard let l = gaussianOut.base, let c = offsets.base else { return }
        try solve(rows: rows, stdLogits: stdLogits, loc: loc, gaussianOut: l, offsets: c)
        for row in 0..<rows {
            for i in row * d..<(row + 1) * d { output[i] = shifted(l[i], c[row]) }
            offset?[row] = T(c[row])
        }
    }

    /// Backward pass by the implicit function theorem. With G = sum_i g_i, H_L,i and H_m,i the
    /// derivatives of H_TN at the output and S = sum_i H_L,i, on a row with c > 0:
    ///   dL/dl_i = g_i - G H_L,i / S,   dL/dm_i = -G H_m,i / S,   dL/d(H0 + delta) += G / S
    /// and dL/dl = g, dL/dm = 0 where c = 0; dL/dl then goes through the continuous backward
    /// pass. `gradStdLogits` may be `stdLogits` or `gradOutput`, `gradLoc` may be `loc`.
    public func backward<T: ERAReal>(rows: Int, stdLogits: UnsafePointer<T>, loc: UnsafePointer<T>,
                                     gradOutput: UnsafePointer<T>, gradStdLogits: UnsafeMutablePointer<T>,
                                     gradLoc: UnsafeMutablePointer<T>,
                                     gradResidual: UnsafeMutablePointer<T>?) throws(ERAError) {
        let d = gaussian.dim
        let count = rows * d
        let gaussianOut = try TypedScratch<T>(blocks: 3, perBlock: count)  // l, dL/dl, dL/dm
        let offsets = try Scratch(blocks: 2, perBlock: rows)  // c, then G/S
        let gaussianResidual = try TypedScratch<T>(perBlock: rows)
        guard let l = gaussianOut.base, let c = offsets.base, let residual = gaussianResidual.base else { return }
        let gradL = l + count, gradM = l + 2 * count
        let extra = c + rows
        try solve(rows: rows, stdLogits: stdLogits, loc: loc, gaussianOut: l, offsets: c)
        let invalid = try TypedScratch<Bool>(perBlock: rows)
        guard let bad = invalid.base else { return }
        try forEachRowBlock(rows: rows, workPerRow: d * 40) { range, _ in
            for row in range {
                let start = row * d
                bad[row] = false
                guard c[row] > 0 else {
                    for i in start..<start + d {
                        gradL[i] = gradOutput[i]
                        gradM[i] = 0
                    }
                    extra[row] = 0
                    continue
                }
                var total = 0.0, slope = 0.0
                for i in start..<start + d { total += Double(gradOutput[i]) }
                for i in start..<start + d {
                    let v = Entropy.truncatedNormalEntropyDerivative(loc: Double(loc[i]), logStd: Double(self.shifted(l[i], c[row])),
                                                                     lo: self.lo, hi: self.hi)
                    slope += v.logStd
                }
                let perSlope = total / slope
                for i in start..<start + d {
                    let v = Entropy.truncatedNormalEntropyDerivative(loc: Double(loc[i]), logStd: Double(self.shifted(l[i], c[row])),
                                                                     lo: self.lo, hi: self.hi)
                    gradL[i] = T(Double(gradOutput[i]) - perSlope * v.logStd)
                    gradM[i] = T(-perSlope * v.loc)
                    if !gradL[i].isFinite || !gradM[i].isFinite { bad[row] = true }
                }
                extra[row] = perSlope
                if !T(perSlope).isFinite { bad[row] = true }
            }
        }
        for row in 0..<rows { guard !bad[row] else { throw .badParameter } }
        // The Gaussian part's gradient goes to scratch first: K w (g - sum g w) can overflow the
        // output type where dL/dl did not, and then nothing may be written.
        let gradS = try TypedScratch<T>(perBlock: count)
        guard let gs = gradS.base else { return }
        try gaussian.backwardRows(rows: rows, input: stdLogits, gradOutput: UnsafePointer(gradL), gradInput: gs,
                                  gradResidual: residual)
        for i in 0..<count { guard gs[i].isFinite else { throw .badParameter } }
        if gradResidual != nil {
            for row in 0..<rows { guard T(Double(residual[row]) + extra[row]).isFinite else { throw .badParameter } }
        }
        for i in 0..<count {
            gradStdLogits[i] = gs[i]
            gradLoc[i] = gradM[i]
        }
        if let gradResidual {
            for row in 0..<rows { gradResidual[row] = T(Double(residual[row]) + extra[row]) }
        }
    }

    /// The truncated-normal entropy of each row of log stds against H0 + delta (math 4);
    /// report.floor is H0 + delta, which the sampled-floor forward pass guarantees.
    public func check<T: ERAReal>(rows: Int, loc: UnsafePointer<T>?, logStd: UnsafePointer<T>?,
                                  tolerance: Double) throws(ERAError) -> BoundReport {
        let d = gaussian.dim
        return try BoundCheck.report(rows: rows, target: target, tolerance: tolerance,
                                     floor: target) { (entropies: UnsafeMutablePointer<Double>) throws(ERAError) in
            guard let loc, let logStd else { throw .nullPointer }
            try forEachRowBlock(rows: rows, workPerRow: d * 20) { range, _ in
                for row in range {
                    var sum = CompensatedSum()
                    for i in row * d..<(row + 1) * d {
                        sum.add(Entropy.truncatedNormalEntropy(loc: Double(loc[i]), logStd: Double(logStd[i]), lo: self.lo, hi: self.hi))
                    }
                    entropies[row] = sum.value
                }
            }
        }
    }
}

/// A continuous ERA with a floor on the entropy of the distribution the policy samples (the
/// truncated normal, SampledFloorERA; tanh(x), TanhFloorERA): the entry points' common shape.
public protocol SampledFloorActivation: Sendable {
    /// Forward pass: output[r, i] = the row's log stds; `offset`, when given, receives the
    /// row's offset. `output` may be `stdLogits`.
    func forward<T: ERAReal>(rows: Int, stdLogits: UnsafePointer<T>, loc: UnsafePointer<T>,
                             output: UnsafeMutablePointer<T>, offset: UnsafeMutablePointer<T>?) throws(ERAError)
    /// Backward pass; `gradStdLogits` may be `stdLogits` or `gradOutput`, `gradLoc` may be `loc`.
    func backward<T: ERAReal>(rows: Int, stdLogits: UnsafePointer<T>, loc: UnsafePointer<T>,
                              gradOutput: UnsafePointer<T>, gradStdLogits: UnsafeMutablePointer<T>,
                              gradLoc: UnsafeMutablePointer<T>, gradResidual: UnsafeMutablePointer<T>?) throws(ERAError)
    /// The sampled entropy of each row of log stds against the guaranteed floor.
    func check<T: ERAReal>(rows: Int, loc: UnsafePointer<T>?, logStd: UnsafePointer<T>?,
                           tolerance: Double) throws(ERAError) -> BoundReport
}
