// The truncated-normal policy (math 6.2): the sample against its defining property F(x) = u,
// the log-density against a plain float64 reference written with erfc, the gradients against
// central differences, samples inside [lo, hi] in far tails, and the refused inputs.
import XCTest
@testable import ERACore
#if canImport(Glibc)
import Glibc
#endif

/// Plain references for moderate arguments: Phi from erfc.
private func referencePhi(_ x: Double) -> Double { 0.5 * erfc(-x / 2.0.squareRoot()) }

private func referenceLogProb(loc m: Double, logStd: Double, lo: Double, hi: Double, x: Double) -> Double {
    let sg = exp(logStd), z = referencePhi((hi - m) / sg) - referencePhi((lo - m) / sg), xi = (x - m) / sg
    return -0.5 * xi * xi - log((2 * Double.pi).squareRoot() * sg * z)
}

private func referenceCDF(loc m: Double, logStd: Double, lo: Double, hi: Double, x: Double) -> Double {
    let sg = exp(logStd), a = referencePhi((lo - m) / sg)
    return (referencePhi((x - m) / sg) - a) / (referencePhi((hi - m) / sg) - a)
}

private func sample<T: CoreKernelReal>(_ loc: [T], _ logStd: [T], _ u: [T], lo: Double = -1, hi: Double = 1) throws -> [T] {
    var out = [T](repeating: .nan, count: loc.count)
    try loc.withUnsafeBufferPointer { m in
        try logStd.withUnsafeBufferPointer { l in
            try u.withUnsafeBufferPointer { uu in
                try out.withUnsafeMutableBufferPointer { o in
                    try TruncatedNormal.sample(count: loc.count, loc: m.baseAddress!, logStd: l.baseAddress!, lo: lo, hi: hi,
                                               uniform: uu.baseAddress!, out: o.baseAddress!)
                }
            }
        }
    }
    return out
}

private func logProb(_ loc: [Double], _ logStd: [Double], _ x: [Double]) throws -> [Double] {
    var out = [Double](repeating: .nan, count: loc.count)
    try loc.withUnsafeBufferPointer { m in
        try logStd.withUnsafeBufferPointer { l in
            try x.withUnsafeBufferPointer { xx in
                try out.withUnsafeMutableBufferPointer { o in
                    try TruncatedNormal.logProb(count: loc.count, loc: m.baseAddress!, logStd: l.baseAddress!, lo: -1, hi: 1,
                                                x: xx.baseAddress!, out: o.baseAddress!)
                }
            }
        }
    }
    return out
}

final class TruncatedNormalTests: XCTestCase {
    func testSampleInvertsTheCDFAndLogDensityMatchesReference() throws {
        var rng = TestRandom(seed: 62)
        var loc = [Double](), logStd = [Double](), u = [Double]()
        for _ in 0..<200 {
            loc.append(tanh(1.5 * rng.normal()))
            logStd.append(rng.uniform(-3, 1))
            u.append(rng.uniform(0.001, 0.999))
        }
        let x = try sample(loc, logStd, u)
        let lp = try logProb(loc, logStd, x)
        var worstCDF = 0.0, worstLogProb = 0.0
        for i in 0..<loc.count {
            worstCDF = max(worstCDF, abs(referenceCDF(loc: loc[i], logStd: logStd[i], lo: -1, hi: 1, x: x[i]) - u[i]))
            let want = referenceLogProb(loc: loc[i], logStd: logStd[i], lo: -1, hi: 1, x: x[i])
            worstLogProb = max(worstLogProb, abs(lp[i] - want) / max(1, abs(want)))
        }
        XCTAssertLessThan(worstCDF, 1e-13)
        XCTAssertLessThan(worstLogProb, 1e-13)
    }

    func testSamplesStayInsideInFarTails() throws {
        let locs = [0.99, 1.0, -1.0, 1 - 1e-7, 1 + 1e-7, 3.0, -40.0, 1e6, -1e4]
        let logStds = [-20.0, -9.2, -6.9, -3, 0, 3, 8]
        let us = [1e-300, 1e-12, 0.5, 1 - 1e-12, 1 - 1e-16]
        var m = [Double](), l = [Double](), u = [Double]()
        for a in locs { for b in logStds { for c in us { m.append(a); l.append(b); u.append(c) } } }
        let x = try sample(m, l, u)
        XCTAssertTrue(x.allSatisfy { $0 >= -1 && $0 <= 1 })
        let lp = try logProb(m, l, x)
        XCTAssertTrue(lp.allSatisfy { $0.isFinite })
        let m32: [Float] = m.map { Float($0) }, l32: [Float] = l.map { Float($0) }
        let u32: [Float] = u.map { (v: Double) -> Float in Float(min(max(v, 1e-30), 0.99999994)) }
        let x32: [Float] = try sample(m32, l32, u32, lo: -0.1, hi: 0.3)
        XCTAssertTrue(x32.allSatisfy { Double($0) >= -0.1 && Double($0) <= 0.3 })
    }

