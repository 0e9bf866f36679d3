// Discrete ERA: the softmax activation of math 2.
//
//   up = log(tau)/tau, a = (D*up - C)/(D - 1), b = (C - up)/(D - 1)
//   y_i = max(a*softmax(z)_i + b, 0),  out_i = log h^-1(y_i)

import ERASIMD
import Synchronization

/// How C and the inverse of h are chosen (math 2, "Modes").
public enum DiscreteMode: Int32, Sendable {
    /// C = exp(H0 - 1), exact inverse: floor H0 guaranteed.
    case exact = 0
    /// C solved so that the one-hot infimum of the output entropy is exactly H0.
    case tight = 1
    /// C = exp(H0 - 1), the official closed-form approximate inverse: nothing guaranteed.
    case reference = 2
}

/// The discrete ERA activation for rows of `classes` logits, with every per-call constant
/// resolved and validated at construction.
public struct DiscreteERA: Sendable {
    public let targetEntropy: Double
    public let tau: Double
    public let mode: DiscreteMode
    public let classes: Int
    /// h(1/tau) = log(tau)/tau: the largest y any class can receive.
    public let up: Double
    /// The constant C with sum_i y_i = C.
    public let c: Double
    /// The slope a >= 0 of y in p.
    public let slope: Double
    /// The offset b >= 0: the y of a class with p = 0.
    public let offset: Double
    /// log h^-1(up) = -log(tau): the largest output logit (exact and tight modes).
    public let topLogit: Double

    /// How far above e tau must be: log(tau) >= 1 + minimumTauMargin. The inverse of h has the
    /// condition number 1/|1 + t| <= 1/(log(tau) - 1) on the y a class can receive; closer to
    /// e than this, double precision cannot hold it (and within ~1e-14 of e, log(tau)/tau
    /// rounds to 1/e itself, where the inverse is undefined).
    public static let minimumTauMargin = 1e-6

    /// Validates the parameters (math 2, "Feasible targets") and resolves C.
    /// Throws .badShape if classes < 2, .badParameter for a non-finite target, a tau not above
    /// e by the margin (log(tau) < 1 + 1e-6) or an unknown mode, .infeasibleTarget for a
    /// target out of the mode's range.
    public init(targetEntropy: Double, tau: Double, mode rawMode: Int32, classes: Int64) throws(ERAError) {
        guard classes >= 2 else { throw .badShape }
        guard targetEntropy.isFinite, tau.isFinite,
              Math.log(tau) >= 1 + DiscreteERA.minimumTauMargin else { throw .badParameter }
        guard let mode = DiscreteMode(rawValue: rawMode) else { throw .badParameter }
        self.targetEntropy = targetEntropy
        self.tau = tau
        self.mode = mode
        self.classes = Int(classes)
        let d = Double(classes)
        let up = Math.log(tau) / tau
        self.up = up
        topLogit = -Math.log(tau)
        var c: Double
        switch mode {
        case .exact, .reference:
            // Feasible when up <= C <= D*up, i.e. 1 + log(up) <= H0 <= 1 + log(D*up); a relative
            // slack of 1e-12 absorbs the rounding of exp at the two end points.
            c = Math.exp(targetEntropy - 1)
            let high = d * up
            guard c >= up * (1 - 1e-12), c <= high * (1 + 1e-12) else { throw .infeasibleTarget }
            c = min(max(c, up), high)
        case .tight:
            // Feasible for 0 < H0 < log D, less the sliver the smallest double b cannot reach.
            guard targetEntropy > 0, targetEntropy < Math.log(d) else { throw .infeasibleTarget }
            if let cached = TightConstantCache.lookup(targetEntropy: targetEntropy, tau: tau, classes: classes) {
                c = cached
            } else {
                c = try DiscreteERA.solveTightConstant(targetEntropy: targetEntropy, tau: tau, classes: d, up: up)
                TightConstantCache.store(c, targetEntropy: targetEntropy, tau: tau, classes: classes)
            }
        }
        self.c = c
        self.slope = max(0, (d * up - c) / (d - 1))
        self.offset = max(0, (c - up) / (d - 1))
    }

