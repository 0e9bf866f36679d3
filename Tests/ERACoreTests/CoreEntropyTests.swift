// Entropies (math 1, 2, 4): softmax, Gaussian, tanh-squashed Gaussian, truncated normal, and
// the Gauss-Hermite and Gauss-Legendre rules, against the float64 references.
import XCTest
@testable import ERACore
#if canImport(Glibc)
import Glibc
#endif

private func coreSoftmaxEntropyKernel<T: CoreKernelReal>(_ logits: [T], rows: Int, cols: Int) throws -> [T] {
    var out = [T](repeating: .nan, count: rows)
    try logits.withUnsafeBufferPointer { l in
        try out.withUnsafeMutableBufferPointer { o in
            try Entropy.softmax(rows: rows, cols: cols, logits: l.baseAddress!, out: o.baseAddress!)
        }
    }
    return out
}

private func coreGaussianEntropyKernel<T: CoreKernelReal>(_ logStd: [T], rows: Int, dim: Int) throws -> [T] {
    var out = [T](repeating: .nan, count: rows)
    try logStd.withUnsafeBufferPointer { l in
        try out.withUnsafeMutableBufferPointer { o in
            try Entropy.gaussian(rows: rows, dim: dim, logStd: l.baseAddress!, out: o.baseAddress!)
        }
    }
    return out
}

private func coreTanhEntropyKernel<T: CoreKernelReal>(_ mean: [T], _ logStd: [T], rows: Int, dim: Int) throws -> [T] {
    var out = [T](repeating: .nan, count: rows)
    try mean.withUnsafeBufferPointer { m in
        try logStd.withUnsafeBufferPointer { l in
            try out.withUnsafeMutableBufferPointer { o in
                try Entropy.tanhGaussian(rows: rows, dim: dim, mean: m.baseAddress!, logStd: l.baseAddress!, out: o.baseAddress!)
            }
        }
    }
    return out
}

private func coreTruncatedKernel<T: CoreKernelReal>(_ loc: [T], _ logStd: [T], lo: Double, hi: Double,
                                                    rows: Int, dim: Int) throws -> [T] {
    var out = [T](repeating: .nan, count: rows)
    try loc.withUnsafeBufferPointer { m in
        try logStd.withUnsafeBufferPointer { l in
            try out.withUnsafeMutableBufferPointer { o in
                try Entropy.truncatedNormal(rows: rows, dim: dim, loc: m.baseAddress!, logStd: l.baseAddress!,
                                            lo: lo, hi: hi, out: o.baseAddress!)
            }
        }
    }
    return out
}

final class CoreEntropyTests: XCTestCase {
    // MARK: softmax and Gaussian

    private func checkSoftmax<T: CoreKernelReal>(_: T.Type, tolerance: Double) throws {
        var rng = TestRandom(seed: 41)
        var worst = 0.0
        for cols in [1, 2, 3, 10, 1000] {
            for scale in [0.0, 1e-3, 1, 10, 100, 1e30] {
                let rows = 4
                var logits = (0..<(rows * cols)).map { _ in T(scale * rng.normal()) }
                if cols > 1 { logits[cols] = T(50); logits[cols + 1] = T(-50) }  // a spread row
                let out: [T] = try coreSoftmaxEntropyKernel(logits, rows: rows, cols: cols)
                for r in 0..<rows {
                    let expected = coreSoftmaxEntropy(coreRow(logits, r, cols))
                    // Relative for entropies >= 1 nat, absolute below: the kernel sums S = sum
                    // e^(z-m) plainly, so a near-one-hot row (S = 1 + small) carries an absolute
                    // error of up to ~D eps/2 in log S however small its entropy is.
                    let error = Swift.abs(Double(out[r]) - expected) / Swift.max(Swift.abs(expected), 1)
                    worst = Swift.max(worst, error)
                    XCTAssertLessThanOrEqual(error, tolerance, "\(T.label) cols \(cols) scale \(scale) row \(r): "
                                             + "\(out[r]) vs \(expected)")
                    XCTAssertGreaterThanOrEqual(out[r], 0)
                }
            }
        }
        // Uniform rows: log D.
        let uniform: [T] = try coreSoftmaxEntropyKernel([T](repeating: 3, count: 1000), rows: 1, cols: 1000)
        XCTAssertEqual(Double(uniform[0]), Glibc.log(1000.0), accuracy: tolerance * Glibc.log(1000.0))
        print("softmax entropy \(T.label) vs reference: max error / max(1, H) = \(worst)")
    }

