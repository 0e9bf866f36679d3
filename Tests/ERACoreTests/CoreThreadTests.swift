// Results are bit-identical for every thread setting (the header's promise), on inputs large
// enough to be split.
import XCTest
@testable import ERACore
#if canImport(Glibc)
import Glibc
#endif

final class CoreThreadTests: XCTestCase {
    override func tearDown() {
        try? Threads.set(0)
        super.tearDown()
    }

    private struct Outputs: Equatable {
        var discrete: [[UInt64]] = []
        var discreteF: [[UInt32]] = []
        var continuous: [[UInt64]] = []
        var continuousF: [[UInt32]] = []
        var entropies: [[UInt64]] = []
        var entropiesF: [[UInt32]] = []
        var reports: [[UInt64]] = []
    }

    /// A report as bits: BoundReport's synthesized == compares its NaN fields (floor, and the
    /// mean of an empty report) as unequal, so compare bit patterns instead.
    private func bits(_ r: BoundReport) -> [UInt64] {
        [UInt64(r.rows), UInt64(r.violations), r.minEntropy.bitPattern, r.meanEntropy.bitPattern,
         r.maxDeficit.bitPattern, r.floor.bitPattern, r.target.bitPattern, UInt64(bitPattern: Int64(r.worstRow))]
    }

    private func bits(_ v: [Double]) -> [UInt64] { v.map(\.bitPattern) }
    private func bits(_ v: [Float]) -> [UInt32] { v.map(\.bitPattern) }

    private func runAll(rows: Int, cols: Int, z: [Double], g: [Double], zf: [Float], gf: [Float]) throws -> Outputs {
        var o = Outputs()
        for mode: Int32 in [0, 1, 2] {
            let h0 = mode == 1 ? 3.0 : 2.0
            let era = try DiscreteERA(targetEntropy: h0, tau: 4, mode: mode, classes: Int64(cols))
            let fd: [Double] = try coreDiscreteForward(era, rows: rows, z)
            let bd: [Double] = try coreDiscreteBackward(era, rows: rows, z, g)
            let ff: [Float] = try coreDiscreteForward(era, rows: rows, zf)
            let bf: [Float] = try coreDiscreteBackward(era, rows: rows, zf, gf)
            o.discrete += [bits(fd), bits(bd)]
            o.discreteF += [bits(ff), bits(bf)]
            try fd.withUnsafeBufferPointer { p in
                o.reports.append(bits(try BoundCheck.discrete(era, rows: rows, outputLogits: p.baseAddress, tolerance: 1e-10)))
            }
        }
        let cera = try ContinuousERA(targetEntropy: -0.5 * Double(cols), residual: 0.1, logStdMin: -8, logStdMax: 0,
                                     dim: Int64(cols))
        let cf: [Double] = try coreContinuousForward(cera, rows: rows, z)
        let cb = try coreContinuousBackward(cera, rows: rows, z, g)
        let cff: [Float] = try coreContinuousForward(cera, rows: rows, zf)
        let cbf = try coreContinuousBackward(cera, rows: rows, zf, gf)
        o.continuous += [bits(cf), bits(cb.grad), bits(cb.residual)]
        o.continuousF += [bits(cff), bits(cbf.grad), bits(cbf.residual)]

        var softmax = [Double](repeating: .nan, count: rows), gaussian = softmax, truncated = softmax
        var softmaxF = [Float](repeating: .nan, count: rows)
        try z.withUnsafeBufferPointer { zp in
            try cf.withUnsafeBufferPointer { lp in
                try Entropy.softmax(rows: rows, cols: cols, logits: zp.baseAddress!, out: &softmax)
                try Entropy.gaussian(rows: rows, dim: cols, logStd: lp.baseAddress!, out: &gaussian)
                try Entropy.truncatedNormal(rows: rows, dim: cols, loc: zp.baseAddress!, logStd: lp.baseAddress!,
                                            lo: -1, hi: 1, out: &truncated)
                o.reports.append(bits(try BoundCheck.continuous(cera, rows: rows, mean: nil, logStd: lp.baseAddress, tolerance: 1e-10)))
            }
        }
        try zf.withUnsafeBufferPointer { zp in
            try Entropy.softmax(rows: rows, cols: cols, logits: zp.baseAddress!, out: &softmaxF)
        }
        o.entropies += [bits(softmax), bits(gaussian), bits(truncated)]
        o.entropiesF += [bits(softmaxF)]
        return o
    }

