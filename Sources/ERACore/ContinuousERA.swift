// Continuous ERA: the bounded-Gaussian activation of math 1.
//
//   K = H0 + delta - D*c - D*log_std_max  (<= 0),  c = 0.5*log(2*pi*e)
//   log_std_i = max(log_std_max + K * softmax(s)_i, log_std_min)

import ERASIMD

/// The continuous ERA activation for rows of `dim` raw scale outputs, with its parameters
/// validated at construction.
public struct ContinuousERA: Sendable {
    public let targetEntropy: Double
    public let residual: Double
    public let logStdMin: Double
    public let logStdMax: Double
    public let dim: Int
    /// K = H0 + delta - D*c - D*log_std_max, <= 0 for a feasible target.
    public let scale: Double

    /// Throws .badShape if dim < 1, .badParameter for a non-finite parameter, a negative residual
    /// or logStdMin >= logStdMax, .infeasibleTarget if K > 0.
    public init(targetEntropy: Double, residual: Double, logStdMin: Double, logStdMax: Double,
                dim: Int64) throws(ERAError) {
        guard dim >= 1 else { throw .badShape }
        guard targetEntropy.isFinite, residual.isFinite, residual >= 0, logStdMin < logStdMax,
              abs(logStdMin) <= ContinuousERA.logStdLimit, abs(logStdMax) <= ContinuousERA.logStdLimit
        else { throw .badParameter }
        self.targetEntropy = targetEntropy
        self.residual = residual
        self.logStdMin = logStdMin
        self.logStdMax = logStdMax
        self.dim = Int(dim)
        let d = Double(dim)
        let k = targetEntropy + residual - d * Math.gaussianEntropyPerDim - d * logStdMax
        guard k <= 0, ContinuousERA.exactlyFeasible(targetEntropy, residual, dim: d, logStdMax: logStdMax)
        else { throw .infeasibleTarget }
        // A target so far below the bounds that K overflows leaves nothing to compute with.
        guard k.isFinite else { throw .badParameter }
        scale = k
        // A bound on what rounding can cost a row's entropy (see raiseToFloor): the weights sum
        // to 1 within D ulps, each y_i is rounded once. Below 1e-11 (a tenth of the float64
        // tolerance; the defaults and every setting with |K| D below about 4e4) the repair
        // pass is skipped: it costs 5-25% of a float64 forward.
        let bound = 2.3e-16 * (abs(k) * (d + 16) + 2 * d * max(abs(logStdMin), abs(logStdMax)))
        repairsFloor = bound >= 1e-11
    }

    /// Whether forward rows are checked, and repaired, against the floor after rounding.
    let repairsFloor: Bool

    /// Whether H0 + delta <= D*log_std_max + D*c exactly, the right side being the entropy of a
    /// row at log_std_max as the entropies are computed (D*c rounded once, as
    /// Entropy.gaussianRowParts adds it). K rounds to 0 also for targets above that by less
    /// than its rounding (ulps of |H0|: 8.7e-10 at |H0| = 1e7), and no output can then reach
    /// the floor; so D*log_std_max is split exactly (fused multiply-add) and the terms are
    /// summed compensated.
    static func exactlyFeasible(_ target: Double, _ residual: Double, dim d: Double, logStdMax: Double) -> Bool {
        let top = d * logStdMax
        var k = CompensatedSum()
        for term in [target, residual, -(d * Math.gaussianEntropyPerDim), -top, -((-top).addingProduct(d, logStdMax))] {
            k.add(term)
        }
        // The pair's rounded sum keeps its sign (a sum that small is exact).
        return k.value <= 0
    }

    /// The largest |log_std_min|, |log_std_max| accepted: std up to e^10000 is far beyond any
    /// policy, and the bound keeps float32 outputs finite and the rounding of
    /// log_std_max + K*w (about D * eps * |log_std_max|) far below the tolerances.
    public static let logStdLimit = 1e4

    /// The Gaussian entropy every output row is guaranteed to reach: H0 + delta.
    public var guaranteedFloor: Double { targetEntropy + residual }