    func testSoftmaxEntropyDouble() throws { try checkSoftmax(Double.self, tolerance: 1e-12) }
    func testSoftmaxEntropyFloat() throws { try checkSoftmax(Float.self, tolerance: 1e-5) }

    private func checkGaussian<T: CoreKernelReal>(_: T.Type, tolerance: Double) throws {
        var rng = TestRandom(seed: 42)
        for dim in [1, 2, 7, 61, 300] {
            let rows = 5
            let logStd = (0..<(rows * dim)).map { _ in T(rng.uniform(-8, 2)) }
            let out: [T] = try coreGaussianEntropyKernel(logStd, rows: rows, dim: dim)
            for r in 0..<rows {
                let expected = coreGaussianEntropy(coreRow(logStd, r, dim)[...])
                XCTAssertEqual(Double(out[r]), expected, accuracy: tolerance * Swift.max(1, Swift.abs(expected)))
            }
        }
        let one: [T] = try coreGaussianEntropyKernel([T(0)], rows: 1, dim: 1)
        XCTAssertEqual(Double(one[0]), 1.4189385332046727, accuracy: tolerance)
    }

    func testGaussianEntropyDouble() throws { try checkGaussian(Double.self, tolerance: 1e-13) }
    func testGaussianEntropyFloat() throws { try checkGaussian(Float.self, tolerance: 1e-6) }

    func testSoftmaxStatistics() {
        var rng = TestRandom(seed: 46)
        for scale in [0.5, 5, 1e3] {
            let z = (0..<50).map { _ in scale * rng.normal() }
            let stats = z.withUnsafeBufferPointer { SoftmaxStatistics($0.baseAddress!, count: $0.count) }
            let m = z.max()!
            var s = CompensatedSum()
            for v in z { s.add(Glibc.exp(v - m)) }
            XCTAssertEqual(stats.maximum, m)
            XCTAssertEqual(stats.sumExp, s.value, accuracy: 1e-14 * s.value)
            XCTAssertEqual(stats.logSumExp, m + Glibc.log(s.value), accuracy: 1e-14 * Swift.max(1, Swift.abs(m)))
            XCTAssertEqual(z.withUnsafeBufferPointer { SoftmaxStatistics.entropy($0.baseAddress!, count: $0.count) }, coreSoftmaxEntropy(z), accuracy: 1e-13 * Swift.max(1, coreSoftmaxEntropy(z)))
            let p = coreSoftmax(z)
            for i in 0..<50 { XCTAssertEqual(stats.probability(z[i]), p[i], accuracy: 1e-14 * Swift.max(p[i], 1e-300)) }
        }
        // Differences beyond the double range do not produce NaN: (-1e308 - 1e308) is clamped.
        let wide: [Double] = [1e308, -1e308, 0]
        let stats = wide.withUnsafeBufferPointer { SoftmaxStatistics($0.baseAddress!, count: 3) }
        XCTAssertEqual(wide.withUnsafeBufferPointer { SoftmaxStatistics.entropy($0.baseAddress!, count: 3) }, 0)
        XCTAssertEqual(stats.probability(1e308), 1)
        XCTAssertEqual(stats.probability(-1e308), 0)
    }

    /// Near one-hot rows (docs/math.md 5): the entropy keeps the terms far below the maximum,
    /// which a sum S = 1 + r rounded to double loses (the row (40, 0) lost 1/41 of its entropy).
    /// Two values g apart: log1p(x) + g x / (1 + x), x = e^-g; a flat row of D values: with
    /// r = (D - 1) x, log1p(r) + g r / (1 + r). Within 4e-15 + 1.2e-16 g relative.
    func testSoftmaxEntropyOfNearOneHotRows() {
        for gap in [1.0, 10, 25, 36, 40, 60, 100, 300, 700] {
            for count in [2, 10, 1000] {
                let row = [gap] + [Double](repeating: 0, count: count - 1)
                let r = Double(count - 1) * Glibc.exp(-gap)
                let want = Glibc.log1p(r) + gap * r / (1 + r)
                let got = row.withUnsafeBufferPointer { SoftmaxStatistics.entropy($0.baseAddress!, count: count) }
                XCTAssertEqual(got, want, accuracy: (4e-15 + 1.2e-16 * gap) * want, "gap \(gap), \(count) values")
            }
        }
    }

