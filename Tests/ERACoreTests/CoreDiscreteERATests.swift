// Discrete ERA (math 2): constants, the spec's numbers, forward and backward against the
// float64 references of CoreReferences.swift, finite differences, in-place calls.
import XCTest
@testable import ERACore
#if canImport(Glibc)
import Glibc
#endif

/// Parameter sets with targets inside each mode's feasible range.
private func coreDiscreteCases(classes: [Int], taus: [Double], fractions: [Double]) -> [(CoreMode, Int, Double, Double)] {
    var cases: [(CoreMode, Int, Double, Double)] = []
    for mode in CoreMode.allCases {
        for d in classes {
            for tau in taus {
                let (lo, hi) = CoreDiscreteParams.feasibleRange(mode: mode, tau: tau, classes: d)
                for f in fractions { cases.append((mode, d, tau, lo + f * (hi - lo))) }
            }
        }
    }
    return cases
}

/// Random rows of a few scales.
private func coreRandomRows(rows: Int, classes d: Int, scale: Double, rng: inout TestRandom) -> [Double] {
    (0..<(rows * d)).map { _ in scale * rng.normal() }
}

final class CoreDiscreteERATests: XCTestCase {
    // MARK: constants

    func testConstantsMatchFormulas() throws {
        for (mode, d, tau, h0) in coreDiscreteCases(classes: [2, 3, 10, 1000, 152_064], taus: [2.72, 3, 4, 10, 1e4],
                                                    fractions: [0, 0.001, 0.3, 0.7, 0.999, 1]) {
            if mode == .tight && (h0 <= 0 || h0 >= Glibc.log(Double(d))) { continue }
            let era = try DiscreteERA(targetEntropy: h0, tau: tau, mode: mode.rawValue, classes: Int64(d))
            let context = "\(mode.name) D=\(d) tau=\(tau) H0=\(h0)"
            let up = Glibc.log(tau) / tau
            XCTAssertEqual(era.up, up, accuracy: 1e-16 * up, context)
            XCTAssertEqual(era.classes, d)
            XCTAssertEqual(era.tau, tau)
            XCTAssertEqual(era.targetEntropy, h0)
            let c: Double
            if mode == .tight {
                c = coreTightConstant(h0: h0, tau: tau, classes: d)
                XCTAssertEqual(era.c, c, accuracy: 1e-11 * c, context)
            } else {
                c = Swift.min(Swift.max(Glibc.exp(h0 - 1), up), Double(d) * up)
                XCTAssertEqual(era.c, c, accuracy: 1e-15 * c, context)
            }
            let dd = Double(d)
            XCTAssertEqual(era.slope, Swift.max(0, (dd * up - era.c) / (dd - 1)), accuracy: 1e-15 * up, context)
            XCTAssertEqual(era.offset, Swift.max(0, (era.c - up) / (dd - 1)), accuracy: 1e-15 * era.c / (dd - 1), context)
            XCTAssertGreaterThanOrEqual(era.slope, 0)
            XCTAssertGreaterThanOrEqual(era.offset, 0)
            // a + b = up (the top class of a one-hot row gets y = up), and a + D b = C.
            XCTAssertEqual(era.slope + era.offset, up, accuracy: 4e-16 * up, context)
            XCTAssertEqual(era.slope + dd * era.offset, era.c, accuracy: 1e-14 * era.c, context)
            // The floors (math 4).
            if mode == .reference {
                XCTAssertTrue(era.guaranteedFloor.isNaN, context)
            } else {
                XCTAssertEqual(era.guaranteedFloor, h0, context)
            }
            // The one-hot infimum, recomputed with the bisection inverse.
            let expectedInfimum: Double
            if mode == .reference {
                let top = Glibc.exp(coreReferenceInverse(up))
                let other = era.offset > 0 ? Glibc.exp(coreReferenceInverse(era.offset)) : 0
                expectedInfimum = coreOneHotEntropy(top: top, other: other, others: d - 1)
            } else {
                expectedInfimum = coreOneHotInfimum(c: era.c, tau: tau, classes: d)
            }
            XCTAssertEqual(era.infimum, expectedInfimum, accuracy: 1e-12 * Swift.max(1, expectedInfimum), context)
            if mode == .tight {
                // The infimum is H0 itself, and never below it.
                XCTAssertEqual(era.infimum, h0, accuracy: 1e-12 * Swift.max(1, h0), context)
                XCTAssertGreaterThanOrEqual(era.infimum, h0 - 1e-14 * Swift.max(1, h0), context)
            }
            if mode == .exact {
                XCTAssertGreaterThanOrEqual(era.infimum, h0, context)
            }
        }
    }

