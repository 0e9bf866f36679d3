// Continuous ERA (math 1): forward and backward against the float64 reference, finite
// differences (through clipped entries, the residual and the target), bounds, in place.
import XCTest
@testable import ERACore
#if canImport(Glibc)
import Glibc
#endif

private struct CoreContinuousCase {
    let params: CoreContinuousParams
    var era: ContinuousERA {
        get throws {
            try ContinuousERA(targetEntropy: params.h0, residual: params.delta, logStdMin: params.logStdMin,
                              logStdMax: params.logStdMax, dim: Int64(params.dim))
        }
    }
}

/// Feasible parameter sets: official defaults (H0 = -0.5 D, delta = 0, [-8, 0]) and others.
private func coreContinuousCases(dims: [Int]) -> [CoreContinuousCase] {
    var cases: [CoreContinuousCase] = []
    for d in dims {
        let dd = Double(d)
        for (lmin, lmax) in [(-8.0, 0.0), (-20.0, 2.0), (-5.0, 0.5)] {
            let top = dd * coreGaussianPerDim + dd * lmax  // the largest feasible H0 + delta
            for (h0, delta) in [(-0.5 * dd, 0.0), (-0.5 * dd, 0.7), (top - 0.1 * dd, 0.05), (top - 3 * dd, 1.0)] {
                cases.append(CoreContinuousCase(params: CoreContinuousParams(h0: h0, delta: delta, logStdMin: lmin,
                                                                             logStdMax: lmax, dim: d)))
            }
        }
    }
    return cases
}

final class CoreContinuousERATests: XCTestCase {
    func testScaleAndFloor() throws {
        for c in coreContinuousCases(dims: [1, 2, 6, 17, 61]) {
            let era = try c.era
            XCTAssertEqual(era.scale, c.params.k, accuracy: 1e-13 * Swift.max(1, Swift.abs(c.params.k)))
            XCTAssertLessThanOrEqual(era.scale, 0)
            XCTAssertEqual(era.guaranteedFloor, c.params.h0 + c.params.delta)
            XCTAssertEqual(era.dim, c.params.dim)
        }
    }

    private func checkForward<T: CoreKernelReal>(_: T.Type, tolerance: Double) throws {
        var rng = TestRandom(seed: 31)
        var worst = 0.0
        var clipped = 0
        for c in coreContinuousCases(dims: [1, 2, 6, 17, 61]) {
            let era = try c.era
            let d = c.params.dim
            for scale in [0.01, 1, 5, 30] {
                let rows = 3
                let input = (0..<(rows * d)).map { _ in T(scale * rng.normal()) }
                let out: [T] = try coreContinuousForward(era, rows: rows, input)
                for r in 0..<rows {
                    let expected = coreContinuousForward(coreRow(input, r, d), c.params)
                    for i in 0..<d {
                        let got = Double(out[r * d + i])
                        if expected[i] == c.params.logStdMin { clipped += 1 }
                        let error = Swift.abs(got - expected[i]) / Swift.max(1, Swift.abs(expected[i]))
                        worst = Swift.max(worst, error)
                        if error > tolerance {
                            XCTFail("\(T.label) \(c.params) scale \(scale) row \(r) [\(i)]: \(got) vs \(expected[i])")
                            return
                        }
                        // Bounds: log std within [min, max] (Float: within one float ulp of max,
                        // which need not be representable).
                        XCTAssertGreaterThanOrEqual(got, c.params.logStdMin)
                        XCTAssertLessThanOrEqual(got, c.params.logStdMax + (T.self == Float.self
                            ? Double(Float(c.params.logStdMax).ulp) : 0))
                    }
                }
            }
        }
        XCTAssertGreaterThan(clipped, 0, "some entries must be clipped at log_std_min")
        print("continuous forward \(T.label) vs reference: max error / max(1, |value|) = \(worst) (\(clipped) clipped entries)")
    }

