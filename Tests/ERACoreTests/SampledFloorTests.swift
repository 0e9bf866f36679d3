// The sampled floor (docs/math.md, "The sampled floor") and the truncated-normal entropy
// gradient, against float64 references written here and in CoreReferences.swift: the floor by
// adversarial search (printed: rows, violations, worst deficit), the offset's minimality,
// gradients against central finite differences, and infeasible targets refused.
import XCTest
@testable import ERACore
#if canImport(Glibc)
import Glibc
#endif

/// Entropy of N(m, exp(logStd)^2) truncated to [lo, hi] with lo <= m <= hi: the closed form
/// where Z = Phi(beta) - Phi(alpha) is not small (no cancellation to speak of), else Simpson
/// on the narrow interval, where the density is nearly flat and 400 intervals are exact to
/// rounding.
private func referenceTruncatedEntropy(loc m: Double, logStd: Double, lo: Double, hi: Double) -> Double {
    let sd = Glibc.exp(logStd)
    let alpha = (lo - m) / sd, beta = (hi - m) / sd
    let z = 0.5 * Glibc.erfc(-beta / Glibc.sqrt(2.0)) - 0.5 * Glibc.erfc(-alpha / Glibc.sqrt(2.0))
    if z > 1e-3 { return logStd + coreTruncatedStandardEntropyClosed(alpha: alpha, beta: beta) }
    return logStd + coreTruncatedStandardEntropy(alpha: alpha, beta: beta, intervals: 400)
}

private func referenceRowEntropy(loc: [Double], logStd: [Double], lo: Double = -1, hi: Double = 1) -> Double {
    var sum = CompensatedSum()
    for i in 0..<loc.count { sum.add(referenceTruncatedEntropy(loc: loc[i], logStd: logStd[i], lo: lo, hi: hi)) }
    return sum.value
}

private func sampledFloor(h0: Double, delta: Double = 0, min: Double = -8, max: Double = 0, dim: Int) throws -> SampledFloorERA {
    try SampledFloorERA(gaussian: ContinuousERA(targetEntropy: h0, residual: delta, logStdMin: min, logStdMax: max,
                                                dim: Int64(dim)), lo: -1, hi: 1)
}

private func forward<T: ERAReal>(_ era: SampledFloorERA, _ s: [T], _ m: [T]) throws -> (out: [T], offset: [T]) {
    let rows = s.count / era.gaussian.dim
    var out = [T](repeating: 0, count: s.count), offset = [T](repeating: 0, count: rows)
    try era.forward(rows: rows, stdLogits: s, loc: m, output: &out, offset: &offset)
    return (out, offset)
}

final class SampledFloorTests: XCTestCase {
    /// The truncated-normal entropy derivatives against central differences of the closed-form
    /// / quadrature reference, from tiny to huge scales and locations on and beyond the bounds.
    func testEntropyDerivativeAgainstFiniteDifferences() {
        var worst = 0.0
        for m in [0.0, 0.3, -0.9, 0.999, -1.0, 1.0, 1.5, -3.0] {
            for logStd in [-9.0, -4, -1, 0, 1, 3, 6] {
                let inside = abs(m) <= 1
                let h = abs(m) == 1 ? 1e-4 * Swift.min(1, Glibc.exp(logStd)) : 1e-5
                func H(_ mm: Double, _ ll: Double) -> Double {
                    inside ? referenceTruncatedEntropy(loc: mm, logStd: ll, lo: -1, hi: 1)
                        : ll + coreTruncatedStandardEntropy(alpha: (-1 - mm) / Glibc.exp(ll), beta: (1 - mm) / Glibc.exp(ll))
                }
                // A location on a bound has a one-sided derivative in m; step inward there.
                let dm = abs(m) == 1
                    ? (H(m - m * h, logStd) - H(m - 2 * m * h, logStd)) / (m * h)
                    : (H(m + h, logStd) - H(m - h, logStd)) / (2 * h)
                let dl = (H(m, logStd + h) - H(m, logStd - h)) / (2 * h)
                let d = Entropy.truncatedNormalEntropyDerivative(loc: m, logStd: logStd, lo: -1, hi: 1)
                let scaleM = Swift.max(1, abs(dm)), scaleL = Swift.max(1, abs(dl))
                let tolM = abs(m) == 1 ? 2e-3 * scaleM : 1e-6 * scaleM
                XCTAssertEqual(d.loc, dm, accuracy: tolM, "dH/dm at m=\(m), log std \(logStd)")
                XCTAssertEqual(d.logStd, dl, accuracy: 1e-6 * scaleL, "dH/dL at m=\(m), log std \(logStd)")
                if abs(m) != 1 { worst = Swift.max(worst, abs(d.loc - dm) / scaleM, abs(d.logStd - dl) / scaleL) }
            }
        }
        // The tails: tiny scale inside (dH/dL -> 1), huge scale (-> 0), far tail (-> 2).
        XCTAssertEqual(Entropy.truncatedNormalEntropyDerivative(loc: 0.2, logStd: -30, lo: -1, hi: 1).logStd, 1)
        XCTAssertEqual(Entropy.truncatedNormalEntropyDerivative(loc: 0.2, logStd: 40, lo: -1, hi: 1).logStd, 0, accuracy: 1e-30)
        XCTAssertEqual(Entropy.truncatedNormalEntropyDerivative(loc: 1e12, logStd: 0, lo: -1, hi: 1).logStd, 2, accuracy: 1e-12)
        print("TRUNCATED ENTROPY GRADIENT: worst FD disagreement \(worst) (relative to max(1, |derivative|))")
    }