    /// Math 2: tau = 4, H0 = 1 in mode tight gives C = 0.683819 (D=10), 0.632910 (D=1000),
    /// 0.619661 (D=152064), quoted to 6 decimals.
    func testTightConstantsFromSpec() throws {
        for (d, expected) in [(10, 0.683819), (1000, 0.632910), (152_064, 0.619661)] {
            let era = try DiscreteERA(targetEntropy: 1, tau: 4, mode: DiscreteMode.tight.rawValue, classes: Int64(d))
            XCTAssertEqual(era.c, expected, accuracy: 5e-7, "library, D=\(d)")
            XCTAssertEqual(coreTightConstant(h0: 1, tau: 4, classes: d), expected, accuracy: 5e-7, "reference, D=\(d)")
            print("tight C (tau=4, H0=1, D=\(d)): library \(era.c), reference bisection \(coreTightConstant(h0: 1, tau: 4, classes: d)), spec \(expected)")
        }
    }

    /// Math 2: exact mode, tau = 4: one-hot floors 1.998 (D=1000, H0=1), 4.41 (D=1000, H0=2),
    /// 2.18 (D=152064, H0=1); the library's infimum, the reference, and the entropy of the
    /// kernel's output for a one-hot row all agree.
    func testExactOneHotInfimaFromSpec() throws {
        for (d, h0, expected, digits) in [(1000, 1.0, 1.998, 5e-4), (1000, 2.0, 4.41, 5e-3), (152_064, 1.0, 2.18, 5e-3)] {
            let era = try DiscreteERA(targetEntropy: h0, tau: 4, mode: 0, classes: Int64(d))
            let reference = coreOneHotInfimum(c: Glibc.exp(h0 - 1), tau: 4, classes: d)
            XCTAssertEqual(reference, expected, accuracy: digits, "reference D=\(d) H0=\(h0)")
            XCTAssertEqual(era.infimum, reference, accuracy: 1e-12 * reference, "library D=\(d) H0=\(h0)")
            // A row one-hot to double precision: logit 1e4 on class 7.
            var z = [Double](repeating: 0, count: d)
            z[7] = 1e4
            let out: [Double] = try coreDiscreteForward(era, rows: 1, z)
            let measured = coreSoftmaxEntropy(out)
            XCTAssertEqual(measured, reference, accuracy: 1e-10, "kernel output D=\(d) H0=\(h0)")
            let outF: [Float] = try coreDiscreteForward(era, rows: 1, z.map { Float($0) })
            XCTAssertEqual(coreSoftmaxEntropy(outF.map { Double($0) }), reference, accuracy: 1e-5)
            print("exact one-hot infimum (tau=4, D=\(d), H0=\(h0)): library \(era.infimum), reference \(reference), "
                  + "kernel row \(measured), spec \(expected)")
        }
    }

    /// Math 2: exact mode, tau = 4, D = 10, H0 = 1, z = (0, 1, ..., 9): H(softmax(z')) >= 1.
    func testSpecRowZeroToNine() throws {
        let era = try DiscreteERA(targetEntropy: 1, tau: 4, mode: 0, classes: 10)
        let z = (0..<10).map { Double($0) }
        let out: [Double] = try coreDiscreteForward(era, rows: 1, z)
        let outF: [Float] = try coreDiscreteForward(era, rows: 1, z.map { Float($0) })
        let expected = coreDiscreteForward(z, CoreDiscreteParams(h0: 1, tau: 4, mode: .exact, classes: 10))
        let hd = coreSoftmaxEntropy(out), hf = coreSoftmaxEntropy(outF.map { Double($0) })
        XCTAssertGreaterThanOrEqual(hd, 1.0)
        XCTAssertGreaterThanOrEqual(hf, 1.0)
        XCTAssertEqual(hd, coreSoftmaxEntropy(expected), accuracy: 1e-13)
        print("exact, tau=4, D=10, H0=1, z=0...9: entropy \(hd) (Double), \(hf) (Float)")
    }

    // MARK: forward and backward against the reference

