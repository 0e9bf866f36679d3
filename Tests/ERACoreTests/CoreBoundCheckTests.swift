// Bound verification (math 4): BoundReport on hand-made entropies, and BoundCheck on kernel
// outputs against the float64 references.
import XCTest
@testable import ERACore
#if canImport(Glibc)
import Glibc
#endif

private func coreReport(_ entropies: [Double], target: Double, tolerance: Double, floor: Double) -> BoundReport {
    entropies.withUnsafeBufferPointer { BoundReport(entropies: $0, target: target, tolerance: tolerance, floor: floor) }
}

final class CoreBoundCheckTests: XCTestCase {
    func testReportOnHandMadeEntropies() {
        let r = coreReport([2.0, 0.5, 1.0, 0.5, 3.0, 0.95], target: 1.0, tolerance: 0.1, floor: 0.8)
        XCTAssertEqual(r.rows, 6)
        XCTAssertEqual(r.violations, 2, "0.5 and 0.5 are below 0.9; 0.95 is within the tolerance")
        XCTAssertEqual(r.minEntropy, 0.5)
        XCTAssertEqual(r.worstRow, 1, "the first of the smallest")
        XCTAssertEqual(r.meanEntropy, (2.0 + 0.5 + 1.0 + 0.5 + 3.0 + 0.95) / 6, accuracy: 1e-15)
        XCTAssertEqual(r.maxDeficit, 0.5)
        XCTAssertEqual(r.target, 1.0)
        XCTAssertEqual(r.floor, 0.8)

        // Everything above target: no deficit (max(0, ...)), no violation.
        let above = coreReport([1.5, 1.2, 9], target: 1.0, tolerance: 0, floor: .nan)
        XCTAssertEqual(above.violations, 0)
        XCTAssertEqual(above.maxDeficit, 0)
        XCTAssertEqual(above.worstRow, 1)
        XCTAssertTrue(above.floor.isNaN)

        // Exactly at target - tolerance is not a violation; just below is.
        let edge = coreReport([0.75, 0.75.nextDown], target: 1.0, tolerance: 0.25, floor: 1)
        XCTAssertEqual(edge.violations, 1)
        XCTAssertEqual(edge.worstRow, 1)
        XCTAssertEqual(edge.maxDeficit, 1 - 0.75.nextDown)

        // Zero tolerance: any deficit counts.
        let strict = coreReport([1.0, 1.0.nextDown, 1.0], target: 1.0, tolerance: 0, floor: 1)
        XCTAssertEqual(strict.violations, 1)
        XCTAssertEqual(strict.worstRow, 1)

        // Negative entropies (continuous ERA) are fine.
        let negative = coreReport([-3, -5, -4], target: -4.5, tolerance: 1e-10, floor: -4.5)
        XCTAssertEqual(negative.violations, 1)
        XCTAssertEqual(negative.maxDeficit, 0.5)
        XCTAssertEqual(negative.minEntropy, -5)
        XCTAssertEqual(negative.meanEntropy, -4)
    }

    func testEmptyReport() {
        let r = coreReport([], target: 2, tolerance: 1e-10, floor: 2)
        XCTAssertEqual(r.rows, 0)
        XCTAssertEqual(r.violations, 0)
        XCTAssertEqual(r.minEntropy, .infinity)
        XCTAssertTrue(r.meanEntropy.isNaN)
        XCTAssertEqual(r.maxDeficit, 0)
        XCTAssertEqual(r.worstRow, -1)
        XCTAssertEqual(r.target, 2)
        XCTAssertEqual(r.floor, 2)
        let nilBuffer = BoundReport(entropies: UnsafeBufferPointer(start: nil, count: 0), target: 1, tolerance: 0, floor: .nan)
        XCTAssertEqual(nilBuffer.rows, 0)
        XCTAssertEqual(nilBuffer.worstRow, -1)
    }

    /// BoundCheck.discrete measures the entropies the reference measures, with the mode's floor.
    func testDiscreteCheckAgainstReference() throws {
        var rng = TestRandom(seed: 61)
        let rows = 40, d = 12
        for mode: Int32 in [0, 1, 2] {
            let era = try DiscreteERA(targetEntropy: mode == 1 ? 1.5 : 2.0, tau: 4, mode: mode, classes: Int64(d))
            var z = (0..<(rows * d)).map { _ in 4 * rng.normal() }
            z[5 * d] = 1e4  // row 5 one-hot
            let out: [Double] = try coreDiscreteForward(era, rows: rows, z)
            let outF: [Float] = try coreDiscreteForward(era, rows: rows, z.map { Float($0) })
            let entropies = (0..<rows).map { coreSoftmaxEntropy(coreRow(out, $0, d)) }
            let entropiesF = (0..<rows).map { coreSoftmaxEntropy(coreRow(outF, $0, d)) }
            let expected = coreReport(entropies, target: era.targetEntropy, tolerance: 1e-10, floor: era.guaranteedFloor)
            let report = try out.withUnsafeBufferPointer { p in
                try BoundCheck.discrete(era, rows: rows, outputLogits: p.baseAddress, tolerance: 1e-10)
            }
            let reportF = try outF.withUnsafeBufferPointer { p in
                try BoundCheck.discrete(era, rows: rows, outputLogits: p.baseAddress, tolerance: 1e-5)
            }
            for (r, e, tol) in [(report, entropies, 1e-12), (reportF, entropiesF, 1e-12)] {
                XCTAssertEqual(r.rows, rows)
                XCTAssertEqual(r.violations, 0, "mode \(mode)")
                XCTAssertEqual(r.minEntropy, e.min()!, accuracy: tol)
                XCTAssertEqual(r.meanEntropy, e.reduce(0, +) / Double(rows), accuracy: tol)
                XCTAssertEqual(r.worstRow, e.firstIndex(of: e.min()!)!)
                XCTAssertEqual(r.target, era.targetEntropy)
                if mode == 2 { XCTAssertTrue(r.floor.isNaN) } else { XCTAssertEqual(r.floor, era.targetEntropy) }
            }
            XCTAssertEqual(report.worstRow, expected.worstRow)
            if mode == 1 {
                // Tight: the one-hot row sits on the floor.
                XCTAssertEqual(report.worstRow, 5)
                XCTAssertEqual(report.minEntropy, 1.5, accuracy: 1e-10)
            }
        }
        // A violation is a result: outputs of a lower target checked against a higher one.
        let low = try DiscreteERA(targetEntropy: 0.5, tau: 4, mode: 1, classes: Int64(d))
        var z = [Double](repeating: 0, count: d)
        z[0] = 50
        let out: [Double] = try coreDiscreteForward(low, rows: 1, z)
        let high = try DiscreteERA(targetEntropy: 2, tau: 4, mode: 1, classes: Int64(d))
        let report = try out.withUnsafeBufferPointer { p in
            try BoundCheck.discrete(high, rows: 1, outputLogits: p.baseAddress, tolerance: 1e-10)
        }
        XCTAssertEqual(report.violations, 1)
        XCTAssertEqual(report.maxDeficit, 2 - coreSoftmaxEntropy(out), accuracy: 1e-12)
        XCTAssertEqual(report.worstRow, 0)
    }