    // MARK: tanh-squashed Gaussian

    /// Math 1: per-dimension penalties (mu=0, std=0.1) -0.00995, (0, 1) -0.7491, (1, 0.5) -0.9792,
    /// (2, 1) -2.7856, within half a unit of the quoted digit.
    func testTanhPenaltyFromSpec() {
        for (mu, std, expected, half) in [(0.0, 0.1, -0.00995, 5e-6), (0, 1, -0.7491, 5e-5),
                                          (1, 0.5, -0.9792, 5e-5), (2, 1, -2.7856, 5e-5)] {
            let simpson = coreTanhPenaltySimpson(mu: mu, std: std)
            let library = Entropy.tanhLogJacobianExpectation(mean: mu, std: std)
            XCTAssertEqual(simpson, expected, accuracy: half, "Simpson reference (\(mu), \(std))")
            XCTAssertEqual(library, expected, accuracy: half, "library (\(mu), \(std))")
            XCTAssertEqual(library, simpson, accuracy: 1e-9, "library vs Simpson (\(mu), \(std))")
            print("tanh penalty (mu=\(mu), std=\(std)): library \(library), Simpson \(simpson), spec \(expected)")
        }
    }

    /// The Simpson reference itself: halving the step changes it by < 1e-12 (so it is converged
    /// far below the tolerances it is used with), and a Monte Carlo estimate agrees to 5 sigma.
    func testSimpsonReferenceConverged() {
        for (mu, std) in [(0.0, 1e-3), (1, 0.5), (3, 5)] {
            let coarse = coreTanhPenaltySimpson(mu: mu, std: std, intervals: 60_000)
            let fine = coreTanhPenaltySimpson(mu: mu, std: std, intervals: 120_000)
            XCTAssertEqual(coarse, fine, accuracy: 1e-12, "(\(mu), \(std))")
        }
        var rng = TestRandom(seed: 43)
        let n = 200_000
        var sum = CompensatedSum(), sumSq = CompensatedSum()
        for _ in 0..<n {
            let v = coreLogSech2(1 + 0.5 * rng.normal())
            sum.add(v)
            sumSq.add(v * v)
        }
        let mean = sum.value / Double(n)
        let sd = Glibc.sqrt(Swift.max(0, sumSq.value / Double(n) - mean * mean) / Double(n))
        XCTAssertEqual(mean, coreTanhPenaltySimpson(mu: 1, std: 0.5), accuracy: 5 * sd)
    }

    /// Item 4 of the test plan: the accuracy table of the tanh penalty against Simpson, for the
    /// library's function and for a plain 64-node Gauss-Hermite sum with the library's rule.
    /// The header claims an absolute error below 1e-9 per dimension for std <= 1 (asserted), and
    /// about 1e-14 at any std for the library's split evaluation (asserted at 1e-10: Simpson with
    /// 120k steps is itself converged to ~1e-12, see above).
    func testTanhPenaltyAccuracyTable() {
        let rule = GaussHermiteRule.standard
        var lines = ["tanh penalty E log(1 - tanh^2(mu + std e)) vs Simpson, max |error| over mu in {0, 1, 3}:",
                     "  std      library           plain GH-64"]
        for std in [1e-3, 0.1, 0.5, 1, 2, 3, 5] {
            var worstLibrary = 0.0, worstPlain = 0.0
            for mu in [0.0, 1, 3] {
                let reference = coreTanhPenaltySimpson(mu: mu, std: std)
                let library = Entropy.tanhLogJacobianExpectation(mean: mu, std: std)
                var plain = 0.0
                for k in 0..<rule.nodes.count { plain += rule.weights[k] * coreLogSech2(mu + std * rule.nodes[k]) }
                worstLibrary = Swift.max(worstLibrary, Swift.abs(library - reference))
                worstPlain = Swift.max(worstPlain, Swift.abs(plain - reference))
                if std <= 1 {
                    XCTAssertLessThanOrEqual(Swift.abs(library - reference), 1e-9, "mu=\(mu) std=\(std)")
                }
                XCTAssertLessThanOrEqual(Swift.abs(library - reference), 1e-10, "mu=\(mu) std=\(std)")
            }
            lines.append("  \(std)\t" + String(describing: worstLibrary) + "\t" + String(describing: worstPlain))
        }
        print(lines.joined(separator: "\n"))
    }

