// The tanh sampled floor (docs/math.md, "The sampled floor, tanh") and the tanh-Gaussian entropy
// gradient, against a float64 reference written here (composite Simpson in the Gaussian
// variable, split at the kink of log(1 - tanh^2)): the floor by adversarial search (printed:
// rows, infeasible rows, violations, worst deficit), the offset's minimality, negative offsets,
// infeasible rows refused (and shown infeasible on a grid), gradients against central
// differences.
import XCTest
@testable import ERACore
#if canImport(Glibc)
import Glibc
#endif

/// E_{e ~ N(0,1)} log(1 - tanh^2(m + s e)) by composite Simpson on [-14, 14], split at
/// e = -m/s where the integrand has its corner; log(1 - tanh^2 x) = 2 (log 2 - |x| - log1p(e^{-2|x|})).
private func referenceLogJacobian(mean m: Double, std s: Double, intervals: Int = 4000) -> Double {
    func f(_ e: Double) -> Double {
        let x = Swift.abs(m + s * e)
        return 2 * (Glibc.log(2.0) - x - Glibc.log1p(Glibc.exp(-2 * x))) * Glibc.exp(-0.5 * e * e) / Glibc.sqrt(2 * Double.pi)
    }
    func simpson(_ a: Double, _ b: Double) -> Double {
        guard b > a else { return 0 }
        let n = intervals, h = (b - a) / Double(n)
        var sum = f(a) + f(b)
        for k in 1..<n { sum += (k % 2 == 1 ? 4 : 2) * f(a + Double(k) * h) }
        return sum * h / 3
    }
    let corner = Swift.min(Swift.max(-m / s, -14), 14)
    return simpson(-14, corner) + simpson(corner, 14)
}

private func referenceTanhEntropy(mean: Double, logStd: Double) -> Double {
    logStd + 0.5 * Glibc.log(2 * Double.pi * Glibc.exp(1.0)) + referenceLogJacobian(mean: mean, std: Glibc.exp(logStd))
}

private func referenceRow(_ mean: [Double], _ logStd: [Double]) -> Double {
    var sum = 0.0
    for i in 0..<mean.count { sum += referenceTanhEntropy(mean: mean[i], logStd: logStd[i]) }
    return sum
}

/// The row's log stds at offset c: max(log_std_max + (K + c) softmax(s)_i, log_std_min).
private func referenceLogStds(_ s: [Double], k: Double, c: Double, min: Double, max: Double) -> [Double] {
    let top = s.max()!
    let e = s.map { Glibc.exp($0 - top) }
    let total = e.reduce(0, +)
    return e.map { Swift.max(max + (k + c) * $0 / total, min) }
}

/// SplitMix64: a seeded generator, so that the adversarial rows are the same on every run.
private struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

private func tanhFloor(h0: Double, delta: Double = 0, min: Double = -8, max: Double = 0, dim: Int) throws -> TanhFloorERA {
    try TanhFloorERA(gaussian: ContinuousERA(targetEntropy: h0, residual: delta, logStdMin: min, logStdMax: max,
                                             dim: Int64(dim)))
}

private func forward<T: ERAReal>(_ era: TanhFloorERA, _ s: [T], _ m: [T]) throws -> (out: [T], offset: [T]) {
    let rows = s.count / era.gaussian.dim
    var out = [T](repeating: 0, count: s.count), offset = [T](repeating: 0, count: rows)
    try era.forward(rows: rows, stdLogits: s, loc: m, output: &out, offset: &offset)
    return (out, offset)
}

final class TanhFloorTests: XCTestCase {
    /// dH/dmean and dH/dlog_std against central differences of the Simpson reference, across
    /// both quadrature regimes (std below and above 0.5).
    func testEntropyDerivativeAgainstFiniteDifferences() {
        var worst = 0.0
        for m in [0.0, 0.3, -1.0, 2.0, -3.0, 10.0] {
            for logStd in [-5.0, -2, -0.8, -0.6, 0, 1, 3] {
                let h = 1e-5
                let dm = (referenceTanhEntropy(mean: m + h, logStd: logStd) - referenceTanhEntropy(mean: m - h, logStd: logStd)) / (2 * h)
                let dl = (referenceTanhEntropy(mean: m, logStd: logStd + h) - referenceTanhEntropy(mean: m, logStd: logStd - h)) / (2 * h)
                let d = Entropy.tanhGaussianEntropyDerivative(mean: m, logStd: logStd)
                let scaleM = Swift.max(1, abs(dm)), scaleL = Swift.max(1, abs(dl))
                XCTAssertEqual(d.loc, dm, accuracy: 1e-7 * scaleM, "dH/dmean at mean \(m), log std \(logStd)")
                XCTAssertEqual(d.logStd, dl, accuracy: 1e-7 * scaleL, "dH/dlog_std at mean \(m), log std \(logStd)")
                worst = Swift.max(worst, abs(d.loc - dm) / scaleM, abs(d.logStd - dl) / scaleL)
            }
        }
        // Narrow Gaussians: the Jacobian at the mean, dH/dlog_std -> 1.
        XCTAssertEqual(Entropy.tanhGaussianEntropyDerivative(mean: 0.4, logStd: -30).logStd, 1, accuracy: 1e-12)
        XCTAssertEqual(Entropy.tanhGaussianEntropyDerivative(mean: 0.4, logStd: -30).loc, -2 * Glibc.tanh(0.4), accuracy: 1e-12)
        print("TANH ENTROPY GRADIENT: worst FD disagreement \(worst) (relative to max(1, |derivative|))")
    }