    func testForwardDoubleAgainstReference() throws { try checkForward(Double.self, tolerance: 1e-12) }
    func testForwardFloatAgainstReference() throws { try checkForward(Float.self, tolerance: 1e-5) }

    /// Float outputs are rounded up (towards +inf), so that they never sum below the double values;
    /// also for outputs of both signs and near 0 (log_std_max = 0.5).
    func testFloatForwardRoundsUp() throws {
        var rng = TestRandom(seed: 32)
        for (h0, top) in [(-3.0, 0.0), (6.0, 0.5)] {
            let era = try ContinuousERA(targetEntropy: h0, residual: 0, logStdMin: -8, logStdMax: top, dim: 6)
            let input = (0..<600).map { _ in Float(rng.normal()) }
            let out: [Float] = try coreContinuousForward(era, rows: 100, input)
            let params = CoreContinuousParams(h0: h0, delta: 0, logStdMin: -8, logStdMax: top, dim: 6)
            XCTAssertTrue(out.contains { $0 > 0 } == (top > 0), "outputs above 0 only when log_std_max is")
            for r in 0..<100 {
                let expected = coreContinuousForward(coreRow(input, r, 6), params)
                for i in 0..<6 {
                    let got = out[r * 6 + i]
                    XCTAssertGreaterThanOrEqual(Double(got), expected[i] - 1e-15 * Swift.abs(expected[i]))
                    XCTAssertLessThanOrEqual(Double(got.nextDown), expected[i] + 1e-15 * Swift.abs(expected[i]),
                                             "more than one float above the value")
                }
            }
        }
    }

    private func checkBackward<T: CoreKernelReal>(_: T.Type, tolerance: Double) throws {
        var rng = TestRandom(seed: 33)
        var worst = 0.0
        for c in coreContinuousCases(dims: [1, 2, 6, 17, 61]) {
            let era = try c.era
            let d = c.params.dim
            for scale in [0.01, 1, 5, 30] {
                let rows = 3
                let input = (0..<(rows * d)).map { _ in T(scale * rng.normal()) }
                let grad = (0..<(rows * d)).map { _ in T(rng.normal()) }
                let (out, residual) = try coreContinuousBackward(era, rows: rows, input, grad)
                for r in 0..<rows {
                    let z = coreRow(input, r, d), g = coreRow(grad, r, d)
                    let expected = coreContinuousBackward(z, g, c.params)
                    // Componentwise error against the size of the terms that cancel in
                    // K w_j (gt_j - sum gt_i w_i): s_j = |K| w_j (|g_j| + sum |g_i| w_i). A peaked
                    // softmax makes the dominant entry a difference of nearly equal numbers, which
                    // no evaluation of the formula in double resolves better than eps * s_j.
                    // Float adds its own rounding and the floor of its normal range.
                    let w = coreSoftmax(z)
                    let spread = zip(g, w).reduce(0.0) { $0 + Swift.abs($1.0) * $1.1 }
                    let floor = T.self == Float.self ? Double(Float.leastNormalMagnitude) : 1e-300
                    for i in 0..<d {
                        let terms = Swift.abs(c.params.k) * w[i] * (Swift.abs(g[i]) + spread)
                        let error = Swift.abs(Double(out[r * d + i]) - expected.grad[i]) / Swift.max(terms, floor)
                        worst = Swift.max(worst, error)
                        XCTAssertLessThanOrEqual(error, tolerance, "\(T.label) \(c.params) scale \(scale) [\(i)]: "
                                                 + "\(out[r * d + i]) vs \(expected.grad[i])")
                    }
                    XCTAssertEqual(Double(residual[r]), expected.residual, accuracy: tolerance * Swift.max(spread, floor),
                                   "\(T.label) gradResidual \(c.params)")
                }
            }
        }
        print("continuous backward \(T.label) vs reference: max componentwise error / |K| w_j (|g_j| + sum|g_i| w_i) = \(worst)")
    }

