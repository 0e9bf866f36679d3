// The vector kernels (module ERASIMD) against plain double-precision loops written here and
// against the portable kernels: the vector exp's and log's accuracy, the row statistics and
// gradient rows of the LLM passes (float32 and bfloat16, with masks, NaN, +inf and every tail
// length), and the float32 discrete-ERA rows. Skipped on a
// processor that cannot run them (then the portable kernels run, and the other tests
// cover them); `ERA_SIMD=0 swift test` covers the portable ones on any machine.
#if canImport(Glibc)
import Glibc
#endif
import XCTest
@testable import ERACore
import ERASIMD

final class SIMDKernelTests: XCTestCase {
    override func setUpWithError() throws {
        try XCTSkipUnless(VectorKernels.enabled, "the vector kernels do not run here (no AVX2/FMA, or ERA_SIMD=0)")
    }

    func testVectorExpAgainstGlibc() {
        var rng = TestRandom(seed: 11)
        var x = (0..<200_000).map { _ in rng.uniform(-708, 0) }
        x += [0, -0.0, -1e-300, -0.34657359, -0.34657360, -708, -707.999, -1, -2, -700.5]
        var out = [Double](repeating: .nan, count: x.count)
        vectorExp(x, count: x.count, out: &out)
        var worst = 0.0
        for i in 0..<x.count { worst = max(worst, abs(out[i] - Glibc.exp(x[i])) / Glibc.exp(x[i])) }
        print("vector exp vs Glibc.exp on [-708, 0]: max relative error \(worst)")
        XCTAssertLessThan(worst, 2e-12)
        let below = [-708.0001, -709, -1000, -1e300, -Double.infinity]
        var zeros = [Double](repeating: .nan, count: below.count)
        vectorExp(below, count: below.count, out: &zeros)
        XCTAssertEqual(zeros, [0, 0, 0, 0, 0], "below the normal range exp is taken as 0")
    }

    func testVectorLogAgainstGlibc() {
        var rng = TestRandom(seed: 15)
        var x = (0..<100_000).map { _ in Glibc.exp(rng.uniform(-708, 700)) }
        x += (0..<100_000).map { _ in rng.uniform(0.5, 2) }
        x += [1, 1.0.nextUp, 1.0.nextDown, 0.707106781186547, 1.41421356237309, Double.leastNormalMagnitude, 2, 0.5, 1e300]
        var out = [Double](repeating: .nan, count: x.count)
        vectorLog(x, count: x.count, out: &out)
        var worst = 0.0
        for i in 0..<x.count {
            let want = Glibc.log(x[i])
            worst = max(worst, abs(out[i] - want) / max(abs(want), 1e-300))
        }
        print("vector log vs Glibc.log: max relative error \(worst)")
        XCTAssertLessThan(worst, 1e-13)
    }