    /// The largest squashed entropy of one dimension: at mean 0 and std 0.8744, 0.6836356 nats.
    func testSupremum() {
        let sup = Entropy.tanhGaussianEntropySupremum
        XCTAssertEqual(sup, 0.6836355636, accuracy: 1e-9)
        for m in [0.0, 0.1, 1.0] {
            for logStd in stride(from: -1.0, through: 1.0, by: 0.01) {
                XCTAssertLessThanOrEqual(referenceTanhEntropy(mean: m, logStd: logStd), sup + 1e-12)
            }
        }
        XCTAssertThrowsError(try tanhFloor(h0: 0.6836356 * 3, dim: 3)) { XCTAssertEqual($0 as? ERAError, .infeasibleTarget) }
        XCTAssertNoThrow(try tanhFloor(h0: 0.6 * 3, min: -8, max: 0, dim: 3))
    }

    /// The floor by adversarial search, float64 and float32; rows that reach the target keep the
    /// continuous output; offsets are minimal; infeasible rows have no offset on a grid either.
    func testFloorHoldsAdversarially() throws {
        var rows = 0, infeasible = 0, violations = 0, worstDeficit = -Double.infinity, worstExcess = 0.0
        var rng = SplitMix(seed: 20261206)  // reproducible rows
        for dim in [1, 2, 3, 6, 17] {
            for (min, max) in [(-8.0, 0.0), (-5.0, 1.5), (-20.0, -0.5)] {
                for perDim in [-0.5, 0.25, -2.0] {
                    for scale in [0.1, 1.0, 5.0] {
                        let h0 = perDim * Double(dim)
                        guard let era = try? tanhFloor(h0: h0, min: min, max: max, dim: dim) else { continue }
                        let s = (0..<dim).map { _ in Double.random(in: -2...2, using: &rng) * scale }
                        let m = (0..<dim).map { _ in Double.random(in: -1...1, using: &rng) * 0.7 }
                        rows += 1
                        let k = era.gaussian.scale
                        guard let (out, offset) = try? forward(era, s, m) else {
                            infeasible += 1
                            // No c on a fine grid over the whole range reaches the target.
                            var best = -Double.infinity
                            for step in 0...200 {
                                let c = -k * Double(step) / 200 + (-200.0) * Double(200 - step) / 200
                                best = Swift.max(best, referenceRow(m, referenceLogStds(s, k: k, c: c, min: min, max: max)))
                            }
                            XCTAssertLessThan(best, h0 + 1e-9, "an infeasible row reaches \(best) >= \(h0) on the grid")
                            continue
                        }
                        let c = offset[0]
                        let h = referenceRow(m, out)
                        worstDeficit = Swift.max(worstDeficit, (h0 - h) / Swift.max(1, abs(h0)))
                        if h < h0 - 1e-10 * Swift.max(1, abs(h0)) { violations += 1 }
                        for v in out { XCTAssertTrue(v >= min && v <= max + 1e-12, "log std \(v) outside [\(min), \(max)]") }
                        if c == 0 {
                            var gaussian = [Double](repeating: 0, count: dim)
                            try era.gaussian.forwardRows(rows: 1, input: s, output: &gaussian)
                            XCTAssertEqual(out, gaussian)
                        } else {
                            worstExcess = Swift.max(worstExcess, h - h0)
                            // A slightly smaller |c| misses the target.
                            // (a step relative to c: a huge |c| moves entries of tiny weight)
                            let step = 1e-6 * Swift.max(1, abs(c)) * (c > 0 ? 1 : -1)
                            let back = referenceRow(m, referenceLogStds(s, k: k, c: c - step, min: min, max: max))
                            XCTAssertLessThan(back, h0 + 2e-12 * (1 + abs(h0)), "offset \(c) is not minimal")
                        }
                        // float32: the floor at the stored values.
                        if let (out32, _) = try? forward(era, s.map { Float($0) }, m.map { Float($0) }) {
                            let h32 = referenceRow(m.map { Double(Float($0)) }, out32.map { Double($0) })
                            XCTAssertGreaterThanOrEqual(h32, h0 - 1e-5 * Swift.max(1, abs(h0)))
                        }
                    }
                }
            }
        }
        XCTAssertEqual(violations, 0)
        XCTAssertGreaterThan(rows - infeasible, rows / 3)
        print("TANH FLOOR ADVERSARIAL: rows \(rows), infeasible \(infeasible), violations \(violations), worst deficit \(worstDeficit), worst excess \(worstExcess)")
    }