    func testBackwardDoubleAgainstReference() throws { try checkBackward(Double.self, tolerance: 1e-12) }
    func testBackwardFloatAgainstReference() throws { try checkBackward(Float.self, tolerance: 1e-5) }

    func testBackwardWithoutResidualPointer() throws {
        let era = try ContinuousERA(targetEntropy: -3, residual: 0.2, logStdMin: -8, logStdMax: 0, dim: 6)
        let s: [Double] = [0.1, -0.3, 2, 0.5, -1, 0]
        let g: [Double] = [1, 2, -1, 0.5, 0.25, -3]
        let with = try coreContinuousBackward(era, rows: 1, s, g)
        let without = try coreContinuousBackward(era, rows: 1, s, g, withResidual: false)
        XCTAssertEqual(with.grad, without.grad)
        XCTAssertTrue(without.residual[0].isNaN, "gradResidual must not be written when nil")
    }

    /// Central differences of L = sum g * forward(s) in s, in the residual and in the target,
    /// including a row where some entries are clipped at log_std_min (gradient 0 through them).
    func testGradientFiniteDifferences() throws {
        var rng = TestRandom(seed: 34)
        let h = 1e-6
        var worst = 0.0
        var rows: [(CoreContinuousParams, [Double])] = []
        for d in [1, 3, 6, 12] {
            for _ in 0..<3 {
                let p = CoreContinuousParams(h0: -0.5 * Double(d), delta: 0.4, logStdMin: -8, logStdMax: 0, dim: d)
                rows.append((p, (0..<d).map { _ in rng.normal() }))
            }
        }
        // D = 6, K = -3.4 - 6c = -11.91: an entry is clipped where w_i >= 8/11.91 = 0.67; the
        // dominant entry has w ~ 0.97, far from the kink.
        let clippedParams = CoreContinuousParams(h0: -3, delta: 0.4, logStdMin: -8, logStdMax: 0, dim: 6)
        rows.append((clippedParams, [5, 0.3, -0.2, 0.1, 0, -1]))
        // Two clipped entries: D = 8 with a much lower target.
        let twoClipped = CoreContinuousParams(h0: -40, delta: 0.5, logStdMin: -6, logStdMax: 0, dim: 8)
        rows.append((twoClipped, [4, 4.2, 0.3, -0.2, 0.1, 0, -1, 0.5]))
        var clippedSeen = 0
        for (p, s) in rows {
            let d = p.dim
            let g = (0..<d).map { _ in rng.normal() }
            func era(_ h0: Double, _ delta: Double) throws -> ContinuousERA {
                try ContinuousERA(targetEntropy: h0, residual: delta, logStdMin: p.logStdMin, logStdMax: p.logStdMax,
                                  dim: Int64(d))
            }
            func loss(_ s: [Double], _ h0: Double, _ delta: Double) throws -> Double {
                let out: [Double] = try coreContinuousForward(try era(h0, delta), rows: 1, s)
                var sum = CompensatedSum()
                for i in 0..<d { sum.add(g[i] * out[i]) }
                return sum.value
            }
            let base: [Double] = try coreContinuousForward(try era(p.h0, p.delta), rows: 1, s)
            let (grad, residual) = try coreContinuousBackward(try era(p.h0, p.delta), rows: 1, s, g)
            let norm = Swift.max(grad.map { Swift.abs($0) }.max()!, 1e-3)
            for j in 0..<d {
                var plus = s, minus = s
                plus[j] += h
                minus[j] -= h
                let fd = (try loss(plus, p.h0, p.delta) - loss(minus, p.h0, p.delta)) / (2 * h)
                let error = Swift.abs(fd - grad[j]) / norm
                worst = Swift.max(worst, error)
                XCTAssertLessThanOrEqual(error, 1e-6, "\(p) [\(j)]: backward \(grad[j]) vs finite difference \(fd)")
            }
            // Clipped entries: the output does not move, and the gradient passes nothing through them.
            for i in 0..<d where base[i] == p.logStdMin {
                clippedSeen += 1
                var gOnly = [Double](repeating: 0, count: d)
                gOnly[i] = 1
                let (gi, ri) = try coreContinuousBackward(try era(p.h0, p.delta), rows: 1, s, gOnly)
                XCTAssertEqual(gi, [Double](repeating: 0, count: d), "gradient through a clipped entry")
                XCTAssertEqual(ri[0], 0)
            }
            let fdResidual = (try loss(s, p.h0, p.delta + h) - loss(s, p.h0, p.delta - h)) / (2 * h)
            let fdTarget = (try loss(s, p.h0 + h, p.delta) - loss(s, p.h0 - h, p.delta)) / (2 * h)
            let rNorm = Swift.max(g.map { Swift.abs($0) }.max()!, 1e-3)
            XCTAssertEqual(residual[0], fdResidual, accuracy: 1e-6 * rNorm, "gradResidual \(p)")
            XCTAssertEqual(residual[0], fdTarget, accuracy: 1e-6 * rNorm, "gradResidual as d/dH0 \(p)")
            worst = Swift.max(worst, Swift.abs(residual[0] - fdResidual) / rNorm)
        }
        XCTAssertEqual(clippedSeen, 3, "the clipped rows must really clip")
        print("continuous gradient vs central differences: max |error| / max|grad| = \(worst)")
    }

