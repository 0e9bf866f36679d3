// Numerically stable statistics of softmax over one row, accumulated in double
// whatever the storage type.

/// max, sum of exp(z - max) and sum of (z - max)*exp(z - max) over one row, from which the
/// probabilities, logsumexp and the entropy follow.
public struct SoftmaxStatistics {
    public let maximum: Double
    public let sumExp: Double
    public let sumShiftedTimesExp: Double

    /// Differences below this are treated as -inf: exp underflows to 0 in double already, and
    /// clamping keeps (z - max)*exp(z - max) at 0 when the difference itself overflows.
    @usableFromInline static let lowestShift = -1000.0

    @inline(__always)
    public init<T: BinaryFloatingPoint>(_ z: UnsafePointer<T>, count: Int) {
        var m = -Double.infinity
        for i in 0..<count { m = max(m, Double(z[i])) }
        var s = 0.0, sz = 0.0
        for i in 0..<count {
            let shifted = max(Double(z[i]) - m, SoftmaxStatistics.lowestShift)
            let e = Math.exp(shifted)
            s += e
            sz += shifted * e
        }
        maximum = m
        sumExp = s
        sumShiftedTimesExp = sz
    }

    /// softmax(z)_i for the value z_i of this row.
    @inline(__always)
    public func probability(_ value: Double) -> Double {
        Math.exp(max(value - maximum, SoftmaxStatistics.lowestShift)) / sumExp
    }

    /// logsumexp(z).
    public var logSumExp: Double { maximum + Math.log(sumExp) }

    /// Entropy of softmax(z) in nats: log S - sum((z-m) e^(z-m)) / S.
    /// A rounding-level negative value is reported as 0; a NaN is passed on, never hidden.
    public var entropy: Double {
        let entropy = Math.log(sumExp) - sumShiftedTimesExp / sumExp
        return entropy < 0 ? 0 : entropy
    }
}