    func testContinuousCheckAgainstReference() throws {
        var rng = TestRandom(seed: 62)
        let rows = 30, d = 5
        let era = try ContinuousERA(targetEntropy: -2.5, residual: 0.4, logStdMin: -8, logStdMax: 0, dim: Int64(d))
        let s = (0..<(rows * d)).map { _ in 3 * rng.normal() }
        let mean = (0..<(rows * d)).map { _ in rng.normal() }
        let logStd: [Double] = try coreContinuousForward(era, rows: rows, s)
        // Gaussian: against H0 + delta.
        let gaussian = try logStd.withUnsafeBufferPointer { p in
            try BoundCheck.continuous(era, rows: rows, mean: nil as UnsafePointer<Double>?, logStd: p.baseAddress, tolerance: 1e-10)
        }
        let ge = (0..<rows).map { coreGaussianEntropy(coreRow(logStd, $0, d)[...]) }
        XCTAssertEqual(gaussian.violations, 0)
        XCTAssertEqual(gaussian.target, -2.1)
        XCTAssertEqual(gaussian.floor, -2.1)
        XCTAssertEqual(gaussian.minEntropy, ge.min()!, accuracy: 1e-12)
        // Unclipped rows all sit on the floor up to rounding, so only the entropy of the reported
        // worst row is checked (the argmin among rounding-level ties depends on the summation).
        XCTAssertEqual(ge[gaussian.worstRow], ge.min()!, accuracy: 1e-12)
        // Squashed: against H0 itself, no floor.
        let squashed = try logStd.withUnsafeBufferPointer { p in
            try mean.withUnsafeBufferPointer { m in
                try BoundCheck.continuous(era, rows: rows, mean: m.baseAddress, logStd: p.baseAddress, tolerance: 1e-10)
            }
        }
        var se: [Double] = []
        for r in 0..<rows {
            let m = coreRow(mean, r, d), l = coreRow(logStd, r, d)
            var h = coreGaussianEntropy(l[...])
            for i in 0..<d { h += coreTanhPenaltySimpson(mu: m[i], std: Glibc.exp(l[i]), intervals: 20_000) }
            se.append(h)
        }
        XCTAssertEqual(squashed.target, -2.5)
        XCTAssertTrue(squashed.floor.isNaN)
        XCTAssertEqual(squashed.minEntropy, se.min()!, accuracy: 1e-9)
        XCTAssertEqual(squashed.meanEntropy, se.reduce(0, +) / Double(rows), accuracy: 1e-9)
        XCTAssertEqual(squashed.violations, se.filter { $0 < -2.5 - 1e-10 }.count)
        XCTAssertGreaterThan(squashed.violations, 0, "squashing lowers the entropy below the Gaussian floor")
    }

    func testCheckErrors() throws {
        let era = try DiscreteERA(targetEntropy: 1, tau: 4, mode: 0, classes: 3)
        XCTAssertEqual(coreCapture { () throws(ERAError) in
            _ = try BoundCheck.discrete(era, rows: 2, outputLogits: nil as UnsafePointer<Double>?, tolerance: 1e-10)
        }, .nullPointer)
        let empty = try BoundCheck.discrete(era, rows: 0, outputLogits: nil as UnsafePointer<Double>?, tolerance: 1e-10)
        XCTAssertEqual(empty.rows, 0)
        XCTAssertEqual(empty.worstRow, -1)
        XCTAssertEqual(empty.minEntropy, .infinity)
        XCTAssertEqual(coreCapture { () throws(ERAError) in
            _ = try BoundCheck.discrete(era, rows: 0, outputLogits: nil as UnsafePointer<Double>?, tolerance: .nan)
        }, .badParameter)
        let cera = try ContinuousERA(targetEntropy: -1, residual: 0, logStdMin: -8, logStdMax: 0, dim: 2)
        XCTAssertEqual(coreCapture { () throws(ERAError) in
            _ = try BoundCheck.continuous(cera, rows: 1, mean: nil as UnsafePointer<Float>?, logStd: nil, tolerance: 1e-5)
        }, .nullPointer)
        XCTAssertEqual(coreCapture { () throws(ERAError) in
            _ = try BoundCheck.continuous(cera, rows: 1, mean: nil as UnsafePointer<Float>?, logStd: nil, tolerance: -1)
        }, .badParameter)
    }
}
