// Softmax statistics in one streaming pass (math 3, "Efficiency"): running max m,
// S = sum exp(v - m) and T = sum (v - m)*exp(v - m), rescaled whenever the max grows,
// so that a row is read exactly once.

public struct OnlineSoftmax {
    public private(set) var maximum = -Double.infinity
    /// How many values equal the maximum (each contributes exactly 1 to S); from the vector
    /// kernels at least one of them, a tie elsewhere in the row being in the sum below.
    public private(set) var maximumCount = 0.0
    /// S less the values at the maximum: sum exp(v - m) over the values below m. Kept apart so
    /// that the entropy of a confident row keeps its small terms (SoftmaxStatistics.entropy).
    public private(set) var sumExpBelowMaximum = 0.0
    public private(set) var sumShiftedTimesExp = 0.0

    @inline(__always) public init() {}

    /// Statistics computed elsewhere (the vector kernels, the linear heads): the max m, the
    /// count of values at m, the sum of exp(v - m) over the others, and T as above.
    @inline(__always) init(maximum: Double, maximumCount: Double, sumExpBelowMaximum: Double, sumShiftedTimesExp: Double) {
        self.maximum = maximum
        self.maximumCount = maximumCount
        self.sumExpBelowMaximum = sumExpBelowMaximum
        self.sumShiftedTimesExp = sumShiftedTimesExp
    }

    /// S = sum exp(v - m).
    public var sumExp: Double { maximumCount + sumExpBelowMaximum }

    /// Moves the maximum up to v > maximum: every value so far is now below it, and the sums
    /// are re-centred, sum (v_i - m') e^(v_i - m') = (T + (m - m') S) e^(m - m').
    @inline(__always)
    mutating func raiseMaximum(to v: Double) {
        if maximumCount > 0 {
            // The shift is clamped like every difference: a jump beyond the double range
            // (-1.7e308 then 1.7e308) would give -inf * 0 = NaN, where the old terms are 0.
            let shift = max(maximum - v, SoftmaxStatistics.lowestShift)
            let factor = Math.exp(shift)
            let sum = sumExp
            sumShiftedTimesExp = (sumShiftedTimesExp + shift * sum) * factor
            sumExpBelowMaximum = sum * factor
            maximumCount = 0
        }
        maximum = v
    }

    /// Adds one value; -inf (a masked logit) contributes nothing. NaN and +inf must be
    /// filtered out by the caller.
    @inline(__always)
    public mutating func add(_ v: Double) {
        if v > maximum { raiseMaximum(to: v) }
        guard v > -Double.infinity else { return }
        let shifted = max(v - maximum, SoftmaxStatistics.lowestShift)
        if shifted == 0 {
            maximumCount += 1
        } else {
            let e = Math.exp(shifted)
            sumExpBelowMaximum += e
            sumShiftedTimesExp += shifted * e
        }
    }