    private func checkForward<T: CoreKernelReal>(_: T.Type, tolerance: Double) throws {
        var rng = TestRandom(seed: 21)
        var worst: [CoreMode: Double] = [:]
        for (mode, d, tau, h0) in coreDiscreteCases(classes: [2, 3, 10, 100], taus: [3, 4, 10],
                                                    fractions: [0.1, 0.5, 0.9]) {
            let era = try DiscreteERA(targetEntropy: h0, tau: tau, mode: mode.rawValue, classes: Int64(d))
            let params = CoreDiscreteParams(h0: h0, tau: tau, mode: mode, classes: d)
            for scale in [0.01, 1, 3, 10] {
                let rows = 4
                let input = coreRandomRows(rows: rows, classes: d, scale: scale, rng: &rng).map { T($0) }
                let out: [T] = try coreDiscreteForward(era, rows: rows, input)
                for r in 0..<rows {
                    let expected = coreDiscreteForward(coreRow(input, r, d), params)
                    for i in 0..<d {
                        let got = Double(out[r * d + i])
                        let error = coreRelativeError(got, expected[i])
                        worst[mode] = Swift.max(worst[mode] ?? 0, error)
                        if error > tolerance {
                            XCTFail("\(T.label) \(mode.name) D=\(d) tau=\(tau) H0=\(h0) scale=\(scale) row \(r) [\(i)]: "
                                    + "\(got) vs \(expected[i]) (relative \(error))")
                            return
                        }
                    }
                }
            }
        }
        print("discrete forward \(T.label) vs reference, max relative error: "
              + CoreMode.allCases.map { "\($0.name) \(worst[$0] ?? 0)" }.joined(separator: ", "))
    }

    func testForwardDoubleAgainstReference() throws { try checkForward(Double.self, tolerance: 1e-12) }
    func testForwardFloatAgainstReference() throws { try checkForward(Float.self, tolerance: 1e-5) }

    private func checkBackward<T: CoreKernelReal>(_: T.Type, tolerance: Double) throws {
        var rng = TestRandom(seed: 22)
        var worst: [CoreMode: Double] = [:]
        for (mode, d, tau, h0) in coreDiscreteCases(classes: [2, 3, 10, 100], taus: [3, 4, 10],
                                                    fractions: [0.1, 0.5, 0.9]) {
            let era = try DiscreteERA(targetEntropy: h0, tau: tau, mode: mode.rawValue, classes: Int64(d))
            let params = CoreDiscreteParams(h0: h0, tau: tau, mode: mode, classes: d)
            for scale in [0.01, 1, 3] {
                let rows = 3
                let input = coreRandomRows(rows: rows, classes: d, scale: scale, rng: &rng).map { T($0) }
                let grad = (0..<(rows * d)).map { _ in T(rng.normal()) }
                let out: [T] = try coreDiscreteBackward(era, rows: rows, input, grad)
                for r in 0..<rows {
                    let z = coreRow(input, r, d), g = coreRow(grad, r, d)
                    let expected = coreDiscreteBackward(z, g, params)
                    // Errors are measured against the row's largest gradient: entries are
                    // differences p_j (r_j - sum r_i p_i) that may cancel.
                    let norm = expected.map { Swift.abs($0) }.max()!
                    for i in 0..<d {
                        let error = Swift.abs(Double(out[r * d + i]) - expected[i]) / Swift.max(norm, 1e-300)
                        worst[mode] = Swift.max(worst[mode] ?? 0, error)
                        if error > tolerance {
                            XCTFail("\(T.label) \(mode.name) D=\(d) tau=\(tau) H0=\(h0) scale=\(scale) row \(r) [\(i)]: "
                                    + "\(out[r * d + i]) vs \(expected[i]) (error / max |grad| = \(error))")
                            return
                        }
                    }
                }
            }
        }
        print("discrete backward \(T.label) vs reference, max error / max|grad| of the row: "
              + CoreMode.allCases.map { "\($0.name) \(worst[$0] ?? 0)" }.joined(separator: ", "))
    }

    func testBackwardDoubleAgainstReference() throws { try checkBackward(Double.self, tolerance: 1e-12) }
    func testBackwardFloatAgainstReference() throws { try checkBackward(Float.self, tolerance: 1e-5) }