    /// The floor by adversarial search, float64 and float32, D from 1 to 61; with the
    /// minimality of the offset and c = 0 rows equal to the Gaussian output.
    func testFloorHoldsAdversarially() throws {
        try adversarial(Double.self, tolerance: 1e-10)
        try adversarial(Float.self, tolerance: 1e-5)
    }

    private func adversarial<T: ERAReal>(_: T.Type, tolerance: Double) throws {
        var rng = TestRandom(seed: 61)
        var rows = 0, violations = 0, worstDeficit = -Double.infinity, worstAbove = 0.0, active = 0
        var worstContext = ""
        for d in [1, 2, 3, 6, 17, 61] {
            let sup = Double(d) * Glibc.log(2.0)
            for (h0, min, max) in [(-0.5 * Double(d), -8.0, 0.0), (0.5 * sup, -8, 0), (sup - 1e-3, -8, 0),
                                   (-3.0 * Double(d), -20, 2), (0.9 * sup, -5, 5), (-10.0 * Double(d), -8, -2)] {
                let era = try sampledFloor(h0: h0, min: min, max: max, dim: d)
                let gaussian = era.gaussian
                var s: [T] = [], m: [T] = []
                for kind in 0..<24 {
                    for i in 0..<d {
                        let scale = [0.1, 1, 10, 100, 1e4][kind % 5]
                        s.append(T(kind % 7 == 0 && i == 0 ? 50 : scale * rng.normal()))
                        let edge = [1.0, -1.0, 0.999999, -0.9999, 1 - 1e-12][rng.int(5)]
                        m.append(T(kind < 8 ? edge : (kind < 16 ? rng.uniform(-1, 1) : 0)))
                    }
                }
                let (out, offset) = try forward(era, s, m)
                var plain = [T](repeating: 0, count: s.count)
                try gaussian.forwardRows(rows: s.count / d, input: s, output: &plain)
                for r in 0..<s.count / d {
                    let range = r * d..<(r + 1) * d
                    let entropy = referenceRowEntropy(loc: m[range].map { Double($0) }, logStd: out[range].map { Double($0) })
                    rows += 1
                    let deficit = (h0 - entropy) / Swift.max(1, abs(h0))
                    if deficit > worstDeficit { worstDeficit = deficit; worstContext = "D \(d), H0 \(h0), bounds [\(min), \(max)]" }
                    if deficit > tolerance { violations += 1 }
                    if offset[r] == 0 {
                        XCTAssertEqual(Array(out[range]), Array(plain[range]), "c = 0 row differs from the Gaussian output")
                    } else {
                        active += 1
                        // Minimal: the row sits on the target (the solver's tolerance plus the
                        // rounding of the stored log stds).
                        worstAbove = Swift.max(worstAbove, (entropy - h0) / Swift.max(1, abs(h0)))
                    }
                }
            }
        }
        print("ADVERSARIAL sampled floor \(T.self): rows \(rows) (offset > 0 on \(active)), violations \(violations), "
              + "worst deficit (H0 - H)/max(1, |H0|) = \(worstDeficit) at \(worstContext); "
              + "largest excess of an offset row \(worstAbove)")
        XCTAssertEqual(violations, 0)
        XCTAssertLessThan(worstAbove, T.self == Double.self ? 1e-9 : 1e-4)
    }

    /// Rows above the target keep c = 0; a row below gets c > 0 and lands on the target.
    func testOffsetIsSmallest() throws {
        let era = try sampledFloor(h0: -3, dim: 6)
        let s = [Double](repeating: 0, count: 6)
        let (outLow, offLow) = try forward(era, s, [Double](repeating: 0.95, count: 6))
        XCTAssertGreaterThan(offLow[0], 0)
        XCTAssertEqual(referenceRowEntropy(loc: [Double](repeating: 0.95, count: 6), logStd: outLow), -3, accuracy: 1e-11)
        let high = try sampledFloor(h0: -12, dim: 6)
        let (_, offHigh) = try forward(high, s, [Double](repeating: 0, count: 6))
        XCTAssertEqual(offHigh[0], 0)
    }