    func testGradientsAgainstCentralDifferences() throws {
        let cases: [(Double, Double)] = [(0.3, -1), (0.99, -4), (-0.99, -6.9), (1.0, -2), (1.5, -1), (3.0, -2), (0, 2)]
        let m = cases.map { $0.0 }, l = cases.map { $0.1 }, u = [Double](repeating: 0.37, count: cases.count)
        let n = cases.count, ones = [Double](repeating: 1, count: n)
        let x = try sample(m, l, u)
        var gx = ones, gm = ones, gl = ones, sm = ones, sl = ones
        try TruncatedNormal.logProbBackward(count: n, loc: m, logStd: l, lo: -1, hi: 1, x: x, gradLogProb: ones,
                                            gradX: &gx, gradLoc: &gm, gradLogStd: &gl)
        try TruncatedNormal.sampleBackward(count: n, loc: m, logStd: l, lo: -1, hi: 1, sample: x, gradSample: ones,
                                           gradLoc: &sm, gradLogStd: &sl)
        for i in 0..<n {
            let h = 1e-6 * exp(l[i])
            func lp(_ mm: Double, _ ll: Double, _ xx: Double) throws -> Double { try logProb([mm], [ll], [xx])[0] }
            func xs(_ mm: Double, _ ll: Double) throws -> Double { try sample([mm], [ll], [u[i]])[0] }
            let fm = (try lp(m[i] + h, l[i], x[i]) - lp(m[i] - h, l[i], x[i])) / (2 * h)
            let fl = (try lp(m[i], l[i] + 1e-6, x[i]) - lp(m[i], l[i] - 1e-6, x[i])) / 2e-6
            XCTAssertEqual(gm[i], fm, accuracy: 1e-6 * max(1, abs(fm)))
            XCTAssertEqual(gl[i], fl, accuracy: 1e-6 * max(1, abs(fl)))
            XCTAssertEqual(gx[i], -(x[i] - m[i]) / exp(2 * l[i]), accuracy: 1e-12 * max(1, abs(gx[i])))
            let sfm = (try xs(m[i] + h, l[i]) - xs(m[i] - h, l[i])) / (2 * h)
            let sfl = (try xs(m[i], l[i] + 1e-6) - xs(m[i], l[i] - 1e-6)) / 2e-6
            XCTAssertEqual(sm[i], sfm, accuracy: 1e-6)
            XCTAssertEqual(sl[i], sfl, accuracy: 1e-6 * exp(l[i]))
        }
    }

    func testRefusedInputsWriteNothing() throws {
        var out: [Double] = [7, 7]
        XCTAssertThrowsError(try TruncatedNormal.sample(count: 2, loc: [0, 0], logStd: [0, 0], lo: -1, hi: 1,
                                                        uniform: [0.5, 1.0], out: &out)) { XCTAssertEqual($0 as? ERAError, .badParameter) }
        XCTAssertThrowsError(try TruncatedNormal.logProb(count: 2, loc: [0, 0], logStd: [0, 800], lo: -1, hi: 1,
                                                         x: [0, 0], out: &out)) { XCTAssertEqual($0 as? ERAError, .badParameter) }
        var other: [Double] = [7, 7]
        XCTAssertThrowsError(try TruncatedNormal.sampleBackward(count: 2, loc: [0, 0], logStd: [0, 0], lo: -1, hi: 1,
                                                                sample: [0, 1.5], gradSample: [1, 1], gradLoc: &out,
                                                                gradLogStd: &other))
        XCTAssertEqual(out, [7, 7])
        XCTAssertEqual(other, [7, 7])
        XCTAssertEqual(try logProb([0], [0], [1.5])[0], -.infinity)
    }

    func testQuantileInLogSpace() {
        // Phi^-1 at p = 1/2, 0.025 and far below the smallest double (log p = -1e4).
        XCTAssertEqual(StandardNormal.quantile(logProbability: log(0.5)), 0, accuracy: 1e-15)
        XCTAssertEqual(StandardNormal.quantile(logProbability: log(0.025)), -1.959963984540054, accuracy: 1e-14)
        let t = StandardNormal.quantile(logProbability: -1e4)
        XCTAssertEqual(StandardNormal.logCDF(t), -1e4, accuracy: 1e-10)
    }
}