    private func checkTanhGaussian<T: CoreKernelReal>(_: T.Type, tolerance: Double) throws {
        var rng = TestRandom(seed: 44)
        let rows = 4
        for dim in [1, 3, 6] {
            let mean = (0..<(rows * dim)).map { _ in T(2 * rng.normal()) }
            let logStd = (0..<(rows * dim)).map { _ in T(rng.uniform(-6, 1.5)) }
            let out: [T] = try coreTanhEntropyKernel(mean, logStd, rows: rows, dim: dim)
            for r in 0..<rows {
                let m = coreRow(mean, r, dim), l = coreRow(logStd, r, dim)
                var expected = coreGaussianEntropy(l[...])
                for i in 0..<dim {
                    expected += coreTanhPenaltySimpson(mu: m[i], std: Glibc.exp(l[i]), intervals: 40_000)
                }
                XCTAssertEqual(Double(out[r]), expected, accuracy: tolerance * Swift.max(1, Swift.abs(expected)),
                               "\(T.label) dim \(dim) row \(r)")
            }
        }
    }

    // Double: the Simpson reference (40k steps) is good to ~1e-11 per dimension; 1e-9 is the
    // honest tolerance for a quadrature-based comparison.
    func testTanhGaussianEntropyDouble() throws { try checkTanhGaussian(Double.self, tolerance: 1e-9) }
    func testTanhGaussianEntropyFloat() throws { try checkTanhGaussian(Float.self, tolerance: 1e-5) }

    // MARK: Gauss-Hermite and Gauss-Legendre rules

    func testGaussHermiteRule() {
        let rule = GaussHermiteRule.standard
        XCTAssertEqual(rule.nodes.count, 64)
        XCTAssertEqual(rule.weights.count, 64)
        var weightSum = CompensatedSum()
        for w in rule.weights { XCTAssertGreaterThan(w, 0); weightSum.add(w) }
        XCTAssertEqual(weightSum.value, 1, accuracy: 1e-14)
        // Sorted (strictly, one way or the other) and symmetric.
        let ascending = rule.nodes.first! < rule.nodes.last!
        for k in 1..<64 {
            XCTAssertTrue(ascending ? rule.nodes[k - 1] < rule.nodes[k] : rule.nodes[k - 1] > rule.nodes[k], "sorted at \(k)")
        }
        for k in 0..<64 {
            XCTAssertEqual(rule.nodes[k], -rule.nodes[63 - k], accuracy: 1e-14 * Swift.max(1, Swift.abs(rule.nodes[k])))
            XCTAssertEqual(rule.weights[k], rule.weights[63 - k], accuracy: 1e-14 * rule.weights[k])
        }
        // Moments E[e^(2k)] = (2k - 1)!!, exact for degree < 128; odd moments vanish.
        var worst = 0.0
        var doubleFactorial = 1.0
        for k in 1...60 {
            doubleFactorial *= Double(2 * k - 1)
            var moment = CompensatedSum(), odd = CompensatedSum(), oddScale = CompensatedSum()
            for j in 0..<64 {
                let x = rule.nodes[j]
                moment.add(rule.weights[j] * Glibc.pow(x, Double(2 * k)))
                odd.add(rule.weights[j] * Glibc.pow(x, Double(2 * k - 1)))
                oddScale.add(rule.weights[j] * Swift.abs(Glibc.pow(x, Double(2 * k - 1))))
            }
            let error = Swift.abs(moment.value / doubleFactorial - 1)
            worst = Swift.max(worst, error)
            if k <= 3 { XCTAssertEqual(moment.value, [1.0, 3, 15][k - 1], accuracy: 1e-13 * doubleFactorial) }
            XCTAssertLessThanOrEqual(error, 1e-10, "E[e^\(2 * k)]")
            XCTAssertLessThanOrEqual(Swift.abs(odd.value), 1e-13 * oddScale.value, "E[e^\(2 * k - 1)]")
        }
        print("Gauss-Hermite 64: max relative error of E[e^2k], k = 1...60: \(worst)")
    }