    /// The Gaussian floor holds with equality when nothing is clipped.
    func testFloorEqualityWithoutClipping() throws {
        var rng = TestRandom(seed: 35)
        for c in coreContinuousCases(dims: [1, 4, 17, 61]) {
            let era = try c.era
            let d = c.params.dim
            let s = (0..<d).map { _ in 0.1 * rng.normal() }
            let out: [Double] = try coreContinuousForward(era, rows: 1, s)
            if out.contains(c.params.logStdMin) { continue }
            XCTAssertEqual(coreGaussianEntropy(out[...]), c.params.h0 + c.params.delta,
                           accuracy: 1e-12 * Swift.max(1, Swift.abs(c.params.h0)), "\(c.params)")
        }
    }

    /// K = 0 exactly (the target at the top of the feasible range): every log std is log_std_max.
    func testTargetAtTheTop() throws {
        let era = try ContinuousERA(targetEntropy: Math.gaussianEntropyPerDim, residual: 0, logStdMin: -8, logStdMax: 0, dim: 1)
        XCTAssertEqual(era.scale, 0)
        let out: [Double] = try coreContinuousForward(era, rows: 2, [3.0, -100.0])
        XCTAssertEqual(out, [0, 0])
    }

    /// The Gaussian floor in float32 with a log_std_max that is not a float (2.3): at the top of
    /// the feasible range (K = 0, or K = -1e-9) every y_i lies in (Float(2.3), 2.3], and the float
    /// output must still not sum below H0 + delta by more than the float tolerance of math 5
    /// (1e-5), as the library's own BoundCheck measures it.
    func testFloatFloorWhenLogStdMaxIsNotAFloat() throws {
        XCTAssertLessThan(Double(Float(2.3)), 2.3, "2.3 rounds down to a float")
        var lines: [String] = []
        for d in [61, 1000, 4096] {
            for gap in [0.0, 1e-9, 1e-3] {
                let dd = Double(d)
                var h0 = dd * coreGaussianPerDim + dd * 2.3 - gap
                var era = try? ContinuousERA(targetEntropy: h0, residual: 0, logStdMin: -5, logStdMax: 2.3, dim: Int64(d))
                while era == nil {  // K rounded above 0: step down to the top of the range
                    h0 = h0.nextDown
                    era = try? ContinuousERA(targetEntropy: h0, residual: 0, logStdMin: -5, logStdMax: 2.3, dim: Int64(d))
                }
                var rng = TestRandom(seed: 37)
                let input = (0..<d).map { _ in Float(rng.normal()) }
                let out: [Float] = try coreContinuousForward(era!, rows: 1, input)
                let h = coreGaussianEntropy(out.map { Double($0) }[...])
                let report = try out.withUnsafeBufferPointer { p in
                    try BoundCheck.continuous(era!, rows: 1, mean: nil as UnsafePointer<Float>?, logStd: p.baseAddress,
                                              tolerance: 1e-5)
                }
                lines.append("  D=\(d) K=\(era!.scale): H0 + delta - H = \(h0 - h), BoundCheck violations \(report.violations)")
                XCTAssertGreaterThanOrEqual(h, h0 - 1e-5, "D=\(d) K=\(era!.scale): Gaussian floor missed by \(h0 - h) nats")
                XCTAssertEqual(report.violations, 0, "D=\(d) K=\(era!.scale): the library's own check reports a violation")
            }
        }
        print("continuous Float, log_std_max = 2.3 (not a float), near K = 0:\n" + lines.joined(separator: "\n"))
    }

