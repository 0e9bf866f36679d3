// Bound verification (math 4): per-row entropies reduced to a report. A violation is a
// result, never an error.

/// What a batch of ERA outputs achieved against its target entropy.
public struct BoundReport: Equatable, Sendable {
    public var rows: Int = 0
    /// Rows whose entropy is below target - tolerance.
    public var violations: Int = 0
    /// Smallest row entropy in nats; +inf when there are no rows.
    public var minEntropy: Double = .infinity
    /// Mean row entropy in nats; NaN when there are no rows.
    public var meanEntropy: Double = .nan
    /// max(0, max over rows of target - entropy), in nats.
    public var maxDeficit: Double = 0
    /// The entropy the parameters guarantee; NaN when none.
    public var floor: Double = .nan
    /// The entropy each row was checked against.
    public var target: Double = .nan
    /// The row with the smallest entropy (the first such); -1 when there are no rows.
    public var worstRow: Int = -1

    /// Reduces row entropies, in row order (so the result is independent of threading).
    public init(entropies: UnsafeBufferPointer<Double>, target: Double, tolerance: Double, floor: Double) {
        self.target = target
        self.floor = floor
        rows = entropies.count
        guard rows > 0 else { return }
        var sum = 0.0
        for (row, entropy) in entropies.enumerated() {
            sum += entropy
            if entropy < minEntropy {
                minEntropy = entropy
                worstRow = row
            }
            if entropy < target - tolerance { violations += 1 }
            maxDeficit = max(maxDeficit, target - entropy)
        }
        meanEntropy = sum / Double(rows)
        if !sum.isFinite && minEntropy.isFinite && entropies.allSatisfy({ $0.isFinite }) {
            // Finite entropies near the double range (tanh-squashed rows of log stds near 700
            // reach -1.7e308) can overflow their sum: their mean is the sum of the shares.
            meanEntropy = entropies.reduce(0) { $0 + $1 / Double(rows) }
        }
    }
}

public enum BoundCheck {
    /// Throws .badParameter unless tol is finite and >= 0.
    public static func validate(tolerance: Double) throws(ERAError) {
        guard tolerance.isFinite, tolerance >= 0 else { throw .badParameter }
    }

    /// Discrete ERA outputs against H0 (math 4).
    /// `outputLogits` may be nil only when rows == 0.
    public static func discrete<T: ERAReal>(_ era: DiscreteERA, rows: Int, outputLogits: UnsafePointer<T>?,
                                            tolerance: Double) throws(ERAError) -> BoundReport {
        let d = era.classes
        return try report(rows: rows, target: era.targetEntropy, tolerance: tolerance,
                          floor: era.guaranteedFloor) { (entropies: UnsafeMutablePointer<Double>) throws(ERAError) in
            guard let outputLogits else { throw .nullPointer }
            try forEachRowBlock(rows: rows, workPerRow: d * 4) { range, _ in
                for row in range {
                    entropies[row] = SoftmaxStatistics.entropy(outputLogits + row * d, count: d)
                }
            }
        }
    }

    /// Continuous ERA log stds (math 4): the Gaussian entropy against H0 + delta, or with the
    /// means the tanh-squashed entropy against H0. `logStd` may be nil only when rows == 0.
    public static func continuous<T: ERAReal>(_ era: ContinuousERA, rows: Int, mean: UnsafePointer<T>?,
                                              logStd: UnsafePointer<T>?, tolerance: Double) throws(ERAError) -> BoundReport {
        let d = era.dim
        let target = mean == nil ? era.guaranteedFloor : era.targetEntropy
        let floor = mean == nil ? era.guaranteedFloor : .nan
        let rule = GaussHermiteRule.standard
        return try report(rows: rows, target: target, tolerance: tolerance,
                          floor: floor) { (entropies: UnsafeMutablePointer<Double>) throws(ERAError) in
            guard let logStd else { throw .nullPointer }
            try forEachRowBlock(rows: rows, workPerRow: mean == nil ? d : d * 256) { range, _ in
                for row in range {
                    if let mean {
                        entropies[row] = Entropy.tanhGaussianRow(mean: mean + row * d, logStd: logStd + row * d,
                                                                 dim: d, rule: rule)
                    } else {
                        entropies[row] = Entropy.gaussianRow(logStd + row * d, dim: d)
                    }
                }
            }
        }
    }

    /// Allocates the per-row entropies, lets `fill` compute them, and reduces them. Throws
    /// .badParameter when a row's entropy is not a finite double (log stds so extreme that the
    /// Gaussian entropy overflows): such a row has no entropy to compare with the target.
    static func report(rows: Int, target: Double, tolerance: Double, floor: Double,
                       _ fill: (UnsafeMutablePointer<Double>) throws(ERAError) -> Void) throws(ERAError) -> BoundReport {
        try validate(tolerance: tolerance)
        let entropies = try Scratch(blocks: 1, perBlock: rows)
        if let base = entropies.base {
            try fill(base)
            for row in 0..<rows { guard base[row].isFinite else { throw .badParameter } }
        }
        return BoundReport(entropies: UnsafeBufferPointer(start: entropies.base, count: rows),
                           target: target, tolerance: tolerance, floor: floor)
    }
}