    /// Discrete ERA on float32 rows: the vector kernels (DiscreteERA.forward/backward on Float,
    /// which dispatch to them) against the portable double kernels on the same values, rounded.
    func testDiscreteRowsAgainstPortableKernels() throws {
        var rng = TestRandom(seed: 16)
        var worstUlps = 0, worstGradient = 0.0, rows = 0
        for d in Array(2...13) + [37, 1000] {
            for tau in [2.75, 3.0, 4.0, 20.0, 1e4] {
                for mode in [Int32(0), 1, 2] {
                    let up = Glibc.log(tau) / tau
                    let (lo, hi) = mode == 1 ? (0.0, Glibc.log(Double(d))) : (1 + Glibc.log(up), 1 + Glibc.log(Double(d) * up))
                    for fraction in [0.0, 0.01, 0.3, 0.7, 0.99, 1.0] {
                        let target = mode == 1 ? lo + (hi - lo) * min(max(fraction, 1e-6), 1 - 1e-6) : lo + (hi - lo) * fraction
                        guard let era = try? DiscreteERA(targetEntropy: target, tau: tau, mode: mode, classes: Int64(d)) else { continue }
                        let scale = [0.01, 1, 5, 40][rng.int(4)]
                        let z = (0..<(3 * d)).map { _ in Float(rng.normal() * scale) }
                        let g = (0..<(3 * d)).map { _ in Float(rng.normal()) }
                        var out = [Float](repeating: .nan, count: 3 * d), grad = out
                        try era.forward(rows: 3, input: z, output: &out)
                        try era.backward(rows: 3, input: z, gradOutput: g, gradInput: &grad)
                        var outD = [Double](repeating: .nan, count: 3 * d), gradD = outD
                        let zD = z.map(Double.init), gD = g.map(Double.init)
                        try era.forward(rows: 3, input: zD, output: &outD)
                        try era.backward(rows: 3, input: zD, gradOutput: gD, gradInput: &gradD)
                        for r in 0..<3 {
                            rows += 1
                            let rowMax = (0..<d).map { abs(gradD[r * d + $0]) }.max()!
                            for i in r * d..<(r + 1) * d {
                                let ulps = abs(Int(out[i].bitPattern.distance(to: Float(outD[i]).bitPattern)))
                                worstUlps = max(worstUlps, ulps)
                                XCTAssertLessThanOrEqual(ulps, 2, "d \(d) tau \(tau) mode \(mode) H0 \(target) [\(i)]")
                                // Against the double result rounded to float32; rows whose gradients are
                                // all below the normal float32 range (1e-51 when a class is 117 logits
                                // behind) are compared in absolute terms, at that range's spacing.
                                let e = abs(Double(grad[i]) - Double(Float(gradD[i]))) / max(rowMax, Double(Float.leastNormalMagnitude))
                                worstGradient = max(worstGradient, e)
                                XCTAssertLessThan(e, 1e-6, "gradient d \(d) tau \(tau) mode \(mode) H0 \(target) [\(i)]")
                            }
                        }
                    }
                }
            }
        }
        print("vector discrete rows vs portable double kernels (\(rows) rows): outputs within \(worstUlps) ulp, gradients within \(worstGradient) of the row's largest")
    }

    /// Short rows run in batches of discreteBatchRows(count) rows side by side: every row's
    /// outputs and gradients must be those of the row computed alone, bit for bit, wherever it
    /// sits in a batch (first, middle, last, a partial last batch), in place too.
    func testDiscreteBatchedRowsEqualRowsAlone() throws {
        var rng = TestRandom(seed: 17)
        for d in [2, 3, 7, 10, 13, 100, 255, 256, 300] {
            let batch = discreteBatchRows(count: d)
            let rows = 2 * batch + batch / 2 + 1  // two whole batches and a partial one
            for mode in [Int32(0), 1, 2] {
                let up = Glibc.log(4.0) / 4
                let target = mode == 1 ? 0.5 * Glibc.log(Double(d)) : 1 + Glibc.log(up) + 0.5 * Glibc.log(Double(d))
                let era = try DiscreteERA(targetEntropy: target, tau: 4, mode: mode, classes: Int64(d))
                let z = (0..<(rows * d)).map { _ in Float(rng.normal() * 3) }
                let g = (0..<(rows * d)).map { _ in Float(rng.normal()) }
                var out = [Float](repeating: .nan, count: rows * d), grad = out
                try era.forward(rows: rows, input: z, output: &out)
                try era.backward(rows: rows, input: z, gradOutput: g, gradInput: &grad)
                for r in 0..<rows {
                    let zr = Array(z[(r * d)..<((r + 1) * d)]), gr = Array(g[(r * d)..<((r + 1) * d)])
                    var o = [Float](repeating: .nan, count: d), gd = o
                    try era.forward(rows: 1, input: zr, output: &o)
                    try era.backward(rows: 1, input: zr, gradOutput: gr, gradInput: &gd)
                    XCTAssertEqual(o.map(\.bitPattern), out[(r * d)..<((r + 1) * d)].map(\.bitPattern), "forward d \(d) mode \(mode) row \(r)")
                    XCTAssertEqual(gd.map(\.bitPattern), grad[(r * d)..<((r + 1) * d)].map(\.bitPattern), "backward d \(d) mode \(mode) row \(r)")
                }
                // In place: the output over the logits, the gradient over the logits and over g.
                var inPlace = z
                try inPlace.withUnsafeMutableBufferPointer { try era.forward(rows: rows, input: $0.baseAddress!, output: $0.baseAddress!) }
                XCTAssertEqual(inPlace.map(\.bitPattern), out.map(\.bitPattern), "forward in place d \(d) mode \(mode)")
                var overZ = z
                try overZ.withUnsafeMutableBufferPointer {
                    try era.backward(rows: rows, input: $0.baseAddress!, gradOutput: g, gradInput: $0.baseAddress!)
                }
                XCTAssertEqual(overZ.map(\.bitPattern), grad.map(\.bitPattern), "backward over z d \(d) mode \(mode)")
                var overG = g
                try overG.withUnsafeMutableBufferPointer {
                    try era.backward(rows: rows, input: z, gradOutput: $0.baseAddress!, gradInput: $0.baseAddress!)
                }
                XCTAssertEqual(overG.map(\.bitPattern), grad.map(\.bitPattern), "backward over g d \(d) mode \(mode)")
            }
        }
    }