    private func checkInPlace<T: CoreKernelReal>(_: T.Type) throws {
        var rng = TestRandom(seed: 36)
        let rows = 7, d = 6
        let era = try ContinuousERA(targetEntropy: -3, residual: 0.3, logStdMin: -5, logStdMax: 1, dim: Int64(d))
        let input = (0..<(rows * d)).map { _ in T(3 * rng.normal()) }
        let grad = (0..<(rows * d)).map { _ in T(rng.normal()) }
        let forward: [T] = try coreContinuousForward(era, rows: rows, input)
        let backward = try coreContinuousBackward(era, rows: rows, input, grad)

        var buffer = input
        try buffer.withUnsafeMutableBufferPointer { p in
            let raw = UnsafeMutableRawPointer(p.baseAddress!)
            if T.self == Float.self {
                let q = raw.assumingMemoryBound(to: Float.self)
                try era.forward(rows: rows, input: UnsafePointer(q), output: q)
            } else {
                let q = raw.assumingMemoryBound(to: Double.self)
                try era.forward(rows: rows, input: UnsafePointer(q), output: q)
            }
        }
        XCTAssertEqual(buffer, forward, "\(T.label) forward in place")

        for aliasInput in [true, false] {
            buffer = aliasInput ? input : grad
            let other = aliasInput ? grad : input
            var residual = [T](repeating: .nan, count: rows)
            try buffer.withUnsafeMutableBufferPointer { p in
                try other.withUnsafeBufferPointer { o in
                    try residual.withUnsafeMutableBufferPointer { rp in
                        let raw = UnsafeMutableRawPointer(p.baseAddress!), oraw = UnsafeRawPointer(o.baseAddress!)
                        let rraw = UnsafeMutableRawPointer(rp.baseAddress!)
                        if T.self == Float.self {
                            let q = raw.assumingMemoryBound(to: Float.self), ot = oraw.assumingMemoryBound(to: Float.self)
                            try era.backward(rows: rows, input: aliasInput ? UnsafePointer(q) : ot,
                                             gradOutput: aliasInput ? ot : UnsafePointer(q), gradInput: q,
                                             gradResidual: rraw.assumingMemoryBound(to: Float.self))
                        } else {
                            let q = raw.assumingMemoryBound(to: Double.self), ot = oraw.assumingMemoryBound(to: Double.self)
                            try era.backward(rows: rows, input: aliasInput ? UnsafePointer(q) : ot,
                                             gradOutput: aliasInput ? ot : UnsafePointer(q), gradInput: q,
                                             gradResidual: rraw.assumingMemoryBound(to: Double.self))
                        }
                    }
                }
            }
            XCTAssertEqual(buffer, backward.grad, "\(T.label) backward in place, gradInput == \(aliasInput ? "input" : "gradOutput")")
            XCTAssertEqual(residual, backward.residual, "\(T.label) gradResidual in place")
        }
    }

    func testInPlaceDouble() throws { try checkInPlace(Double.self) }
    func testInPlaceFloat() throws { try checkInPlace(Float.self) }
}