    func testBitIdenticalForAnyThreadCount() throws {
        var rng = TestRandom(seed: 51)
        // 1200 x 250: every kernel below splits this into several blocks (checked), while the
        // whole test stays within a few seconds in a debug build.
        let rows = 1200, cols = 250
        let z = (0..<(rows * cols)).map { i in (i / cols % 3 == 0 ? 8 : 1) * rng.normal() }
        let g = (0..<(rows * cols)).map { _ in rng.normal() }
        let zf = z.map { Float($0) }, gf = g.map { Float($0) }

        try Threads.set(1)
        XCTAssertEqual(Threads.blockCount(rows: rows, workPerRow: cols), 1)
        let one = try runAll(rows: rows, cols: cols, z: z, g: g, zf: zf, gf: gf)
        try Threads.set(4)
        XCTAssertEqual(Threads.blockCount(rows: rows, workPerRow: cols * 4), 4, "the 4-thread run must really split")
        // The lightest kernel (Gaussian entropy, dim operations a row) splits too.
        XCTAssertGreaterThanOrEqual(Threads.blockCount(rows: rows, workPerRow: cols), 2)
        let four = try runAll(rows: rows, cols: cols, z: z, g: g, zf: zf, gf: gf)
        try Threads.set(0)

        XCTAssertTrue(one.discrete == four.discrete, "discrete Double differs between 1 and 4 threads")
        XCTAssertTrue(one.discreteF == four.discreteF, "discrete Float differs between 1 and 4 threads")
        XCTAssertTrue(one.continuous == four.continuous, "continuous Double differs")
        XCTAssertTrue(one.continuousF == four.continuousF, "continuous Float differs")
        XCTAssertTrue(one.entropies == four.entropies, "entropies differ")
        XCTAssertTrue(one.entropiesF == four.entropiesF, "Float entropies differ")
        XCTAssertEqual(one.reports, four.reports)
        // And the results are not trivially equal (NaN-free, something was written).
        XCTAssertFalse(one.discrete[0].contains(Double.nan.bitPattern))
        XCTAssertEqual(one.reports.first?.first, UInt64(rows))

        // tanh-Gaussian entropy and the squashed bound check (heavier per element): smaller input.
        let tr = 300, td = 8
        let mean = (0..<(tr * td)).map { _ in rng.normal() }
        let logStd = (0..<(tr * td)).map { _ in rng.uniform(-5, 1) }
        func tanhRun() throws -> ([UInt64], [UInt64]) {
            var out = [Double](repeating: .nan, count: tr)
            let era = try ContinuousERA(targetEntropy: -4, residual: 0, logStdMin: -8, logStdMax: 1, dim: Int64(td))
            var report = BoundReport(entropies: UnsafeBufferPointer(start: nil, count: 0), target: 0, tolerance: 0, floor: 0)
            try mean.withUnsafeBufferPointer { m in
                try logStd.withUnsafeBufferPointer { l in
                    try Entropy.tanhGaussian(rows: tr, dim: td, mean: m.baseAddress!, logStd: l.baseAddress!, out: &out)
                    report = try BoundCheck.continuous(era, rows: tr, mean: m.baseAddress, logStd: l.baseAddress, tolerance: 1e-10)
                }
            }
            return (bits(out), bits(report))
        }
        try Threads.set(1)
        let tanhOne = try tanhRun()
        try Threads.set(4)
        XCTAssertGreaterThan(Threads.blockCount(rows: tr, workPerRow: td * 64 * 4), 1)
        let tanhFour = try tanhRun()
        try Threads.set(0)
        XCTAssertEqual(tanhOne.0, tanhFour.0, "tanh-Gaussian entropies differ")
        XCTAssertEqual(tanhOne.1, tanhFour.1)
    }