    /// max, S and T of scale*z in plain double, as the portable kernels define them.
    func plainStatistics(_ z: [Float], scale: Double) -> (Double, Double, Double) {
        if z.contains(where: { !($0 < .infinity) }) { return (.nan, 0, 0) }
        let m = scale * Double(z.max()!)
        guard m > -.infinity else { return (-.infinity, 0, 0) }
        var s = CompensatedSum(), t = CompensatedSum()
        for v in z where v > -.infinity {
            let d = scale * Double(v) - m
            guard d >= smallestExpArgument else { continue }
            s.add(Glibc.exp(d))
            t.add(d * Glibc.exp(d))
        }
        return (m, s.sum, t.sum)
    }

    func randomRow(_ n: Int, _ rng: inout TestRandom, masked: Bool) -> [Float] {
        (0..<n).map { _ in
            if masked && rng.uniform() < 0.1 { return -.infinity }
            return Float(rng.normal() * 6)
        }
    }

    func testVectorExp2AgainstGlibc() {
        var rng = TestRandom(seed: 17)
        var x = (0..<200_000).map { _ in Float(rng.uniform(-126, 16)) }
        x += (0..<50_000).map { _ in Float(rng.uniform(-0.5, 0.5)) }
        x += [0, -0.0, 0.5, -0.5, 0.4999999, -0.5000001, -1, 1, 16, -126, -125.5, 15.999999]
        var out = [Float](repeating: .nan, count: x.count)
        vectorExp2Float(x, count: x.count, out: &out)
        var worst = 0.0
        for i in 0..<x.count {
            let want = Glibc.exp2(Double(x[i]))
            worst = max(worst, abs(Double(out[i]) - want) / want)
        }
        print("vector float32 exp2 vs Glibc.exp2 on [-126, 16]: max relative error \(worst) (\(worst / 0x1p-24) x 2^-24)")
        XCTAssertLessThan(worst, 2.5e-7)
        let below: [Float] = [-127, -128, -1000, -.greatestFiniteMagnitude, -.infinity]
        var zeros = [Float](repeating: .nan, count: below.count)
        vectorExp2Float(below, count: below.count, out: &zeros)
        XCTAssertEqual(zeros, [0, 0, 0, 0, 0], "at and below 2^-127 the term is 0")
    }

    /// The float32 log of the discrete kernels' starting values, on their arguments -log y and
    /// -t (1 to about 715), and over the float32 range: absolute error (it is a polynomial in
    /// m - 1 fitted for absolute error), about 3e-7 plus float32 rounding.
    func testVectorLogFloatAgainstGlibc() {
        var rng = TestRandom(seed: 18)
        var x = (0..<100_000).map { _ in Float(rng.uniform(1, 720)) }
        x += (0..<100_000).map { _ in Float(Glibc.exp(rng.uniform(-87, 88))) }
        x += [1, Float(1).nextUp, Float(1).nextDown, 0.70710677, 1.4142135, 1.4142137, 2, 0.5, .leastNormalMagnitude, .greatestFiniteMagnitude]
        var out = [Float](repeating: .nan, count: x.count)
        vectorLogFloat(x, count: x.count, out: &out)
        var worst = 0.0
        for i in 0..<x.count {
            let want = Glibc.log(Double(x[i]))
            let error = abs(Double(out[i]) - want) / (1 + abs(want))
            worst = max(worst, error)
        }
        print("vector float32 log vs Glibc.log: max error \(worst) of 1 + |log x|")
        XCTAssertLessThan(worst, 4e-7)
    }