    /// Adds scale * z[i] for every i < count, as `add` would one by one, in blocks of
    /// SoftmaxStatistics.block values: a first look at a block finds its maximum (+inf: false,
    /// and the statistics are incomplete) and raises the running maximum to it once, then the
    /// block's terms are summed on their own and added to the sums (the rounding error of a
    /// running sum grows with its length). In a block that holds the running maximum the values
    /// at it are counted rather than summed, so that no small term is added to their 1. A NaN
    /// value makes the sums NaN: false at the end.
    @inline(__always)
    mutating func add<S: LogitStorage>(_ z: UnsafePointer<S>, count: Int, scale: Double) -> Bool {
        var start = 0
        while start < count {
            let end = min(start + SoftmaxStatistics.block, count)
            // Four running maxima (v > m ? v : m, which skips NaN), so that the comparisons of a
            // block need not wait for each other.
            var m0 = -Double.infinity, m1 = -Double.infinity, m2 = -Double.infinity, m3 = -Double.infinity
            var i = start
            while i + 4 <= end {
                let a = z[i].doubleValue, b = z[i + 1].doubleValue, c = z[i + 2].doubleValue, d = z[i + 3].doubleValue
                m0 = a > m0 ? a : m0
                m1 = b > m1 ? b : m1
                m2 = c > m2 ? c : m2
                m3 = d > m3 ? d : m3
                i += 4
            }
            while i < end {
                let a = z[i].doubleValue
                m0 = a > m0 ? a : m0
                i += 1
            }
            m0 = m1 > m0 ? m1 : m0
            m2 = m3 > m2 ? m3 : m2
            let blockMaximum = m2 > m0 ? m2 : m0
            guard blockMaximum < Double.infinity else { return false }
            let top = scale * blockMaximum  // the maximum of scale * z[i], scale > 0
            if top > maximum { raiseMaximum(to: top) }
            if top > -Double.infinity {  // else every value of the block is masked
                // A masked value gives shifted = -1000 (the maximum is finite) and e = 0.
                let sums = SoftmaxStatistics.blockSums(start, end, maximum: maximum, countingTies: top == maximum) {
                    scale * z[$0].doubleValue
                }
                maximumCount += sums.ties
                sumExpBelowMaximum += sums.below
                sumShiftedTimesExp += sums.shifted
            }
            start = end
        }
        return !sumExpBelowMaximum.isNaN && !sumShiftedTimesExp.isNaN
    }

    /// False when every value was -inf (no distribution).
    public var isValid: Bool { maximumCount > 0 }

    /// logsumexp of the values.
    public var logSumExp: Double { maximum + Math.log(sumExp) }

    /// Entropy of softmax of the values, in nats, as SoftmaxStatistics.entropy computes it.
    /// A rounding-level negative value is reported as 0; a NaN is passed on, never hidden.
    public var entropy: Double {
        softmaxEntropy(maximumCount: maximumCount, sumExpBelowMaximum: sumExpBelowMaximum,
                       sumShiftedTimesExp: sumShiftedTimesExp)
    }
}

extension OnlineSoftmax {
    /// The statistics of the union of two sets of values (docs/linear-heads.md): a side whose
    /// maximum is below the other's is re-centred on the larger maximum as in `add`,
    /// T + (m - m') S and S scaled by e^(m - m'), all its values now below the maximum.
    func merged(with other: OnlineSoftmax) -> OnlineSoftmax {
        guard other.isValid else { return self }
        guard isValid else { return other }
        let maximum = max(self.maximum, other.maximum)
        func recentred(_ side: OnlineSoftmax) -> (count: Double, below: Double, sumShifted: Double) {
            if side.maximum == maximum { return (side.maximumCount, side.sumExpBelowMaximum, side.sumShiftedTimesExp) }
            let shift = max(side.maximum - maximum, SoftmaxStatistics.lowestShift)
            let factor = Math.exp(shift)
            return (0, side.sumExp * factor, (side.sumShiftedTimesExp + shift * side.sumExp) * factor)
        }
        let a = recentred(self), b = recentred(other)
        return OnlineSoftmax(maximum: maximum, maximumCount: a.count + b.count, sumExpBelowMaximum: a.below + b.below,
                             sumShiftedTimesExp: a.sumShifted + b.sumShifted)
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
/// statistics from the vector kernel (one pass over the row in float32 lanes) where one runs.
/// Returns nil when the row holds NaN or +inf, or when every logit is -inf.
@inline(__always)
func streamRow<S: LogitStorage>(_ z: UnsafePointer<S>, count: Int, scale: Double) -> OnlineSoftmax? {
    if let (maximum, ties, below, sumShifted) = VectorKernels.logitStatistics(z, count: count, scale: scale) {
        guard maximum > -Double.infinity else { return nil }  // NaN (NaN or +inf logit) or all masked
        return OnlineSoftmax(maximum: maximum, maximumCount: ties, sumExpBelowMaximum: below, sumShiftedTimesExp: sumShifted)
    }
    var stats = OnlineSoftmax()
    guard stats.add(z, count: count, scale: scale) else { return nil }
    return stats.isValid ? stats : nil
}