    /// forEachRowBlock visits every row exactly once, in contiguous blocks, each block with its
    /// own scratch; the split follows Threads.blockCount.
    func testForEachRowBlockCoversRowsOnce() throws {
        for threads in [1, 3, 4, 7] {
            try Threads.set(threads)
            for (rows, work) in [(1, 1 << 20), (5, 1 << 20), (1000, 1 << 16), (1000, 1), (37, 1 << 17)] {
                let blocks = Threads.blockCount(rows: rows, workPerRow: work)
                XCTAssertEqual(blocks, Swift.max(1, Swift.min(threads, rows, rows * work / Threads.minimumWorkPerThread)))
                let visits = UnsafeMutablePointer<Int>.allocate(capacity: rows)
                let lower = UnsafeMutablePointer<Int>.allocate(capacity: rows)
                let upper = UnsafeMutablePointer<Int>.allocate(capacity: rows)
                let scratchAddress = UnsafeMutablePointer<Int>.allocate(capacity: rows)
                visits.initialize(repeating: 0, count: rows)
                defer { visits.deallocate(); lower.deallocate(); upper.deallocate(); scratchAddress.deallocate() }
                try forEachRowBlock(rows: rows, workPerRow: work, scratchPerBlock: 3) { range, scratch in
                    // Each block writes only its own rows, and all of its own scratch.
                    scratch![0] = 1
                    scratch![2] = 2
                    for r in range {
                        visits[r] += 1
                        lower[r] = range.lowerBound
                        upper[r] = range.upperBound
                        scratchAddress[r] = Int(bitPattern: scratch)
                    }
                }
                XCTAssertEqual(Array(UnsafeBufferPointer(start: visits, count: rows)), [Int](repeating: 1, count: rows),
                               "threads \(threads) rows \(rows)")
                // Contiguous blocks, each with a scratch of its own, as many as blockCount says.
                var starts = Set<Int>(), addresses = Set<Int>()
                for r in 0..<rows {
                    XCTAssertTrue(lower[r] <= r && r < upper[r])
                    starts.insert(lower[r])
                    addresses.insert(scratchAddress[r])
                    if r > 0 && lower[r] != lower[r - 1] { XCTAssertEqual(lower[r], upper[r - 1], "blocks are contiguous") }
                }
                XCTAssertEqual(starts.count, blocks, "threads \(threads) rows \(rows) work \(work)")
                XCTAssertEqual(addresses.count, blocks, "one scratch per block")
            }
        }
        try Threads.set(0)
        // No rows: the body is not called.
        var called = false
        try forEachRowBlock(rows: 0, workPerRow: 1) { _, _ in called = true }
        XCTAssertFalse(called)
        // Without scratch the body gets nil.
        try forEachRowBlock(rows: 3, workPerRow: 1) { _, scratch in XCTAssertNil(scratch) }
    }

    /// The cache of tight mode's solved C (TightConstantCache): threads constructing the
    /// activation with alternating parameters at once (so that writers race readers and each
    /// other) always get the C a fresh solve gives, bit for bit. Under ThreadSanitizer in
    /// Tests/sanitize.sh.
    func testTightConstantCacheAcrossThreads() throws {
        let settings: [(Double, Double, Int64)] = [(0.3, 4, 10), (0.31, 4, 10), (0.3, 5, 10), (0.3, 4, 11), (2.5, 20, 1000)]
        let solved = settings.map { h0, tau, d in
            try! DiscreteERA.solveTightConstant(targetEntropy: h0, tau: tau, classes: Double(d), up: Glibc.log(tau) / tau)
        }
        let rounds = 4000
        let mismatches = UnsafeMutablePointer<Int>.allocate(capacity: 8)
        mismatches.initialize(repeating: 0, count: 8)
        defer { mismatches.deallocate() }
        try Threads.set(4)
        Threads.forEachBlock(rows: 8, blocks: 4) { block, range in
            for r in 0..<rounds {
                let k = (r &* 7 &+ block &* 3) % settings.count
                let (h0, tau, d) = settings[k]
                let era = try! DiscreteERA(targetEntropy: h0, tau: tau, mode: 1, classes: d)
                if era.c.bitPattern != solved[k].bitPattern { mismatches[range.lowerBound] += 1 }
            }
        }
        try Threads.set(0)
        XCTAssertEqual((0..<8).reduce(0) { $0 + mismatches[$1] }, 0)
        // One thread, alternating: every construction still equals a solve.
        for r in 0..<50 {
            let k = r % settings.count
            let (h0, tau, d) = settings[k]
            XCTAssertEqual(try DiscreteERA(targetEntropy: h0, tau: tau, mode: 1, classes: d).c.bitPattern, solved[k].bitPattern)
        }
    }

    func testScratch() throws {
        let empty = try Scratch(blocks: 4, perBlock: 0)
        XCTAssertNil(empty.base)
        let some = try Scratch(blocks: 3, perBlock: 5)
        XCTAssertNotNil(some.base)
        XCTAssertEqual(some.block(2) - some.block(0), 10)
        XCTAssertEqual(coreCapture { () throws(ERAError) in _ = try Scratch(blocks: Int.max, perBlock: 2) }, .allocation)
        XCTAssertEqual(coreCapture { () throws(ERAError) in _ = try Scratch(blocks: 1, perBlock: Int.max / 4) }, .allocation)
    }
}