    /// The row statistics are relative to a reference M that need not be the maximum, so they are
    /// compared through what does not depend on it: logsumexp M + log S, absolutely (a log-prob
    /// s z[a] - logsumexp inherits that error), and the entropy log S - T/S.
    func testLogitStatisticsAgainstPlainLoops() {
        var rng = TestRandom(seed: 12)
        var worstLSE = 0.0, worstEntropy = 0.0
        for n in Array(1...37) + [63, 64, 65, 127, 128, 1000, 4099, 151_936] {
            for scale in [1.0, 0.5, 2.0, 3.7] {
                for kind in ["normal", "masked", "offset", "rising", "one-hot", "ties"] {
                    var row = randomRow(n, &rng, masked: kind == "masked")
                    switch kind {
                    case "offset": row = row.map { $0 + 3000 }   // big logits: a float32 ulp of 2.4e-4
                    case "rising": row = (0..<n).map { Float($0) * 0.37 - 40 }  // re-centres again and again
                    case "one-hot": row = (0..<n).map { $0 == n / 3 ? 30 : Float(rng.normal()) - 10 }
                    case "ties": row = [Float](repeating: 1.5, count: n)
                    default: break
                    }
                    if row.allSatisfy({ $0 == -.infinity }) { row[0] = 0 }
                    let bf16 = row.map { BFloat16($0) }
                    for (storage, values) in [("f32", row), ("bf16", bf16.map(\.float))] {
                        let want = plainStatistics(values, scale: scale)
                        let result = storage == "f32"
                            ? logitStatistics(row, count: n, scale: scale)
                            : bf16.map(\.bitPattern).withUnsafeBufferPointer {
                                logitStatistics(bfloat16: $0.baseAddress!, count: n, scale: scale)
                            }
                        guard let got = result else { XCTFail("\(storage) n \(n) scale \(scale) \(kind): no result"); continue }
                        let lse = want.0 + Glibc.log(want.1), entropy = Glibc.log(want.1) - want.2 / want.1
                        let errLSE = abs(got.maximum + Glibc.log(got.sumExp) - lse)
                        let errH = abs(Glibc.log(got.sumExp) - got.sumShiftedTimesExp / got.sumExp - entropy)
                        worstLSE = max(worstLSE, errLSE)
                        worstEntropy = max(worstEntropy, errH / max(1, entropy))
                        let name = "\(storage) n \(n) scale \(scale) \(kind)"
                        XCTAssertLessThan(errLSE, 2e-6, "\(name): logsumexp")
                        XCTAssertLessThan(errH, 2e-6 * max(1, entropy), "\(name): entropy")
                        if kind == "ties" { XCTAssertEqual(got.sumShiftedTimesExp, 0, "\(name): T of equal logits") }
                    }
                }
            }
        }
        print("vector row statistics vs plain double loops: max error of logsumexp \(worstLSE), relative of the entropy \(worstEntropy)")
    }