    var workPerRow: Int { dim * 8 }

    /// v in T, rounded towards +inf, so that the stored log stds never sum to less than the
    /// double-precision values the guarantee is about. Rounding is monotone and v <= logStdMax,
    /// so the result never exceeds logStdMax rounded up to T: a log_std_max that T cannot
    /// represent is, in T, its next representable value above.
    @inline(__always)
    func roundedUp<T: ERAReal>(_ v: Double) -> T {
        var stored = T(v)
        if Double(stored) < v { stored = stored.nextUp }
        return stored
    }

    /// The float32 vector kernels' constants, when the vector kernels run and |K| <= 1e200.
    /// Their exp is 0 below e^-708 (the portable one only below e^-1000); K w for such a w
    /// is below 1e200 e^-708 = 3e-108, invisible in float32, but a K of 1e300 (H0 = -1e300)
    /// would make it visible (the fuzz target found one), so such rows take the portable path.
    var floatRowConstants: ContinuousRowConstants? {
        guard VectorKernels.enabled, abs(scale) <= 1e200 else { return nil }
        return ContinuousRowConstants(logStdMax: logStdMax, logStdMin: logStdMin, scale: scale)
    }

    func forwardRows<T: ERAReal>(rows: Int, input: UnsafePointer<T>, output: UnsafeMutablePointer<T>) throws(ERAError) {
        let d = dim
        if T.self == Float.self, let constants = floatRowConstants {
            let s = UnsafeRawPointer(input).assumingMemoryBound(to: Float.self)
            let out = UnsafeMutableRawPointer(output).assumingMemoryBound(to: Float.self)
            try forEachRowBlock(rows: rows, workPerRow: workPerRow / 4, scratchPerBlock: continuousScratch(count: d)) { range, scratch in
                continuousForwardRows(s + range.lowerBound * d, rows: range.count, count: d, constants: constants,
                                      scratch: scratch!, out: out + range.lowerBound * d)
            }
            return
        }
        try forEachRowBlock(rows: rows, workPerRow: workPerRow) { range, _ in
            for row in range {
                let s = input + row * d
                let out = output + row * d
                let stats = SoftmaxStatistics(s, count: d)
                for i in 0..<d {
                    let y = self.logStdMax + self.scale * stats.probability(Double(s[i]))
                    out[i] = roundedUp(max(y, self.logStdMin))
                }
                if self.repairsFloor { self.raiseToFloor(out) }
            }
        }
    }

    /// The rows' floor holds in exact arithmetic, but the roundings of log_std_max + K*w_i and
    /// of the softmax weights (whose sum is 1 only to about sqrt(D) ulps) cost up to about
    /// eps*|K|: with log-std bounds of +-1e4 and D of 5000 (|K| up to 1e8), up to 1.6e-7 nats,
    /// far beyond the float64 tolerance of 1e-10. So the row's entropy is computed as the bound
    /// check computes it (Entropy.gaussianRowParts, compensated, before its final rounding),
    /// and where it falls short of the
    /// floor the entries strictly between the bounds (all entries below log_std_max when there
    /// are none) are raised by the shortfall, spread evenly and rounded up, at least one ulp
    /// each, until it does not. The change is below 1e-10 per entry for every legal setting;
    /// rows with no shortfall (all at the default bounds) are left as they are.
    @inline(__always)
    func raiseToFloor<T: ERAReal>(_ out: UnsafeMutablePointer<T>) {
        let floor = guaranteedFloor
        for _ in 0..<16 {
            // floor - sum is exact (the two are within a factor 2 where it matters), so the
            // shortfall keeps what rounding the entropy to one double would drop.
            let entropy = Entropy.gaussianRowParts(out, dim: dim)
            let shortfall = (floor - entropy.sum) - entropy.compensation
            guard shortfall > 0 else { return }
            var inside = 0
            var belowMax = 0
            for i in 0..<dim {
                let v = Double(out[i])
                if v < logStdMax { belowMax += 1 }
                if v < logStdMax && v > logStdMin { inside += 1 }
            }
            let movable = inside > 0 ? inside : belowMax
            guard movable > 0 else { return }  // every entry at log_std_max: nothing can rise
            let step = shortfall / Double(movable) * 1.0625
            for i in 0..<dim {
                let v = Double(out[i])
                guard v < logStdMax, inside == 0 || v > logStdMin else { continue }
                let raised: T = roundedUp(min(v + step, logStdMax))
                out[i] = max(raised, min(out[i].nextUp, roundedUp(logStdMax)))
            }
        }
    }