    /// The floor the parameters guarantee (math 4): H0 for exact and tight, NaN for reference.
    public var guaranteedFloor: Double {
        mode == .reference ? .nan : targetEntropy
    }

    /// The infimum of the output entropy, reached as the input tends to one-hot: the top class
    /// receives y = a + b = up, the other D - 1 receive y = b.
    public var infimum: Double {
        let top: Double, other: Double
        switch mode {
        case .exact, .tight:
            top = 1 / tau
            other = offset > 0 ? Math.exp(logInverseEntropyTerm(offset)) : 0
        case .reference:
            top = Math.exp(referenceLogInverseEntropyTerm(up))
            other = offset > 0 ? Math.exp(referenceLogInverseEntropyTerm(offset)) : 0
        }
        return DiscreteERA.oneHotEntropy(top: top, other: other, others: Double(classes - 1))
    }

    /// Entropy of the distribution proportional to (top, other, ..., other) with `others`
    /// copies of `other`.
    static func oneHotEntropy(top: Double, other: Double, others: Double) -> Double {
        let total = top + others * other
        let qTop = top / total
        var entropy = -qTop * Math.log(qTop)
        if other > 0 {
            let qOther = other / total
            entropy -= others * qOther * Math.log(qOther)
        }
        return entropy
    }

    /// Solves for C in mode tight (math 2): the one-hot entropy is increasing in b, from 0 at
    /// b = 0 to log D at b = up, so bisect on log b and keep the upper end, where the one-hot
    /// entropy is >= H0, so that rounding in the solve never costs the guarantee.
    /// Throws .infeasibleTarget when even the smallest b (the smallest normal double; below it
    /// the kernels clamp) gives a one-hot entropy above H0: then no C makes the infimum H0.
    /// That happens only for a huge tau and a tiny H0 (tau = 1e300, D = 120: H0 < 9.3e-8).
    static func solveTightConstant(targetEntropy: Double, tau: Double, classes d: Double,
                                   up: Double) throws(ERAError) -> Double {
        func entropy(logB: Double) -> Double {
            let b = Math.exp(logB)
            let other = Math.exp(logInverseEntropyTerm(b))
            return oneHotEntropy(top: 1 / tau, other: other, others: d - 1)
        }
        var low = Math.log(Double.leastNormalMagnitude)
        var high = Math.log(up)
        let smallest = entropy(logB: low)
        guard smallest <= targetEntropy else { throw .infeasibleTarget }
        if smallest == targetEntropy {
            high = low
        } else {
            for _ in 0..<200 {
                let mid = 0.5 * (low + high)
                if mid <= low || mid >= high { break }
                if entropy(logB: mid) >= targetEntropy { high = mid } else { low = mid }
            }
        }
        return up + (d - 1) * Math.exp(high)
    }

    // MARK: kernels

    /// y values at or below this are clamped: their output is log h^-1(tiny) and their
    /// derivative 0 (math 2, "Where y_i was clamped").
    static let smallestY = Double.leastNormalMagnitude

    /// The output logit for y. y is kept in [smallestY, up]: a*p + b can round a hair above
    /// up, and the inverse is only defined below 1/e. In exact and tight modes the result is
    /// also capped at -log(tau), the value at up, which rounding in the inverse could exceed.
    @inline(__always)
    func output(y: Double) -> Double {
        let y = min(max(y, DiscreteERA.smallestY), up)
        return mode == .reference ? referenceLogInverseEntropyTerm(y) : min(logInverseEntropyTerm(y), topLogit)
    }

    /// y * dt/dy at y (0 where y was clamped at smallestY).
    @inline(__always)
    func elasticity(y: Double, t: Double) -> Double {
        guard y > DiscreteERA.smallestY else { return 0 }
        return mode == .reference
            ? referenceLogInverseEntropyTermElasticity(y)
            : logInverseEntropyTermElasticity(t: t)
    }