    /// Confident rows: two logits g nats apart, the rest masked, at every place of a chunk and its
    /// float32 lanes (16 apart: the same lane). Their entropy, about (S - 1)(1 + g), keeps the
    /// term a lane holding the top term 1 would lose (5.6% of the entropy at g = 17 when such a
    /// chunk was summed as it came): within 3e-7 + 1.4e-7 g relative (docs/math.md 5), from the
    /// statistics as the entropy takes them (the count at the maximum apart).
    func testLogitStatisticsKeepTheEntropyOfConfidentRows() {
        var worst = 0.0
        for n in [64, 100, 4096] {
            for gap in [5.0, 17.0, 30.0, 40.0] {
                for (top, other) in [(0, 16), (7, 15), (16, 0), (63, 47), (64, 80), (3, 64), (n - 1, n - 17)] where max(top, other) < n {
                    var row = [Float](repeating: -.infinity, count: n)
                    row[top] = 1.25
                    row[other] = Float(1.25 - gap)
                    let g = Double(row[top]) - Double(row[other])
                    // softmax of (0, -g): log(1 + x) + g x / (1 + x), x = e^-g.
                    let x = Glibc.exp(-g)
                    let want = Glibc.log1p(x) + g * x / (1 + x)
                    let bf16 = row.map { BFloat16($0) }
                    for (storage, result) in [("f32", logitStatistics(row, count: n, scale: 1)),
                                              ("bf16", bf16.map(\.bitPattern).withUnsafeBufferPointer {
                                                  logitStatistics(bfloat16: $0.baseAddress!, count: n, scale: 1)
                                              })] {
                        guard let got = result else { XCTFail("\(storage): no result"); continue }
                        // bfloat16 rounds the logits: its own reference.
                        let gb = storage == "f32" ? g : Double(bf16[top].float) - Double(bf16[other].float)
                        let xb = Glibc.exp(-gb)
                        let wantHere = storage == "f32" ? want : Glibc.log1p(xb) + gb * xb / (1 + xb)
                        let k = got.maximumCount, r = got.sumExpBelowMaximum
                        let entropy = Glibc.log(k) + Glibc.log1p(r / k) - got.sumShiftedTimesExp / (k + r)
                        let error = abs(entropy - wantHere) / wantHere
                        worst = max(worst, error / (3e-7 + 1.4e-7 * gb))
                        XCTAssertEqual(k, 1, "\(storage) n \(n) gap \(gap) at \(top), \(other)")
                        XCTAssertLessThanOrEqual(error, 3e-7 + 1.4e-7 * gb, "\(storage) n \(n) gap \(gap) at \(top), \(other)")
                    }
                }
            }
        }
        print("vector row statistics, confident rows: worst entropy error \(worst) of the bound")
    }

    func testLogitStatisticsFlagsNonFiniteAndMaskedRows() {
        for n in [3, 8, 19, 64, 200, 1000] {
            for bad in [Float.nan, .infinity] {
                for position in [0, n / 2, n - 1] {
                    for maskedStart in [false, true] {  // masked chunks before: the reference is not set yet
                        var row = [Float](repeating: 1, count: n)
                        if maskedStart { for i in 0..<position { row[i] = -.infinity } }
                        row[position] = bad
                        XCTAssertTrue(logitStatistics(row, count: n, scale: 1)?.maximum.isNaN ?? false,
                                      "n \(n) \(bad) at \(position), masked before: \(maskedStart)")
                    }
                }
            }
            let masked = [Float](repeating: -.infinity, count: n)
            XCTAssertEqual(logitStatistics(masked, count: n, scale: 2)?.maximum, -.infinity)
            var single = masked
            single[n - 1] = 7  // one token left: entropy exactly 0
            let stats = logitStatistics(single, count: n, scale: 2)
            XCTAssertEqual(stats?.sumExp, 1)
            XCTAssertEqual(stats?.sumShiftedTimesExp, 0)
        }
    }

    /// Scales whose s log2(e) is below 2^-120 (or beyond float32) are left to the portable
    /// kernels: z - m in float32 could overflow for logits near +-FLT_MAX, losing terms whose
    /// scaled exponent is small.
    func testLogitStatisticsDeclineExtremeScales() {
        let row: [Float] = (0..<200).map { $0 % 2 == 0 ? 3e38 : -3e38 }
        XCTAssertNil(logitStatistics(row, count: row.count, scale: 1e-38))
        XCTAssertNil(logitStatistics(row, count: row.count, scale: 1e39))
        XCTAssertNotNil(logitStatistics(row, count: row.count, scale: 1e-36))
    }