    /// Backward pass (math 1, "Gradient"); `gradInput` may be `input` or `gradOutput`;
    /// `gradResidual`, when given, receives sum_i gt_i*w_i per row.
    func backwardRows<T: ERAReal>(rows: Int, input: UnsafePointer<T>, gradOutput: UnsafePointer<T>,
                                  gradInput: UnsafeMutablePointer<T>,
                                  gradResidual: UnsafeMutablePointer<T>?) throws(ERAError) {
        let d = dim
        if T.self == Float.self, let constants = floatRowConstants {
            let s = UnsafeRawPointer(input).assumingMemoryBound(to: Float.self)
            let g = UnsafeRawPointer(gradOutput).assumingMemoryBound(to: Float.self)
            let out = UnsafeMutableRawPointer(gradInput).assumingMemoryBound(to: Float.self)
            let residual = gradResidual.map { UnsafeMutableRawPointer($0).assumingMemoryBound(to: Float.self) }
            try forEachRowBlock(rows: rows, workPerRow: workPerRow / 4, scratchPerBlock: continuousScratch(count: d)) { range, scratch in
                continuousBackwardRows(s + range.lowerBound * d, g + range.lowerBound * d, rows: range.count, count: d,
                                       constants: constants, scratch: scratch!, out: out + range.lowerBound * d,
                                       residual: residual.map { $0 + range.lowerBound })
            }
            return
        }
        try forEachRowBlock(rows: rows, workPerRow: workPerRow, scratchPerBlock: 2 * d) { range, scratch in
            let weights = scratch!
            let masked = scratch! + d
            for row in range {
                let s = input + row * d
                let g = gradOutput + row * d
                let stats = SoftmaxStatistics(s, count: d)
                var weighted = 0.0  // sum_i gt_i * w_i
                for i in 0..<d {
                    let w = stats.probability(Double(s[i]))
                    let y = self.logStdMax + self.scale * w
                    // The forward output is T(max(y, min)): a row entry is clipped exactly
                    // when y <= log_std_min (m_i = 0 there).
                    let gt = y > self.logStdMin ? Double(g[i]) : 0
                    weights[i] = w
                    masked[i] = gt
                    weighted += gt * w
                }
                let out = gradInput + row * d
                for j in 0..<d {
                    out[j] = T(self.scale * weights[j] * (masked[j] - weighted))
                }
                gradResidual?[row] = T(weighted)
            }
        }
    }
}

extension ContinuousERA {
    public func forward(rows: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>) throws(ERAError) {
        try forwardRows(rows: rows, input: input, output: output)
    }
    public func forward(rows: Int, input: UnsafePointer<Double>, output: UnsafeMutablePointer<Double>) throws(ERAError) {
        try forwardRows(rows: rows, input: input, output: output)
    }
    public func backward(rows: Int, input: UnsafePointer<Float>, gradOutput: UnsafePointer<Float>,
                         gradInput: UnsafeMutablePointer<Float>, gradResidual: UnsafeMutablePointer<Float>?) throws(ERAError) {
        try backwardRows(rows: rows, input: input, gradOutput: gradOutput, gradInput: gradInput, gradResidual: gradResidual)
    }
    public func backward(rows: Int, input: UnsafePointer<Double>, gradOutput: UnsafePointer<Double>,
                         gradInput: UnsafeMutablePointer<Double>, gradResidual: UnsafeMutablePointer<Double>?) throws(ERAError) {
        try backwardRows(rows: rows, input: input, gradOutput: gradOutput, gradInput: gradInput, gradResidual: gradResidual)
    }
}