    /// The backward pass against central differences of the forward pass, in float64: std
    /// logits, locations and the target, on rows with c > 0 and c = 0.
    func testBackwardAgainstFiniteDifferences() throws {
        var rng = TestRandom(seed: 7)
        let d = 5, rows = 6
        // Rows 0 and 1 clip one entry at log_std_min: their Gaussian entropy is far above H0
        // and so is the truncated one (c = 0); the other rows need an offset.
        let s = (0..<rows * d).map { i in i < 2 * d ? (i % d == 0 ? 50 : 0) : 2 * rng.normal() }
        let m = (0..<rows * d).map { i in i < 2 * d ? 0.0 : (i % 2 == 0 ? 1 : -1) * rng.uniform(0.9, 0.999) }
        let g = (0..<rows * d).map { _ in rng.normal() }
        let h0 = -6.0
        func loss(_ s: [Double], _ m: [Double], _ h0: Double) throws -> Double {
            let (out, _) = try forward(try sampledFloor(h0: h0, dim: d), s, m)
            return zip(out, g).reduce(0) { $0 + $1.0 * $1.1 }
        }
        let era = try sampledFloor(h0: h0, dim: d)
        var gs = [Double](repeating: 0, count: s.count), gm = gs, gr = [Double](repeating: 0, count: rows)
        try era.backward(rows: rows, stdLogits: s, loc: m, gradOutput: g, gradStdLogits: &gs, gradLoc: &gm, gradResidual: &gr)
        let (_, offsets) = try forward(era, s, m)
        XCTAssertTrue(offsets.contains(0) && offsets.contains { $0 > 0 }, "\(offsets)")
        let h = 1e-6
        var worst = 0.0
        for i in 0..<s.count {
            var sp = s, sm = s, mp = m, mm = m
            sp[i] += h; sm[i] -= h; mp[i] += h; mm[i] -= h
            let fs = (try loss(sp, m, h0) - loss(sm, m, h0)) / (2 * h)
            let fm = (try loss(s, mp, h0) - loss(s, mm, h0)) / (2 * h)
            XCTAssertEqual(gs[i], fs, accuracy: 1e-6 * Swift.max(1, abs(fs)))
            XCTAssertEqual(gm[i], fm, accuracy: 1e-6 * Swift.max(1, abs(fm)))
            worst = Swift.max(worst, abs(gs[i] - fs) / Swift.max(1, abs(fs)), abs(gm[i] - fm) / Swift.max(1, abs(fm)))
        }
        let fr = (try loss(s, m, h0 + h) - loss(s, m, h0 - h)) / (2 * h)
        XCTAssertEqual(gr.reduce(0, +), fr, accuracy: 1e-6 * Swift.max(1, abs(fr)))
        print("SAMPLED FLOOR GRADIENT: worst FD disagreement \(worst) (relative to max(1, |derivative|))")
    }

    /// Targets at or above D log(hi - lo) are refused at construction; a bad interval too.
    func testInfeasibleTargetsRefused() throws {
        let gaussian = try ContinuousERA(targetEntropy: 6 * Glibc.log(2.0), residual: 0, logStdMin: -8, logStdMax: 5, dim: 6)
        XCTAssertThrowsError(try SampledFloorERA(gaussian: gaussian, lo: -1, hi: 1)) { XCTAssertEqual($0 as? ERAError, .infeasibleTarget) }
        let residual = try ContinuousERA(targetEntropy: 4, residual: 0.2, logStdMin: -8, logStdMax: 5, dim: 6)
        XCTAssertThrowsError(try SampledFloorERA(gaussian: residual, lo: -1, hi: 1)) { XCTAssertEqual($0 as? ERAError, .infeasibleTarget) }
        XCTAssertNoThrow(try SampledFloorERA(gaussian: residual, lo: -1.5, hi: 1.5))
        XCTAssertThrowsError(try SampledFloorERA(gaussian: residual, lo: 1, hi: 1)) { XCTAssertEqual($0 as? ERAError, .badParameter) }
        // Just below the supremum a row reaches the target with large scales.
        let edge = try sampledFloor(h0: 6 * Glibc.log(2.0) - 1e-6, max: 5, dim: 6)
        let loc = [Double](repeating: 0.9, count: 6)
        let (out, _) = try forward(edge, [Double](repeating: 0, count: 6), loc)
        XCTAssertGreaterThanOrEqual(referenceRowEntropy(loc: loc, logStd: out), 6 * Glibc.log(2.0) - 1e-6 - 1e-10)
    }
}
