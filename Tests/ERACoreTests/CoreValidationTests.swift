// Argument checks: every throw of the initialisers, shapes, finiteness scans, thread setting.
import XCTest
@testable import ERACore
#if canImport(Glibc)
import Glibc
#endif

private func coreInitError(_ body: () throws(ERAError) -> Void) -> ERAError? { coreCapture(body) }

final class CoreValidationTests: XCTestCase {
    // MARK: ContinuousERA

    private func continuous(h0: Double = -3, delta: Double = 0, lmin: Double = -8, lmax: Double = 0,
                            dim: Int64 = 6) -> ERAError? {
        coreInitError { () throws(ERAError) in
            _ = try ContinuousERA(targetEntropy: h0, residual: delta, logStdMin: lmin, logStdMax: lmax, dim: dim)
        }
    }

    func testContinuousInit() {
        XCTAssertNil(continuous())
        XCTAssertEqual(continuous(dim: 0), .badShape)
        XCTAssertEqual(continuous(dim: -1), .badShape)
        XCTAssertEqual(continuous(dim: Int64.min), .badShape)
        // badShape is checked before the parameters.
        XCTAssertEqual(continuous(h0: .nan, dim: 0), .badShape)
        for bad in [Double.nan, .infinity, -.infinity] {
            XCTAssertEqual(continuous(h0: bad), .badParameter, "target \(bad)")
            XCTAssertEqual(continuous(delta: bad), .badParameter, "residual \(bad)")
            XCTAssertEqual(continuous(lmin: bad), .badParameter, "log_std_min \(bad)")
            XCTAssertEqual(continuous(lmax: bad), .badParameter, "log_std_max \(bad)")
        }
        XCTAssertEqual(continuous(delta: -1e-300), .badParameter)
        XCTAssertEqual(continuous(delta: -1), .badParameter)
        XCTAssertNil(continuous(delta: 0))
        XCTAssertEqual(continuous(lmin: 0, lmax: 0), .badParameter, "log_std_min == log_std_max")
        XCTAssertEqual(continuous(lmin: 1, lmax: 0), .badParameter, "log_std_min > log_std_max")
        XCTAssertNil(continuous(lmin: -1e-300, lmax: 0))
        // K = H0 + delta - D c - D lmax: K = 0 accepted, K > 0 infeasible. (The library's own c,
        // so that the boundary is exactly where K is computed as 0; c itself is checked by the
        // Gaussian entropy tests.)
        XCTAssertEqual(Math.gaussianEntropyPerDim, coreGaussianPerDim, accuracy: 1e-15)
        XCTAssertNil(continuous(h0: Math.gaussianEntropyPerDim, lmin: -8, lmax: 0, dim: 1))
        XCTAssertEqual(continuous(h0: Math.gaussianEntropyPerDim.nextUp, lmin: -8, lmax: 0, dim: 1), .infeasibleTarget)
        XCTAssertEqual(continuous(h0: 6 * coreGaussianPerDim + 1e-9, dim: 6), .infeasibleTarget)
        XCTAssertNil(continuous(h0: 6 * coreGaussianPerDim - 1e-9, dim: 6))
        XCTAssertEqual(continuous(h0: 6 * coreGaussianPerDim - 1, delta: 1.5, dim: 6), .infeasibleTarget, "the residual counts")
        XCTAssertEqual(continuous(h0: 6 * coreGaussianPerDim + 12.5, lmax: 2, dim: 6), .infeasibleTarget)
        XCTAssertNil(continuous(h0: 6 * coreGaussianPerDim + 11.5, lmax: 2, dim: 6))
        // Non-finite beats infeasible.
        XCTAssertEqual(continuous(h0: .infinity), .badParameter)
    }

    // MARK: DiscreteERA

    private func discrete(h0: Double = 1, tau: Double = 4, mode: Int32 = 0, classes: Int64 = 10) -> ERAError? {
        coreInitError { () throws(ERAError) in
            _ = try DiscreteERA(targetEntropy: h0, tau: tau, mode: mode, classes: classes)
        }
    }