    /// Central differences of L = sum g * forward(z), h = 1e-6, all three modes (Double).
    func testGradientFiniteDifferences() throws {
        var rng = TestRandom(seed: 23)
        var worst = 0.0
        for (mode, d, tau, h0) in coreDiscreteCases(classes: [2, 5, 12], taus: [4, 10], fractions: [0.2, 0.6, 0.95]) {
            let era = try DiscreteERA(targetEntropy: h0, tau: tau, mode: mode.rawValue, classes: Int64(d))
            for scale in [0.3, 2] {
                let z = (0..<d).map { _ in scale * rng.normal() }
                let g = (0..<d).map { _ in rng.normal() }
                let grad: [Double] = try coreDiscreteBackward(era, rows: 1, z, g)
                func loss(_ z: [Double]) throws -> Double {
                    let out: [Double] = try coreDiscreteForward(era, rows: 1, z)
                    var s = CompensatedSum()
                    for i in 0..<d { s.add(g[i] * out[i]) }
                    return s.value
                }
                let norm = Swift.max(grad.map { Swift.abs($0) }.max()!, 1e-3)
                for j in 0..<d {
                    let h = 1e-6
                    var plus = z, minus = z
                    plus[j] += h
                    minus[j] -= h
                    let fd = (try loss(plus) - loss(minus)) / (2 * h)
                    let error = Swift.abs(fd - grad[j]) / norm
                    worst = Swift.max(worst, error)
                    XCTAssertLessThanOrEqual(error, 1e-6, "\(mode.name) D=\(d) tau=\(tau) H0=\(h0) [\(j)]: "
                                             + "backward \(grad[j]) vs finite difference \(fd)")
                }
            }
        }
        print("discrete gradient vs central differences: max |error| / max|grad| = \(worst)")
    }

    /// Where b = 0 (exact mode at its lowest target) y = a p_i can be 0 or subnormal: it is
    /// clamped, the output stays finite and the derivative is 0 there (so that t/y cannot
    /// overflow into an infinite or NaN gradient).
    func testClampedClassHasZeroDerivative() throws {
        let up = Glibc.log(4.0) / 4
        // exp(H0 - 1) a hair below up: accepted (relative slack 1e-12) and C = up exactly.
        let era = try DiscreteERA(targetEntropy: 1 + Glibc.log(up) - 1e-13, tau: 4, mode: 0, classes: 3)
        XCTAssertEqual(era.c, up)
        XCTAssertEqual(era.offset, 0)
        // p_0 = p_2 = e^-1000 -> 0; then p_0 = e^-710 (subnormal, y = a p_0 below the smallest
        // normal) with p_2 = e^-700 (normal y).
        for z in [[0.0, 1000.0, 0.5], [0.0, 710.0, 10.0]] {
            let out: [Double] = try coreDiscreteForward(era, rows: 1, z)
            XCTAssertTrue(out.allSatisfy { $0.isFinite && $0 <= -1 }, "\(out)")
            XCTAssertEqual(out[1], -Glibc.log(4.0), accuracy: 1e-14)
            let grad: [Double] = try coreDiscreteBackward(era, rows: 1, z, [1, -2, 3])
            XCTAssertTrue(grad.allSatisfy { $0.isFinite }, "\(grad)")
            // r_0 = 0; what is left of grad_0 = p_0 (r_0 - sum r_i p_i) is below 1e-300.
            XCTAssertLessThanOrEqual(Swift.abs(grad[0]), 1e-300, "z = \(z)")
            // The reference agrees (it uses the same clamp).
            let expected = coreDiscreteBackward(z, [1, -2, 3], CoreDiscreteParams(h0: 1 + Glibc.log(up) - 1e-13, tau: 4,
                                                                                   mode: .exact, classes: 3))
            for i in 0..<3 { XCTAssertEqual(grad[i], expected[i], accuracy: 1e-12 * Swift.max(1e-300, Swift.abs(expected[i]))) }
            let outF: [Float] = try coreDiscreteForward(era, rows: 1, z.map { Float($0) })
            XCTAssertTrue(outF.allSatisfy { $0.isFinite }, "\(outF)")
            let gradF: [Float] = try coreDiscreteBackward(era, rows: 1, z.map { Float($0) }, [1, -2, 3])
            XCTAssertTrue(gradF.allSatisfy { $0.isFinite }, "\(gradF)")
        }
    }

    // MARK: properties of the output