    /// The gradient rows against plain double loops given the same (exact) statistics: entries
    /// computed in float32 lanes, within 3e-7 relative plus 1.5e-7 per nat of distance from the
    /// row maximum (the exponent's float32 rounding), or below float32's normal range times |g|;
    /// bfloat16 within one step of the double value rounded, and mostly equal to it.
    func testGradientRowsAgainstPlainLoops() {
        var rng = TestRandom(seed: 13)
        var worst32 = 0.0, mismatches16 = 0, entries = 0
        for n in Array(1...19) + [1000, 32_003] {
            for scale in [1.0, 0.5, 2.0] {
                let row = randomRow(n, &rng, masked: true).map { $0 == -.infinity ? Float(-1e30) : $0 }
                let label = rng.int(n)
                let g = rng.normal() * scale
                let (m, s, _) = plainStatistics(row, scale: scale)
                var want = [Double](repeating: 0, count: n)
                for i in 0..<n {
                    let p = Glibc.exp(max(scale * Double(row[i]) - m, -1000)) / s
                    want[i] = g * ((i == label ? 1 : 0) - p)
                }
                var out32 = [Float](repeating: .nan, count: n)
                logprobGradientRow(row, count: n, scale: scale, maximum: m, inverseSum: 1 / s, gradScale: g,
                                   label: label, out: &out32)
                let bits = row.map { BFloat16($0).bitPattern }
                let bfValues = bits.map { Double(Float(bitPattern: UInt32($0) << 16)) }
                let (m16, s16, _) = plainStatistics(bfValues.map { Float($0) }, scale: scale)
                var out16 = [UInt16](repeating: 0, count: n)
                bits.withUnsafeBufferPointer { b in
                    logprobGradientRow(bfloat16: b.baseAddress!, count: n, scale: scale, maximum: m16, inverseSum: 1 / s16,
                                       gradScale: g, label: label, out: &out16)
                }
                let tiny = Double(Float.leastNormalMagnitude) * max(1, abs(g))
                for i in 0..<n {
                    entries += 1
                    let distance = m - scale * Double(row[i])
                    let error = abs(Double(out32[i]) - want[i])
                    if abs(want[i]) >= tiny { worst32 = max(worst32, error / abs(want[i]) / (3e-7 + 1.5e-7 * distance)) }
                    XCTAssertLessThanOrEqual(error, (3e-7 + 1.5e-7 * distance) * abs(want[i]) + tiny, "f32 n \(n) [\(i)]")
                    let p16 = Glibc.exp(max(scale * bfValues[i] - m16, -1000)) / s16
                    let want16 = g * ((i == label ? 1 : 0) - p16)
                    let plain16 = BFloat16(rounding: want16).bitPattern
                    if BFloat16(bitPattern: out16[i]).float != BFloat16(bitPattern: plain16).float {  // -0 == 0
                        mismatches16 += 1
                        if abs(want16) >= tiny {
                            XCTAssertEqual(abs(Int(out16[i]) - Int(plain16)), 1, "bf16 n \(n) [\(i)]")
                        }
                    }
                }
            }
        }
        print("vector gradient rows: f32 worst error \(worst32) of its bound; \(mismatches16) bf16 of \(entries) entries one step from the double value rounded")
        XCTAssertLessThan(mismatches16, entries / 100)
    }

    func testGradientRowInPlace() {
        var rng = TestRandom(seed: 14)
        let n = 1003
        let row = randomRow(n, &rng, masked: false)
        let (m, s, _) = plainStatistics(row, scale: 1.5)
        var separate = [Float](repeating: 0, count: n)
        logprobGradientRow(row, count: n, scale: 1.5, maximum: m, inverseSum: 1 / s, gradScale: 0.7, label: 17, out: &separate)
        var inPlace = row
        inPlace.withUnsafeMutableBufferPointer { b in
            logprobGradientRow(b.baseAddress!, count: n, scale: 1.5, maximum: m, inverseSum: 1 / s, gradScale: 0.7,
                               label: 17, out: b.baseAddress!)
        }
        XCTAssertEqual(inPlace, separate)
    }
}