    func testDiscreteInitShapesAndParameters() {
        XCTAssertNil(discrete())
        for classes: Int64 in [1, 0, -1, Int64.min] {
            XCTAssertEqual(discrete(classes: classes), .badShape, "classes \(classes)")
        }
        XCTAssertNil(discrete(h0: 0.5, classes: 2))
        XCTAssertEqual(discrete(h0: .nan, classes: 1), .badShape, "badShape first")
        for bad in [Double.nan, .infinity, -.infinity] {
            XCTAssertEqual(discrete(h0: bad), .badParameter, "target \(bad)")
            XCTAssertEqual(discrete(tau: bad), .badParameter, "tau \(bad)")
        }
        // tau must exceed e: e itself (as a double, 2.718281828459045), below, 0 and negatives fail.
        XCTAssertEqual(2.718281828459045, coreE)
        for tau in [2.718281828459045, 2.7, 1, 0, -4, coreE.nextDown] {
            XCTAssertEqual(discrete(tau: tau), .badParameter, "tau \(tau)")
        }
        // ... and by a margin, log(tau) >= 1 + 1e-6: nearer e, log(tau)/tau rounds to 1/e (NaN
        // logits before the margin existed) or the inverse of h is too ill-conditioned.
        for tau in [coreE.nextUp, 2.7182818284591002, coreE * (1 + 0.9e-6)] {
            XCTAssertEqual(discrete(h0: 1, tau: tau, classes: 10), .badParameter, "tau \(tau)")
        }
        XCTAssertNil(discrete(h0: 1, tau: Glibc.exp(1 + 1e-6) * (1 + 1e-12), classes: 10), "tau just past the margin")
        for mode: Int32 in [3, -1, 100, Int32.min, Int32.max] {
            XCTAssertEqual(discrete(mode: mode), .badParameter, "mode \(mode)")
        }
        for mode: Int32 in [0, 1, 2] { XCTAssertNil(discrete(mode: mode), "mode \(mode)") }
    }

    /// Feasible targets: exact and reference 1 + log(up) <= H0 <= 1 + log(D up), boundaries
    /// included; tight 0 < H0 < log D, boundaries excluded.
    func testDiscreteFeasibility() {
        for tau in [3.0, 4, 10, 1e3] {
            for classes: Int64 in [2, 3, 10, 1000, 152_064] {
                let up = Glibc.log(tau) / tau
                let lo = 1 + Glibc.log(up), hi = 1 + Glibc.log(Double(classes) * up)
                for mode: Int32 in [0, 2] {
                    let context = "mode \(mode) tau \(tau) D \(classes)"
                    XCTAssertNil(discrete(h0: lo, tau: tau, mode: mode, classes: classes), "lower boundary, \(context)")
                    XCTAssertNil(discrete(h0: hi, tau: tau, mode: mode, classes: classes), "upper boundary, \(context)")
                    XCTAssertNil(discrete(h0: 0.5 * (lo + hi), tau: tau, mode: mode, classes: classes), context)
                    XCTAssertEqual(discrete(h0: lo - 1e-9, tau: tau, mode: mode, classes: classes), .infeasibleTarget, context)
                    XCTAssertEqual(discrete(h0: hi + 1e-9, tau: tau, mode: mode, classes: classes), .infeasibleTarget, context)
                    XCTAssertEqual(discrete(h0: lo - 1, tau: tau, mode: mode, classes: classes), .infeasibleTarget, context)
                    XCTAssertEqual(discrete(h0: hi + 1, tau: tau, mode: mode, classes: classes), .infeasibleTarget, context)
                }
                let logD = Glibc.log(Double(classes))
                let context = "tight tau \(tau) D \(classes)"
                XCTAssertEqual(discrete(h0: 0, tau: tau, mode: 1, classes: classes), .infeasibleTarget, context)
                XCTAssertEqual(discrete(h0: -1e-9, tau: tau, mode: 1, classes: classes), .infeasibleTarget, context)
                XCTAssertEqual(discrete(h0: logD, tau: tau, mode: 1, classes: classes), .infeasibleTarget, context)
                XCTAssertEqual(discrete(h0: logD + 1e-9, tau: tau, mode: 1, classes: classes), .infeasibleTarget, context)
                XCTAssertNil(discrete(h0: 1e-9, tau: tau, mode: 1, classes: classes), context)
                XCTAssertNil(discrete(h0: logD * (1 - 1e-9), tau: tau, mode: 1, classes: classes), context)
            }
        }
        // At the exact-mode boundaries C is clamped into [up, D up].
        let up = Glibc.log(4.0) / 4
        let atLow = try? DiscreteERA(targetEntropy: 1 + Glibc.log(up), tau: 4, mode: 0, classes: 10)
        let atHigh = try? DiscreteERA(targetEntropy: 1 + Glibc.log(10 * up), tau: 4, mode: 0, classes: 10)
        XCTAssertNotNil(atLow)
        XCTAssertNotNil(atHigh)
        if let atLow, let atHigh {
            XCTAssertGreaterThanOrEqual(atLow.c, up)
            XCTAssertLessThanOrEqual(atHigh.c, 10 * up)
            XCTAssertEqual(atHigh.slope, 0, accuracy: 1e-16)
        }
    }

    // MARK: shapes and scans

