// Adversarial searches for violations of the entropy floors (math 1, 2, 4): inputs built to
// push the output entropy down (near-one-hot rows, huge logits, ties, tiny and huge class
// counts, random rows of many scales, and a random-descent search), targets spread over each
// mode's feasible range. Every output row's entropy is measured by the float64 reference of
// CoreReferences.swift, never by the library. Each test prints, per (mode, type), the rows tried,
// the violations and the worst deficit H0 - H (negative: the smallest margin found).
import XCTest
@testable import ERACore
#if canImport(Glibc)
import Glibc
#endif

/// Running summary of one (mode, type) search.
private struct CoreTally {
    let name: String
    var rows = 0
    var violations = 0
    var worstDeficit = -Double.infinity
    var worstContext = ""
    /// Largest absolute deficit (same as worstDeficit) and the largest relative one, H0 - H
    /// over max(1, |H0|).
    var worstRelative = -Double.infinity
    var belowInfimum = 0
    var worstBelowInfimum = -Double.infinity
    var firstFailure: String?
    let tolerance: Double

    init(_ name: String, tolerance: Double) {
        self.name = name
        self.tolerance = tolerance
    }

    /// Records one row: `tolerance` applies relative to max(1, |H0|).
    mutating func record(entropy: Double, target: Double, tolerance: Double, context: @autoclosure () -> String) {
        rows += 1
        let deficit = target - entropy
        let relative = deficit / Swift.max(1, Swift.abs(target))
        if deficit > worstDeficit { worstDeficit = deficit; worstContext = context() }
        worstRelative = Swift.max(worstRelative, relative)
        if !(relative <= tolerance) {  // NaN entropies count as violations
            violations += 1
            if firstFailure == nil { firstFailure = "H = \(entropy) < H0 = \(target): " + context() }
        }
    }

    mutating func recordInfimum(entropy: Double, infimum: Double, tolerance: Double) {
        let deficit = infimum - entropy
        worstBelowInfimum = Swift.max(worstBelowInfimum, deficit)
        if deficit > tolerance * Swift.max(1, Swift.abs(infimum)) { belowInfimum += 1 }
    }

    var line: String {
        "ADVERSARIAL \(name): rows \(rows), violations \(violations), worst deficit H0 - H = \(worstDeficit) "
            + "(relative \(worstRelative)) at \(worstContext)"
            + (worstBelowInfimum > -Double.infinity
                ? "; rows below the one-hot infimum: \(belowInfimum) (worst infimum - H = \(worstBelowInfimum))" : "")
    }
}

/// Rows meant to push discrete ERA's output entropy down, as (kind, logits).
private func coreHardDiscreteRows(classes d: Int, rng: inout TestRandom) -> [(String, [Double])] {
    var rows: [(String, [Double])] = []
    for L in [1.0, 2, 3, 5, 10, 20, 30, 50, 100, 300, 1000, 1e4] {
        var z = [Double](repeating: 0, count: d)
        z[rng.int(d)] = L
        rows.append(("one-hot L=\(L), rest 0", z))
        var noisy = (0..<d).map { _ in rng.uniform(-0.5, 0.5) }
        noisy[rng.int(d)] = L
        rows.append(("one-hot L=\(L), rest small", noisy))
    }
    for L in [5.0, 30, 1e4] {
        var two = [Double](repeating: 0, count: d)
        two[0] = L
        two[d - 1] = L
        rows.append(("two-hot L=\(L)", two))
        var second = [Double](repeating: 0, count: d)
        second[d / 2] = L
        second[0] = L - 1
        rows.append(("top L=\(L), second L-1", second))
    }
    rows.append(("huge random +-1e30", (0..<d).map { _ in rng.uniform(-1, 1) * 1e30 }))
    var huge = [Double](repeating: -1e30, count: d)
    huge[rng.int(d)] = 1e30
    rows.append(("one at 1e30, rest -1e30", huge))
    rows.append(("half 1e30, half -1e30", (0..<d).map { $0 % 2 == 0 ? 1e30 : -1e30 }))
    rows.append(("ties at 0", [Double](repeating: 0, count: d)))
    rows.append(("ties at 1e30", [Double](repeating: 1e30, count: d)))
    rows.append(("ties at -7.5", [Double](repeating: -7.5, count: d)))
    for scale in [1e-3, 0.1, 1, 3, 10, 30, 100, 1e3, 1e5] {
        for _ in 0..<2 { rows.append(("random scale \(scale)", (0..<d).map { _ in scale * rng.normal() })) }
    }
    return rows
}