    func testGaussHermiteSmallRules() {
        let two = GaussHermiteRule(count: 2)
        XCTAssertEqual(Set(two.nodes.map { ($0 * 1e12).rounded() / 1e12 }), [-1, 1])
        for w in two.weights { XCTAssertEqual(w, 0.5, accuracy: 1e-15) }
        let three = GaussHermiteRule(count: 3)
        let sorted = zip(three.nodes, three.weights).sorted { $0.0 < $1.0 }
        XCTAssertEqual(sorted[0].0, -Glibc.sqrt(3.0), accuracy: 1e-14)
        XCTAssertEqual(sorted[1].0, 0, accuracy: 1e-15)
        XCTAssertEqual(sorted[2].0, Glibc.sqrt(3.0), accuracy: 1e-14)
        XCTAssertEqual(sorted[0].1, 1.0 / 6, accuracy: 1e-15)
        XCTAssertEqual(sorted[1].1, 2.0 / 3, accuracy: 1e-15)
        for n in [5, 20, 100] {
            let rule = GaussHermiteRule(count: n)
            XCTAssertEqual(rule.weights.reduce(0, +), 1, accuracy: 1e-13, "n = \(n)")
            var second = 0.0, fourth = 0.0
            for k in 0..<n {
                second += rule.weights[k] * rule.nodes[k] * rule.nodes[k]
                fourth += rule.weights[k] * Glibc.pow(rule.nodes[k], 4)
            }
            XCTAssertEqual(second, 1, accuracy: 1e-13, "n = \(n)")
            XCTAssertEqual(fourth, 3, accuracy: 1e-12, "n = \(n)")
        }
    }

    func testGaussLegendreRule() {
        let rule = GaussLegendreRule.standard
        XCTAssertEqual(rule.nodes.count, 16)
        for x in rule.nodes { XCTAssertTrue(x > 0 && x < 1) }
        // integral_0^1 x^k dx = 1/(k+1), exact for k < 32.
        for k in 0..<32 {
            var sum = 0.0
            for j in 0..<16 { sum += rule.weights[j] * Glibc.pow(rule.nodes[j], Double(k)) }
            XCTAssertEqual(sum, 1 / Double(k + 1), accuracy: 1e-14, "k = \(k)")
        }
    }

    // MARK: truncated normal

    /// (loc, log std) pairs on [lo, hi], from the official [-1, 1] case to far tails.
    private let truncatedCases: [(loc: Double, logStd: Double, lo: Double, hi: Double, closedForm: Bool)] = [
        (0, 0, -1, 1, true), (0.5, -1, -1, 1, true), (0.99, -3, -1, 1, true), (-0.7, 1, -1, 1, true),
        (0.2, 3, -1, 1, true), (0.2, 5, -1, 1, true),               // nearly uniform on [-1, 1]
        (0, Glibc.log(0.05), -1, 1, true),                         // nearly untruncated
        (0.3, 0, 0.6, 0.6 + 1e-6, false),                          // a sliver (Z by cancellation in the closed form)
        (10, 0, -1, 1, false), (-10, 0, -1, 1, false),             // alpha, beta ~ -11, -9 and 9, 11
        (-30, 0, -1, 1, false),                                    // [29, 31]
        (-1000, 0, -1, 1, false),                                  // [999, 1001]
        (-1e9 - 1, 0, -1, 1, false),                               // [1e9, 1e9 + 2]
        (1000, 0, -1, 1, false),                                   // mirror, [-1001, -999]
        (0.5, Glibc.log(1e-3), -1, 1, false),                      // tiny scale inside
    ]

