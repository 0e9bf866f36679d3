// The pieces of the fused linear heads (LinearHeads.swift) that the C tests cannot reach: the
// merge of softmax statistics across chunks, the tiling, and the magnitude scan. The heads
// themselves are tested through the C ABI (Tests/c/test_linear.c) against float64 references.
import XCTest
@testable import ERACore

final class LinearHeadTests: XCTestCase {
    /// Statistics of two halves merged equal those of the whole row streamed at once, also when
    /// the halves' maxima are far apart (the clamped shift) or one half is empty.
    func testMergedStatisticsEqualOneStream() {
        var random = TestRandom(seed: 7)
        let cases: [[Double]] = [
            (0..<1000).map { _ in random.uniform(-5, 5) },
            [1e30, 0, -3, 1e30 - 1e15, 2],
            [-2000, -1999, 5, 4],
            [3, 1],
        ]
        for values in cases {
            var whole = OnlineSoftmax()
            for v in values { whole.add(v) }
            for split in 0...values.count {
                var left = OnlineSoftmax(), right = OnlineSoftmax()
                for v in values[..<split] { left.add(v) }
                for v in values[split...] { right.add(v) }
                for merged in [left.merged(with: right), right.merged(with: left)] {
                    XCTAssertEqual(merged.maximum, whole.maximum)
                    XCTAssertEqual(merged.sumExp, whole.sumExp, accuracy: 1e-13 * whole.sumExp)
                    XCTAssertEqual(merged.entropy, whole.entropy, accuracy: 1e-12 * max(1, whole.entropy))
                }
            }
        }
    }

    /// Blocks, chunks and groups cover every token and vocabulary entry once, in order.
    func testTilingCoversEverythingOnce() {
        for (tokens, vocab) in [(1, 1), (128, 2048), (129, 2049), (300, 34819), (5, 151936)] {
            let tiling = LogitTiling(tokens: tokens, vocab: vocab, dim: 3)
            XCTAssertEqual((0..<tiling.blocks).map { tiling.tokenRange(block: $0).count }.reduce(0, +), tokens)
            var next = 0
            for group in 0..<tiling.groups {
                let chunks = tiling.chunkRange(group: group)
                XCTAssertFalse(chunks.isEmpty)
                for chunk in chunks {
                    XCTAssertEqual(tiling.vocabRange(chunk: chunk).lowerBound, next)
                    next = tiling.vocabRange(chunk: chunk).upperBound
                }
            }
            XCTAssertEqual(next, vocab)
            XCTAssertLessThanOrEqual(tiling.groups, LogitTiling.maximumGroups)
        }
    }

    /// The scan finds the largest magnitude at any position and refuses NaN and infinities.
    func testLargestMagnitude() {
        for count in [1, 7, 8, 9, 33] {
            for position in 0..<count {
                var values = [Float](repeating: 0.5, count: count)
                values[position] = -3
                XCTAssertEqual(values.withUnsafeBufferPointer { LinearHeads.largestMagnitude($0.baseAddress!, count: count) }, 3)
                for bad in [Float.nan, .infinity, -.infinity] {
                    values[position] = bad
                    XCTAssertNil(values.withUnsafeBufferPointer { LinearHeads.largestMagnitude($0.baseAddress!, count: count) })
                }
            }
        }
    }
}