final class CoreAdversarialTests: XCTestCase {
    // MARK: discrete ERA

    private func targets(mode: CoreMode, tau: Double, classes d: Int) -> [Double] {
        let (lo, hi) = CoreDiscreteParams.feasibleRange(mode: mode, tau: tau, classes: d)
        if mode == .tight {
            return [1e-4, 0.05, 0.3, 0.6, 0.9, 0.999].map { $0 * hi }
        }
        return [0, 0.05, 0.3, 0.6, 0.95, 1].map { lo + $0 * (hi - lo) }
    }

    /// Forward over a batch of rows and the reference entropy of every output row.
    private func outputEntropies<T: CoreKernelReal>(_ era: DiscreteERA, _ rows: [[Double]], _: T.Type) throws -> [Double] {
        let d = era.classes
        let input = rows.flatMap { $0 }.map { T($0) }
        let out: [T] = try coreDiscreteForward(era, rows: rows.count, input)
        return (0..<rows.count).map { r in
            let row = coreRow(out, r, d)
            XCTAssertTrue(row.allSatisfy { $0.isFinite }, "non-finite output, D=\(d)")
            return coreSoftmaxEntropy(row)
        }
    }

    private func searchDiscrete<T: CoreKernelReal>(mode: CoreMode, _: T.Type) throws -> CoreTally {
        var tally = CoreTally("discrete \(mode.name) \(T.label)", tolerance: T.boundTolerance)
        var rng = TestRandom(seed: 71 + UInt64(mode.rawValue))
        let tolerance = T.boundTolerance
        // Targets spread over the feasible range, a spread of tau (down to just above e, where the
        // inverse meets its branch point), and class counts from 2 to 1000.
        for d in [2, 3, 10, 1000] {
            for tau in [2.7183, 4, 30] {
                for h0 in targets(mode: mode, tau: tau, classes: d) {
                    let era = try DiscreteERA(targetEntropy: h0, tau: tau, mode: mode.rawValue, classes: Int64(d))
                    let rows = coreHardDiscreteRows(classes: d, rng: &rng)
                    let entropies = try outputEntropies(era, rows.map { $0.1 }, T.self)
                    for (i, h) in entropies.enumerated() {
                        tally.record(entropy: h, target: h0, tolerance: tolerance,
                                     context: "D=\(d) tau=\(tau) H0=\(h0) \(rows[i].0)")
                        if mode != .reference {
                            tally.recordInfimum(entropy: h, infimum: era.infimum, tolerance: tolerance)
                        }
                    }
                }
            }
        }
        // Random descent: from random starts, perturb one logit at a time (steps of 0.1 to 30)
        // and keep the change whenever the measured output entropy drops.
        for d in [2, 3, 10] {
            for tau in [2.7183, 4, 30] {
                for h0 in targets(mode: mode, tau: tau, classes: d) {
                    let era = try DiscreteERA(targetEntropy: h0, tau: tau, mode: mode.rawValue, classes: Int64(d))
                    for start in 0..<2 {
                        var z = (0..<d).map { _ in 2 * rng.normal() }
                        var best = try outputEntropies(era, [z], T.self)[0]
                        tally.record(entropy: best, target: h0, tolerance: tolerance,
                                     context: "D=\(d) tau=\(tau) H0=\(h0) descent start \(start)")
                        for _ in 0..<60 {
                            // A batch of 8 candidates per step.
                            var candidates: [[Double]] = []
                            for _ in 0..<8 {
                                var c = z
                                c[rng.int(d)] += [0.1, 1, 5, 30][rng.int(4)] * rng.normal()
                                candidates.append(c)
                            }
                            let hs = try outputEntropies(era, candidates, T.self)
                            for (i, h) in hs.enumerated() {
                                tally.record(entropy: h, target: h0, tolerance: tolerance,
                                             context: "D=\(d) tau=\(tau) H0=\(h0) descent")
                                if mode != .reference {
                                    tally.recordInfimum(entropy: h, infimum: era.infimum, tolerance: tolerance)
                                }
                                if h < best { best = h; z = candidates[i] }
                            }
                        }
                    }
                }
            }
        }
        // A few rows of D = 152064 (a large LLM vocabulary).
        let big = 152_064
        for h0 in (mode == .tight ? [1.0, 6.0] : [1.0, 8.0]) {
            let era = try DiscreteERA(targetEntropy: h0, tau: 4, mode: mode.rawValue, classes: Int64(big))
            var oneHot = [Double](repeating: 0, count: big)
            oneHot[12_345] = 1e4
            var nearOneHot = (0..<big).map { _ in rng.uniform(-0.5, 0.5) }
            nearOneHot[99] = 15
            let random = (0..<big).map { _ in 3 * rng.normal() }
            let ties = [Double](repeating: 2, count: big)
            let kinds = ["one-hot 1e4", "near one-hot 15", "random scale 3", "ties"]
            let entropies = try outputEntropies(era, [oneHot, nearOneHot, random, ties], T.self)
            for (i, h) in entropies.enumerated() {
                tally.record(entropy: h, target: h0, tolerance: tolerance, context: "D=\(big) tau=4 H0=\(h0) \(kinds[i])")
                if mode != .reference { tally.recordInfimum(entropy: h, infimum: era.infimum, tolerance: tolerance) }
            }
        }
        return tally
    }