    func testTruncatedNormalDouble() throws {
        var worstQuadrature = 0.0, worstClosed = 0.0
        for c in truncatedCases {
            let out: [Double] = try coreTruncatedKernel([c.loc], [c.logStd], lo: c.lo, hi: c.hi, rows: 1, dim: 1)
            let sd = Glibc.exp(c.logStd)
            let alpha = (c.lo - c.loc) / sd, beta = (c.hi - c.loc) / sd
            let quadrature = c.logStd + coreTruncatedStandardEntropy(alpha: alpha, beta: beta)
            // Quadrature-based: Simpson with 40k steps on the effective support is good to
            // ~1e-12 absolute; 1e-10 is the honest tolerance.
            XCTAssertEqual(out[0], quadrature, accuracy: 1e-10 * Swift.max(1, Swift.abs(quadrature)),
                           "loc \(c.loc) log std \(c.logStd) on [\(c.lo), \(c.hi)] (alpha \(alpha), beta \(beta))")
            worstQuadrature = Swift.max(worstQuadrature, Swift.abs(out[0] - quadrature) / Swift.max(1, Swift.abs(quadrature)))
            if c.closedForm {
                let closed = c.logStd + coreTruncatedStandardEntropyClosed(alpha: alpha, beta: beta)
                XCTAssertEqual(out[0], closed, accuracy: 1e-12 * Swift.max(1, Swift.abs(closed)), "closed form, loc \(c.loc)")
                worstClosed = Swift.max(worstClosed, Swift.abs(out[0] - closed) / Swift.max(1, Swift.abs(closed)))
            }
        }
        print("truncated normal Double: max error vs quadrature \(worstQuadrature), vs closed form \(worstClosed)")
        // Limits: nearly untruncated -> Gaussian entropy; nearly uniform -> log(hi - lo).
        let wide: [Double] = try coreTruncatedKernel([0], [Glibc.log(1e-3)], lo: -1, hi: 1, rows: 1, dim: 1)
        XCTAssertEqual(wide[0], Glibc.log(1e-3) + coreGaussianPerDim, accuracy: 1e-12)
        let flat: [Double] = try coreTruncatedKernel([0], [20], lo: -1, hi: 1, rows: 1, dim: 1)
        XCTAssertEqual(flat[0], Glibc.log(2.0), accuracy: 1e-12)
    }

    /// Intervals on one side of the location, alpha = (lo - loc)/sd from 1e4 to 1e8 (and their
    /// mirror images): the entropy is well conditioned there (dH/dalpha ~ -1/alpha, H ~ 1 - log
    /// alpha), so it must match the quadrature like everywhere else.
    func testTruncatedNormalOneSidedTails() throws {
        var lines: [String] = []
        for alpha in [1e4, 1e5, 1e6, 1e7, 5e7, 9.9e7] {
            for mirrored in [false, true] {
                // [lo, hi] = [-1, 1], scale 1: loc = -1 - alpha gives [alpha, alpha + 2].
                let loc = mirrored ? 1 + alpha : -1 - alpha
                let out: [Double] = try coreTruncatedKernel([loc], [0], lo: -1, hi: 1, rows: 1, dim: 1)
                let a = (-1 - loc), b = (1 - loc)
                let expected = coreTruncatedStandardEntropy(alpha: a, beta: b)
                XCTAssertEqual(out[0], expected, accuracy: 1e-10 * Swift.max(1, Swift.abs(expected)),
                               "truncated normal on [\(a), \(b)]: library \(out[0]), quadrature \(expected)")
                if !mirrored { lines.append("  alpha \(alpha): library \(out[0]), quadrature \(expected), error \(out[0] - expected)") }
            }
        }
        print("truncated normal, one-sided tail [alpha, alpha + 2]:\n" + lines.joined(separator: "\n"))
    }

    func testTruncatedNormalRowsFloatAndDouble() throws {
        var rng = TestRandom(seed: 45)
        let rows = 5, dim = 4
        let loc = (0..<(rows * dim)).map { _ in Glibc.tanh(rng.normal()) }
        let logStd = (0..<(rows * dim)).map { _ in rng.uniform(-4, 1) }
        let outD: [Double] = try coreTruncatedKernel(loc, logStd, lo: -1, hi: 1, rows: rows, dim: dim)
        let locF = loc.map { Float($0) }, logStdF = logStd.map { Float($0) }
        let outF: [Float] = try coreTruncatedKernel(locF, logStdF, lo: -1, hi: 1, rows: rows, dim: dim)
        for r in 0..<rows {
            var expectedD = 0.0, expectedF = 0.0
            for i in 0..<dim {
                let k = r * dim + i
                expectedD += coreTruncatedEntropy(loc: loc[k], logStd: logStd[k], lo: -1, hi: 1)
                expectedF += coreTruncatedEntropy(loc: Double(locF[k]), logStd: Double(logStdF[k]), lo: -1, hi: 1)
            }
            XCTAssertEqual(outD[r], expectedD, accuracy: 1e-10 * Swift.max(1, Swift.abs(expectedD)))
            XCTAssertEqual(Double(outF[r]), expectedF, accuracy: 1e-5 * Swift.max(1, Swift.abs(expectedF)))
        }
    }
}

private func coreTruncatedEntropy(loc: Double, logStd: Double, lo: Double, hi: Double) -> Double {
    let sd = Glibc.exp(logStd)
    return logStd + coreTruncatedStandardEntropy(alpha: (lo - loc) / sd, beta: (hi - loc) / sd)
}