    func testCheckedElementCount() {
        func count(_ rows: Int64, _ cols: Int64, minCols: Int64 = 1, size: Int = 4) -> Result<Int, ERAError> {
            do throws(ERAError) {
                return .success(try checkedElementCount(rows: rows, cols: cols, minCols: minCols, elementSize: size))
            } catch {
                return .failure(error)
            }
        }
        XCTAssertEqual(count(3, 4), .success(12))
        XCTAssertEqual(count(0, 4), .success(0))
        XCTAssertEqual(count(0, 1), .success(0))
        XCTAssertEqual(count(Int64.max / 2, 4), .failure(.badShape), "element count overflows")
        XCTAssertEqual(count(Int64.max, 2), .failure(.badShape))
        XCTAssertEqual(count(Int64.max / 8, 2, size: 8), .failure(.badShape), "byte count overflows")
        XCTAssertEqual(count(Int64.max / 8, 1, size: 8), .success(Int(Int64.max / 8)), "largest count that fits")
        XCTAssertEqual(count(Int64.max / 8 + 1, 1, size: 8), .failure(.badShape))
        XCTAssertEqual(count(-1, 4), .failure(.badShape), "negative rows")
        XCTAssertEqual(count(Int64.min, 4), .failure(.badShape))
        XCTAssertEqual(count(3, -1), .failure(.badShape), "negative cols")
        XCTAssertEqual(count(3, 1, minCols: 2), .failure(.badShape), "too few cols")
        XCTAssertEqual(count(3, 2, minCols: 2), .success(6))
        XCTAssertEqual(count(3, 0, minCols: 0), .success(0))
    }

    func testRequireFinite() {
        for bad in [Double.nan, .infinity, -.infinity, -Double.nan, Double.signalingNaN] {
            for position in [0, 500, 999] {
                var values = [Double](repeating: 1.5, count: 1000)
                values[position] = bad
                let error = values.withUnsafeBufferPointer { p in
                    coreCapture { () throws(ERAError) in try requireFinite(p.baseAddress, count: p.count) }
                }
                XCTAssertEqual(error, .nonFinite, "\(bad) at \(position)")
            }
            var floats = [Float](repeating: -2, count: 37)
            floats[36] = Float(bad)
            let error = floats.withUnsafeBufferPointer { p in
                coreCapture { () throws(ERAError) in try requireFinite(p.baseAddress, count: p.count) }
            }
            XCTAssertEqual(error, .nonFinite, "Float \(bad) in the last element")
        }
        // Extreme finite values pass (x - x is 0 for every finite x).
        let extremes: [Double] = [.greatestFiniteMagnitude, -.greatestFiniteMagnitude, .leastNonzeroMagnitude, 0, -0.0]
        XCTAssertNil(extremes.withUnsafeBufferPointer { p in
            coreCapture { () throws(ERAError) in try requireFinite(p.baseAddress, count: p.count) }
        })
        let floatExtremes: [Float] = [.greatestFiniteMagnitude, -.greatestFiniteMagnitude, .leastNonzeroMagnitude]
        XCTAssertNil(floatExtremes.withUnsafeBufferPointer { p in
            coreCapture { () throws(ERAError) in try requireFinite(p.baseAddress, count: p.count) }
        })
        // Only `count` elements are read: a NaN past the end is not seen.
        let tail: [Double] = [1, 2, .nan]
        XCTAssertNil(tail.withUnsafeBufferPointer { p in
            coreCapture { () throws(ERAError) in try requireFinite(p.baseAddress, count: 2) }
        })
        // A missing pointer: an error only when there is something to read.
        XCTAssertEqual(coreCapture { () throws(ERAError) in try requireFinite(nil as UnsafePointer<Double>?, count: 3) },
                       .nullPointer)
        XCTAssertNil(coreCapture { () throws(ERAError) in try requireFinite(nil as UnsafePointer<Double>?, count: 0) })
    }

    func testThreadSetting() throws {
        defer { try? Threads.set(0) }
        XCTAssertEqual(coreCapture { () throws(ERAError) in try Threads.set(-1) }, .badParameter)
        XCTAssertEqual(coreCapture { () throws(ERAError) in try Threads.set(1025) }, .badParameter)
        XCTAssertEqual(coreCapture { () throws(ERAError) in try Threads.set(Int.min) }, .badParameter)
        try Threads.set(1024)
        XCTAssertEqual(Threads.current, 1024)
        try Threads.set(1)
        XCTAssertEqual(Threads.current, 1)
        // A refused value leaves the setting alone.
        _ = coreCapture { () throws(ERAError) in try Threads.set(5000) }
        XCTAssertEqual(Threads.current, 1)
        try Threads.set(0)
        XCTAssertEqual(Threads.current, Threads.processorCount)
        XCTAssertGreaterThanOrEqual(Threads.current, 1)
    }

    func testBoundCheckToleranceValidation() {
        for bad in [Double.nan, .infinity, -.infinity, -1e-300, -1] {
            XCTAssertEqual(coreCapture { () throws(ERAError) in try BoundCheck.validate(tolerance: bad) }, .badParameter,
                           "tolerance \(bad)")
        }
        for good in [0.0, 1e-10, 1] {
            XCTAssertNil(coreCapture { () throws(ERAError) in try BoundCheck.validate(tolerance: good) })
        }
    }
}