    /// A row whose nearest root lies below 0: two entries far beyond the peak (log_std_max = 3,
    /// std 20) and one clipped at log_std_min; raising the target only widens the wide ones
    /// until the clipped one moves, so the offset is negative, every std shrinks, and the floor
    /// holds.
    func testNegativeOffset() throws {
        let dim = 3
        let era = try tanhFloor(h0: -4.0, min: -3, max: 3, dim: dim)
        let s = [-30.0, -30.0, 5.0], m = [0.0, 0.2, -0.1]
        let (out, offset) = try forward(era, s, m)
        XCTAssertLessThan(offset[0], 0)
        XCTAssertGreaterThanOrEqual(referenceRow(m, out), -4.0 - 1e-10)
        let gaussian = referenceLogStds(s, k: era.gaussian.scale, c: 0, min: -3, max: 3)
        XCTAssertLessThan(referenceRow(m, gaussian), -4.0)
        for i in 0..<dim { XCTAssertLessThanOrEqual(out[i], gaussian[i]) }
        print("TANH FLOOR NEGATIVE OFFSET: c = \(offset[0]), log stds \(gaussian) -> \(out)")
    }

    /// Gradients against central differences of the float64 forward pass, rows with positive,
    /// negative and zero offsets; the residual gradient too.
    func testBackwardAgainstFiniteDifferences() throws {
        var worst = 0.0
        // c > 0; c < 0 (the third entry clipped); c = 0 (every entry clipped at log_std_min, whose
        // entropy is above the target).
        for (h0, min, max, s) in [(-1.5, -8.0, 0.0, [0.3, -0.5, 1.2]), (-4.0, -3.0, 3.0, [-1.0, -1.0, 1.0]),
                                  (-20.0, -3.0, 0.0, [0.3, -0.5, 1.2])] {
            let dim = 3
            let era = try tanhFloor(h0: h0, delta: 0.1, min: min, max: max, dim: dim)
            let m = [0.2, -0.4, 0.1], g = [0.7, -1.1, 0.4]
            var gs = [Double](repeating: 0, count: dim), gm = gs, gr = [0.0]
            try era.backward(rows: 1, stdLogits: s, loc: m, gradOutput: g, gradStdLogits: &gs, gradLoc: &gm, gradResidual: &gr)
            let h = 1e-6
            func loss(_ era: TanhFloorERA, _ s: [Double], _ m: [Double]) throws -> Double {
                let out = try forward(era, s, m).out
                return zip(out, g).map { $0 * $1 }.reduce(0, +)
            }
            for i in 0..<dim {
                var sp = s, sm = s, mp = m, mm = m
                sp[i] += h; sm[i] -= h; mp[i] += h; mm[i] -= h
                let ds = (try loss(era, sp, m) - loss(era, sm, m)) / (2 * h)
                let dm = (try loss(era, s, mp) - loss(era, s, mm)) / (2 * h)
                XCTAssertEqual(gs[i], ds, accuracy: 1e-6 * Swift.max(1, abs(ds)))
                XCTAssertEqual(gm[i], dm, accuracy: 1e-6 * Swift.max(1, abs(dm)))
                worst = Swift.max(worst, abs(gs[i] - ds) / Swift.max(1, abs(ds)), abs(gm[i] - dm) / Swift.max(1, abs(dm)))
            }
            let up = try tanhFloor(h0: h0, delta: 0.1 + h, min: min, max: max, dim: dim)
            let down = try tanhFloor(h0: h0, delta: 0.1 - h, min: min, max: max, dim: dim)
            let dr = (try loss(up, s, m) - loss(down, s, m)) / (2 * h)
            XCTAssertEqual(gr[0], dr, accuracy: 1e-6 * Swift.max(1, abs(dr)))
            print("TANH FLOOR GRADIENT (H0 \(h0), max \(max)): offset \(try forward(era, s, m).offset[0])")
        }
        print("TANH FLOOR GRADIENT: worst FD disagreement \(worst)")
    }
}