    private func assertDiscrete(_ tally: CoreTally) {
        print(tally.line)
        XCTAssertEqual(tally.violations, 0, "\(tally.name): \(tally.firstFailure ?? "")")
        XCTAssertEqual(tally.belowInfimum, 0, "\(tally.name): rows below the one-hot infimum")
        // The floors hold with the absolute tolerance of math 5 as well (1e-10 / 1e-5 nats).
        XCTAssertLessThanOrEqual(tally.worstDeficit, tally.tolerance, "\(tally.name): absolute deficit")
        XCTAssertGreaterThan(tally.rows, 5000)
    }

    func testDiscreteExactDouble() throws { assertDiscrete(try searchDiscrete(mode: .exact, Double.self)) }
    func testDiscreteExactFloat() throws { assertDiscrete(try searchDiscrete(mode: .exact, Float.self)) }
    func testDiscreteTightDouble() throws { assertDiscrete(try searchDiscrete(mode: .tight, Double.self)) }
    func testDiscreteTightFloat() throws { assertDiscrete(try searchDiscrete(mode: .tight, Float.self)) }

    /// Mode "reference" guarantees nothing (math 2, 4): report what it does, assert only finite
    /// outputs (checked inside the search) and that it ran.
    func testDiscreteReferenceReportOnly() throws {
        let tally = try searchDiscrete(mode: .reference, Double.self)
        print(tally.line + " [informational: mode reference has no floor]")
        XCTAssertGreaterThan(tally.rows, 5000)
    }

    // MARK: continuous ERA