    func testOutputCappedAndOrdered() throws {
        var rng = TestRandom(seed: 24)
        for mode in [CoreMode.exact, .tight] {
            for tau in [3.0, 4, 50] {
                let d = 20
                let (lo, hi) = CoreDiscreteParams.feasibleRange(mode: mode, tau: tau, classes: d)
                let era = try DiscreteERA(targetEntropy: lo + 0.5 * (hi - lo), tau: tau, mode: mode.rawValue, classes: Int64(d))
                var z = (0..<d).map { _ in 3 * rng.normal() }
                z[3] = z[4]  // a tie
                z[0] = 40    // dominant class
                let out: [Double] = try coreDiscreteForward(era, rows: 1, z)
                let outF: [Float] = try coreDiscreteForward(era, rows: 1, z.map { Float($0) })
                XCTAssertEqual(out[3], out[4], "ties stay ties")
                XCTAssertEqual(outF[3], outF[4], "ties stay ties")
                for i in 0..<d {
                    XCTAssertLessThanOrEqual(out[i], -Glibc.log(tau) * (1 - 4e-16), "capped at -log(tau)")
                    XCTAssertLessThanOrEqual(Double(outF[i]), -Glibc.log(tau) * (1 - 1e-7))
                    for j in 0..<d where z[i] < z[j] {
                        XCTAssertLessThanOrEqual(out[i], out[j], "order preserved")
                        XCTAssertLessThanOrEqual(outF[i], outF[j], "order preserved")
                    }
                }
            }
        }
    }

    // MARK: in place

    private func checkInPlace<T: CoreKernelReal>(_: T.Type) throws {
        var rng = TestRandom(seed: 25)
        let rows = 5, d = 17
        for mode in CoreMode.allCases {
            let (lo, hi) = CoreDiscreteParams.feasibleRange(mode: mode, tau: 4, classes: d)
            let era = try DiscreteERA(targetEntropy: lo + 0.4 * (hi - lo), tau: 4, mode: mode.rawValue, classes: Int64(d))
            let input = (0..<(rows * d)).map { _ in T(2 * rng.normal()) }
            let grad = (0..<(rows * d)).map { _ in T(rng.normal()) }
            let forward: [T] = try coreDiscreteForward(era, rows: rows, input)
            let backward: [T] = try coreDiscreteBackward(era, rows: rows, input, grad)

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
            XCTAssertEqual(buffer, forward, "\(T.label) \(mode.name) forward in place")

            // gradInput == input
            buffer = input
            try buffer.withUnsafeMutableBufferPointer { p in
                try grad.withUnsafeBufferPointer { g in
                    let raw = UnsafeMutableRawPointer(p.baseAddress!), graw = UnsafeRawPointer(g.baseAddress!)
                    if T.self == Float.self {
                        let q = raw.assumingMemoryBound(to: Float.self)
                        try era.backward(rows: rows, input: UnsafePointer(q), gradOutput: graw.assumingMemoryBound(to: Float.self),
                                         gradInput: q)
                    } else {
                        let q = raw.assumingMemoryBound(to: Double.self)
                        try era.backward(rows: rows, input: UnsafePointer(q), gradOutput: graw.assumingMemoryBound(to: Double.self),
                                         gradInput: q)
                    }
                }
            }
            XCTAssertEqual(buffer, backward, "\(T.label) \(mode.name) backward, gradInput == input")

            // gradInput == gradOutput
            buffer = grad
            try buffer.withUnsafeMutableBufferPointer { p in
                try input.withUnsafeBufferPointer { i in
                    let raw = UnsafeMutableRawPointer(p.baseAddress!), iraw = UnsafeRawPointer(i.baseAddress!)
                    if T.self == Float.self {
                        let q = raw.assumingMemoryBound(to: Float.self)
                        try era.backward(rows: rows, input: iraw.assumingMemoryBound(to: Float.self), gradOutput: UnsafePointer(q),
                                         gradInput: q)
                    } else {
                        let q = raw.assumingMemoryBound(to: Double.self)
                        try era.backward(rows: rows, input: iraw.assumingMemoryBound(to: Double.self), gradOutput: UnsafePointer(q),
                                         gradInput: q)
                    }
                }
            }
            XCTAssertEqual(buffer, backward, "\(T.label) \(mode.name) backward, gradInput == gradOutput")
        }
    }

    func testInPlaceDouble() throws { try checkInPlace(Double.self) }
    func testInPlaceFloat() throws { try checkInPlace(Float.self) }

    func testZeroRowsWritesNothing() throws {
        let era = try DiscreteERA(targetEntropy: 1, tau: 4, mode: 0, classes: 4)
        var out: [Double] = [7, 7, 7, 7]
        let input: [Double] = [1, 2, 3, 4]
        try input.withUnsafeBufferPointer { i in
            try out.withUnsafeMutableBufferPointer { o in
                try era.forward(rows: 0, input: i.baseAddress!, output: o.baseAddress!)
                try era.backward(rows: 0, input: i.baseAddress!, gradOutput: i.baseAddress!, gradInput: o.baseAddress!)
            }
        }
        XCTAssertEqual(out, [7, 7, 7, 7])
    }
}