    /// Cost of one row in element-operations, for the thread split.
    var workPerRow: Int { classes * 40 }

    /// The float32 vector kernels' constants, when the vector kernels run and tau keeps the
    /// inverse's condition number 1/|1 + t| below 100 (log(tau) >= 1.01; their float32 start
    /// needs it). float64 rows always take the portable kernels below (about 1e-15).
    var floatRowConstants: DiscreteRowConstants? {
        guard VectorKernels.enabled, Math.log(tau) >= 1.01 else { return nil }
        return DiscreteRowConstants(slope: slope, offset: offset, up: up, topLogit: topLogit, reference: mode == .reference)
    }

    /// Forward pass over `rows` rows; `output` may be `input`. Inputs must be finite.
    func forwardRows<T: ERAReal>(rows: Int, input: UnsafePointer<T>, output: UnsafeMutablePointer<T>) throws(ERAError) {
        let d = classes
        if T.self == Float.self, let constants = floatRowConstants {
            let z = UnsafeRawPointer(input).assumingMemoryBound(to: Float.self)
            let out = UnsafeMutableRawPointer(output).assumingMemoryBound(to: Float.self)
            try forEachRowBlock(rows: rows, workPerRow: workPerRow / 4, scratchPerBlock: discreteForwardScratch(count: d)) { range, scratch in
                let first = range.lowerBound
                discreteForwardRows(z + first * d, rows: range.count, count: d, constants: constants, scratch: scratch!,
                                    out: out + first * d)
            }
            return
        }
        try forEachRowBlock(rows: rows, workPerRow: workPerRow) { range, _ in
            for row in range {
                let z = input + row * d
                let out = output + row * d
                let stats = SoftmaxStatistics(z, count: d)
                for i in 0..<d {
                    let p = stats.probability(Double(z[i]))
                    out[i] = T(self.output(y: self.slope * p + self.offset))
                }
            }
        }
    }

    /// Backward pass (math 2, "Gradient"); `gradInput` may be `input` or `gradOutput`.
    /// With r_i = g_i dt/dy(y_i) a, dL/dz_j = r_j p_j - p_j sum_i r_i p_i. r_i alone overflows
    /// when y_i is tiny (dt/dy ~ 1/y), so the kernel forms s_i = r_i p_i as
    /// g_i (a p_i / y_i) (y_i dt/dy): a ratio in [0, 1] times a bounded factor. For the most
    /// probable class, s_j - p_j sum_i s_i cancels as p_j nears 1 (relative error eps/(1 - p_j));
    /// its gradient is taken instead as minus the sum of the others (the gradients sum to 0).
    func backwardRows<T: ERAReal>(rows: Int, input: UnsafePointer<T>, gradOutput: UnsafePointer<T>,
                                  gradInput: UnsafeMutablePointer<T>) throws(ERAError) {
        let d = classes
        if T.self == Float.self, let constants = floatRowConstants {
            let z = UnsafeRawPointer(input).assumingMemoryBound(to: Float.self)
            let g = UnsafeRawPointer(gradOutput).assumingMemoryBound(to: Float.self)
            let out = UnsafeMutableRawPointer(gradInput).assumingMemoryBound(to: Float.self)
            try forEachRowBlock(rows: rows, workPerRow: workPerRow / 4, scratchPerBlock: discreteBackwardScratch(count: d)) { range, scratch in
                let first = range.lowerBound
                discreteBackwardRows(z + first * d, g + first * d, rows: range.count, count: d, constants: constants,
                                     scratch: scratch!, out: out + first * d)
            }
            return
        }
        try forEachRowBlock(rows: rows, workPerRow: workPerRow, scratchPerBlock: 2 * d) { range, scratch in
            let probabilities = scratch!
            let s = scratch! + d
            for row in range {
                let z = input + row * d
                let g = gradOutput + row * d
                let stats = SoftmaxStatistics(z, count: d)
                var weighted = 0.0  // sum_i s_i = sum_i r_i * p_i
                var top = 0
                for i in 0..<d {
                    let p = stats.probability(Double(z[i]))
                    if Double(z[i]) > Double(z[top]) { top = i }
                    let ap = self.slope * p
                    let y = ap + self.offset
                    let t = self.output(y: y)
                    let e = self.elasticity(y: y, t: t)
                    let si = e == 0 ? 0 : Double(g[i]) * (ap / y) * e
                    probabilities[i] = p
                    s[i] = si
                    weighted += si
                }
                let out = gradInput + row * d
                var others = 0.0
                for j in 0..<d where j != top {
                    let gradient = s[j] - probabilities[j] * weighted
                    others += gradient
                    out[j] = T(gradient)
                }
                out[top] = T(-others)
            }
        }
    }
}

