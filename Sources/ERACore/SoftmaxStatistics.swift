// Numerically stable statistics of softmax over one row, accumulated in double
// whatever the storage type.

/// max and sum of exp(z - max) over one row, from which the probabilities and logsumexp
/// follow; the entropy has a pass of its own (`entropy(_:count:)`).
public struct SoftmaxStatistics {
    public let maximum: Double
    public let sumExp: Double

    /// Differences below this are treated as -inf: exp underflows to 0 in double already, and
    /// clamping keeps (z - max)*exp(z - max) at 0 when the difference itself overflows.
    @usableFromInline static let lowestShift = -1000.0

    /// The length of the blocks the entropy's sums are taken in: each block is summed on its
    /// own and the block sums are then added, because the rounding error of a running sum grows
    /// with its length (a flat row of 151,936 terms lost 3e-12 of its entropy to one sum).
    @usableFromInline static let block = 64

    @inline(__always)
    public init<T: BinaryFloatingPoint>(_ z: UnsafePointer<T>, count: Int) {
        var m = -Double.infinity
        for i in 0..<count { m = max(m, Double(z[i])) }
        var s = 0.0
        for i in 0..<count {
            s += Math.exp(max(Double(z[i]) - m, SoftmaxStatistics.lowestShift))
        }
        maximum = m
        sumExp = s
    }

    /// softmax(z)_i for the value z_i of this row.
    @inline(__always)
    public func probability(_ value: Double) -> Double {
        Math.exp(max(value - maximum, SoftmaxStatistics.lowestShift)) / sumExp
    }

    /// logsumexp(z).
    public var logSumExp: Double { maximum + Math.log(sumExp) }

    /// Entropy of softmax(z) in nats, from the row maximum m: the count k of values at m, the
    /// sum r of exp(z - m) over the others, and T = sum (z - m) exp(z - m); see
    /// `softmaxEntropy`. The values must be finite. Both sums are taken in blocks of
    /// `block` values. In the block that holds the first maximum, the values at m are counted
    /// rather than summed, so that no small term is added to their 1; a value at m in another
    /// block is summed like the others (a tie at the maximum puts the entropy at log 2 or
    /// more, where the sum's rounding is harmless).
    @inline(__always)
    public static func entropy<T: BinaryFloatingPoint>(_ z: UnsafePointer<T>, count: Int) -> Double {
        let block = SoftmaxStatistics.block
        var m = -Double.infinity, maximumBlock = 0
        var start = 0
        while start < count {
            let end = min(start + block, count)
            var blockMaximum = -Double.infinity
            for i in start..<end { blockMaximum = max(blockMaximum, Double(z[i])) }
            if blockMaximum > m {
                m = blockMaximum
                maximumBlock = start
            }
            start = end
        }
        var ties = 0.0, below = 0.0, shiftedSum = 0.0
        start = 0
        while start < count {
            let end = min(start + block, count)
            let sums = blockSums(start, end, maximum: m, countingTies: start == maximumBlock) { Double(z[$0]) }
            ties += sums.ties
            below += sums.below
            shiftedSum += sums.shifted
            start = end
        }
        return softmaxEntropy(maximumCount: ties, sumExpBelowMaximum: below, sumShiftedTimesExp: shiftedSum)
    }

    /// One block's sums against the maximum m, for values v(i), start <= i < end (clamped at
    /// lowestShift below m): the sum of exp(v - m) and the sum of (v - m) exp(v - m). With
    /// `countingTies` the values at m are counted (`ties`) rather than added to the first sum,
    /// so that no small term is added to their 1; without, they are summed like the others.
    /// The streaming statistics (OnlineSoftmax.add) and the entropy above share it.
    @inline(__always)
    static func blockSums(_ start: Int, _ end: Int, maximum m: Double, countingTies: Bool,
                          _ value: (Int) -> Double) -> (ties: Double, below: Double, shifted: Double) {
        var ties = 0.0, below = 0.0, shiftedSum = 0.0
        if countingTies {
            for i in start..<end {
                let shifted = max(value(i) - m, lowestShift)
                let e = Math.exp(shifted)
                let isMaximum = shifted == 0
                ties += isMaximum ? 1 : 0
                below += isMaximum ? 0 : e
                shiftedSum += shifted * e
            }
        } else {
            for i in start..<end {
                let shifted = max(value(i) - m, lowestShift)
                let e = Math.exp(shifted)
                below += e
                shiftedSum += shifted * e
            }
        }
        return (ties, below, shiftedSum)
    }
}

/// Entropy of a softmax from its statistics relative to the maximum m: k values at m, the sum
/// r of exp(z - m) over the others and T = sum (z - m) exp(z - m) (<= 0):
/// log(k + r) - T/(k + r), both parts >= 0, with log(1 + r) as log1p(r) for a single maximum
/// and r < 1/2. Rounded first, 1 + r would lose what a confident row's entropy, about
/// r (1 + |z - m|), is made of (the row (40, 0) lost 1/41 of its entropy, 1.7e-16); with ties at
/// the maximum or r >= 1/2 the entropy is at least 0.4 and log(k + r) loses nothing of note.
/// A rounding-level negative value is reported as 0; a NaN is passed on.
@inline(__always)
func softmaxEntropy(maximumCount k: Double, sumExpBelowMaximum r: Double, sumShiftedTimesExp t: Double) -> Double {
    let logSum = k == 1 && r < 0.5 ? Math.log1p(r) : Math.log(k + r)
    let entropy = logSum - t / (k + r)
    return entropy < 0 ? 0 : entropy
}