    private func searchContinuous<T: CoreKernelReal>(_: T.Type) throws -> (CoreTally, Double) {
        var tally = CoreTally("continuous Gaussian floor \(T.label)", tolerance: T.boundTolerance)
        var rng = TestRandom(seed: 81)
        let tolerance = T.boundTolerance
        var worstAbsolute = -Double.infinity
        var dims = Array(1...61)
        dims += [100, 1000, 4096]
        for d in dims {
            let dd = Double(d)
            for (lmin, lmax) in [(-8.0, 0.0), (-20.0, 2.0), (-5.0, 2.3)] {
                let top = dd * coreGaussianPerDim + dd * lmax
                // H0 + delta from the top of the feasible range (K = 0) down to targets so low
                // that most entries clip at log_std_min.
                for (gap, delta) in [(0.0, 0.0), (1e-9, 0.5), (0.01 * dd, 0.0), (dd, 0.3), (5 * dd, 0.0), (20 * dd, 1.0),
                                     (1000 * dd, 0.0)] {
                    // At gap 0 the rounding of K = H0 + delta - D c - D lmax may land a hair above 0
                    // (infeasible, rightly); step H0 down by ulps until K <= 0 as computed.
                    var h0 = top - gap - delta
                    var built: ContinuousERA?
                    for _ in 0..<64 where built == nil {
                        let error = coreCapture { () throws(ERAError) in
                            built = try ContinuousERA(targetEntropy: h0, residual: delta, logStdMin: lmin, logStdMax: lmax,
                                                      dim: Int64(d))
                        }
                        if error == .infeasibleTarget && gap == 0 { h0 = h0.nextDown } else { XCTAssertNil(error) }
                    }
                    let era = try XCTUnwrap(built)
                    var rows: [(String, [Double])] = []
                    for scale in [0.0, 1e-3, 1, 10, 100, 1e4, 1e30] {
                        rows.append(("scale \(scale)", (0..<d).map { _ in scale * rng.normal() }))
                    }
                    var oneHot = [Double](repeating: -1e4, count: d)
                    oneHot[rng.int(d)] = 1e4
                    rows.append(("one-hot", oneHot))
                    var twoHot = [Double](repeating: 0, count: d)
                    twoHot[0] = 40
                    twoHot[d - 1] = 40
                    rows.append(("two-hot", twoHot))
                    let input = rows.flatMap { $0.1 }.map { T($0) }
                    let out: [T] = try coreContinuousForward(era, rows: rows.count, input)
                    let floor = h0 + delta
                    for r in 0..<rows.count {
                        let logStd = coreRow(out, r, d)
                        // Every std within [exp(min), exp(max)] (Float: max within one float ulp).
                        let slack = T.self == Float.self ? Double(Float(lmax).ulp) : 0
                        XCTAssertTrue(logStd.allSatisfy { $0 >= lmin && $0 <= lmax + slack }, "log std out of bounds, D=\(d)")
                        let h = coreGaussianEntropy(logStd[...])
                        worstAbsolute = Swift.max(worstAbsolute, floor - h)
                        tally.record(entropy: h, target: floor, tolerance: tolerance,
                                     context: "D=\(d) [\(lmin), \(lmax)] H0+delta=\(floor) (K=\(era.scale)) \(rows[r].0)")
                    }
                }
            }
        }
        return (tally, worstAbsolute)
    }

    private func assertContinuous<T: CoreKernelReal>(_: T.Type) throws {
        let (tally, worstAbsolute) = try searchContinuous(T.self)
        print(tally.line + "; worst absolute deficit \(worstAbsolute)")
        // Relative to max(1, |H0 + delta|): the floors of large dims are thousands of nats.
        XCTAssertEqual(tally.violations, 0, "\(tally.name): \(tally.firstFailure ?? "")")
        if T.self == Double.self {
            // In float64 the absolute tolerance of math 5 holds too.
            XCTAssertLessThanOrEqual(worstAbsolute, 1e-10)
        }
        // (Float: the absolute deficit is covered by testFloatFloorWhenLogStdMaxIsNotAFloat.)
        XCTAssertGreaterThan(tally.rows, 5000)
    }

    func testContinuousDouble() throws { try assertContinuous(Double.self) }
    func testContinuousFloat() throws { try assertContinuous(Float.self) }
}