extension DiscreteERA {
    public func forward(rows: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>) throws(ERAError) {
        try forwardRows(rows: rows, input: input, output: output)
    }
    public func forward(rows: Int, input: UnsafePointer<Double>, output: UnsafeMutablePointer<Double>) throws(ERAError) {
        try forwardRows(rows: rows, input: input, output: output)
    }
    public func backward(rows: Int, input: UnsafePointer<Float>, gradOutput: UnsafePointer<Float>,
                         gradInput: UnsafeMutablePointer<Float>) throws(ERAError) {
        try backwardRows(rows: rows, input: input, gradOutput: gradOutput, gradInput: gradInput)
    }
    public func backward(rows: Int, input: UnsafePointer<Double>, gradOutput: UnsafePointer<Double>,
                         gradInput: UnsafeMutablePointer<Double>) throws(ERAError) {
        try backwardRows(rows: rows, input: input, gradOutput: gradOutput, gradInput: gradInput)
    }
}

/// The last C solved in mode tight, by its parameters: a training loop calls forward and
/// backward with the same (H0, tau, D) every step, and the solve (up to 200 bisection steps,
/// each with an exp and a log) took about 11 us of a 256 x 10 call's 36. A seqlock over
/// atomics: readers never wait, a writer that finds another writing gives up (the value is
/// then solved again next time), and a process forked while a writer held it keeps missing,
/// never blocks. Only solved values are stored, so results are bit for bit those of a solve.
enum TightConstantCache {
    private static let sequence = Atomic<UInt64>(0)  // odd while a writer writes
    private static let targetBits = Atomic<UInt64>(0)
    private static let tauBits = Atomic<UInt64>(0)
    private static let classCount = Atomic<Int64>(0)  // 0: nothing stored
    private static let constantBits = Atomic<UInt64>(0)

    static func lookup(targetEntropy: Double, tau: Double, classes: Int64) -> Double? {
        let before = sequence.load(ordering: .acquiring)
        guard before & 1 == 0 else { return nil }
        let target = targetBits.load(ordering: .relaxed), t = tauBits.load(ordering: .relaxed)
        let d = classCount.load(ordering: .relaxed), c = constantBits.load(ordering: .relaxed)
        atomicMemoryFence(ordering: .acquiring)
        guard sequence.load(ordering: .relaxed) == before, d == classes,
              target == targetEntropy.bitPattern, t == tau.bitPattern else { return nil }
        return Double(bitPattern: c)
    }

    static func store(_ c: Double, targetEntropy: Double, tau: Double, classes: Int64) {
        let before = sequence.load(ordering: .relaxed)
        guard before & 1 == 0,
              sequence.compareExchange(expected: before, desired: before &+ 1, ordering: .acquiring).exchanged else { return }
        atomicMemoryFence(ordering: .releasing)
        targetBits.store(targetEntropy.bitPattern, ordering: .relaxed)
        tauBits.store(tau.bitPattern, ordering: .relaxed)
        classCount.store(classes, ordering: .relaxed)
        constantBits.store(c.bitPattern, ordering: .relaxed)
        sequence.store(before &+ 2, ordering: .releasing)
    }
}
