// Softmax statistics in one streaming pass (math 3, "Efficiency"): running max m,
// S = sum exp(v - m) and T = sum (v - m)*exp(v - m), rescaled whenever the max grows,
// so that a row is read exactly once.

public struct OnlineSoftmax {
    public private(set) var maximum = -Double.infinity
    public private(set) var sumExp = 0.0
    public private(set) var sumShiftedTimesExp = 0.0

    @inline(__always) public init() {}

    /// Statistics computed elsewhere (the vector kernels): the max m, S and T as above.
    @inline(__always) init(maximum: Double, sumExp: Double, sumShiftedTimesExp: Double) {
        self.maximum = maximum
        self.sumExp = sumExp
        self.sumShiftedTimesExp = sumShiftedTimesExp
    }

    /// Adds one value; -inf (a masked logit) contributes nothing. NaN and +inf must be
    /// filtered out by the caller.
    @inline(__always)
    public mutating func add(_ v: Double) {
        if v > maximum {
            if sumExp > 0 {
                // Re-centre on the new max: sum (v_i - m') e^(v_i - m') = (T + (m - m') S) e^(m - m').
                // The shift is clamped like every difference: a jump beyond the double range
                // (-1.7e308 then 1.7e308) would give -inf * 0 = NaN, where the old terms are 0.
                let shift = max(maximum - v, SoftmaxStatistics.lowestShift)
                let factor = Math.exp(shift)
                sumShiftedTimesExp = (sumShiftedTimesExp + shift * sumExp) * factor
                sumExp *= factor
            }
            maximum = v
        }
        guard v > -Double.infinity else { return }
        let shifted = max(v - maximum, SoftmaxStatistics.lowestShift)
        let e = Math.exp(shifted)
        sumExp += e
        sumShiftedTimesExp += shifted * e
    }

    /// False when every value was -inf (no distribution).
    public var isValid: Bool { sumExp > 0 }

    /// logsumexp of the values.
    public var logSumExp: Double { maximum + Math.log(sumExp) }

    /// Entropy of softmax of the values, in nats.
    /// A rounding-level negative value is reported as 0; a NaN is passed on, never hidden.
    public var entropy: Double {
        let entropy = Math.log(sumExp) - sumShiftedTimesExp / sumExp
        return entropy < 0 ? 0 : entropy
    }
}

/// What went wrong in one row of an LLM pass, recorded per row and turned into an error after
/// all rows are done (so that nothing is written when any row fails).
enum RowFault: Double {
    case none = 0
    case nonFinite = 1     // NaN or +inf logit, or a row with every logit masked
    case maskedLabel = 2   // the label's logit is -inf
    case overflow = 3      // a float32 result would overflow (a scale too large for the logits)

    var error: ERAError? {
        switch self {
        case .none: return nil
        case .nonFinite: return .nonFinite
        case .maskedLabel: return .badIndex
        case .overflow: return .badParameter
        }
    }
}

/// Streams one row of logits times `scale` (> 0) through OnlineSoftmax, or takes the same
/// statistics from the vector kernel (two passes over the row, max then sums) where one runs.
/// Returns nil when the row holds NaN or +inf, or when every logit is -inf.
@inline(__always)
func streamRow<S: LogitStorage>(_ z: UnsafePointer<S>, count: Int, scale: Double) -> OnlineSoftmax? {
    if let (maximum, sumExp, sumShifted) = VectorKernels.logitStatistics(z, count: count, scale: scale) {
        guard maximum > -Double.infinity else { return nil }  // NaN (NaN or +inf logit) or all masked
        return OnlineSoftmax(maximum: maximum, sumExp: sumExp, sumShiftedTimesExp: sumShifted)
    }
    var stats = OnlineSoftmax()
    for i in 0..<count {
        let raw = z[i].doubleValue
        guard raw < Double.infinity else { return nil }  // NaN fails the comparison too
        stats.add(scale * raw)
    }
    return stats.isValid ? stats : nil
}
