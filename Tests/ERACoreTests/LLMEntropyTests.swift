// LLM ERA (math 3): token entropies, the streaming softmax behind them, and response entropies,
// against the float64 references of LLMReference.swift.
import XCTest
@testable import ERACore
#if canImport(Glibc)
import Glibc
#endif

private let llmDefaultParameters = try! LLMParameters(omegaLow: 0.45, omegaHigh: 3.0, k: 2.0, topFraction: 0.2,
                                                      scaleAdvantages: true)

/// Checks a float32 token-entropy output against the reference of the same logits (given as
/// Double) to 1e-6 abs/rel; returns the worst error.
@discardableResult
private func llmCheckFloatEntropies(_ out: [Float], _ logits: [Double], tokens: Int, vocab: Int,
                                    file: StaticString = #filePath, line: UInt = #line) -> Double {
    var worst = 0.0
    for t in 0..<tokens {
        let expected = llmReferenceRow(llmRow(logits, t, vocab))!.entropy
        let error = llmMixedError(Double(out[t]), expected)
        worst = max(worst, error)
        XCTAssertLessThanOrEqual(error, 1e-6, "token \(t): got \(out[t]), expected \(expected)", file: file, line: line)
        XCTAssertGreaterThanOrEqual(out[t], 0, file: file, line: line)
    }
    return worst
}

final class LLMTokenEntropyTests: XCTestCase {
    func testFloatLogitsAgainstReference() {
        var rng = TestRandom(seed: 1)
        let tokens = 30, vocab = 1000
        var logits = llmRandomLogits(tokens: tokens, vocab: vocab, spreads: [0.05, 0.5, 1, 3, 10, 40], rng: &rng)
        // A few rows with masks.
        let masked = llmRandomLogits(tokens: 6, vocab: vocab, spreads: [1, 5], maskShare: 0.4, rng: &rng)
        logits.replaceSubrange(0..<(6 * vocab), with: masked)
        let floats = logits.map { Float($0) }
        let exact = floats.map { Double($0) }
        var out = [Float](repeating: .nan, count: tokens)
        XCTAssertNil(llmTokenEntropy(floats, tokens: tokens, vocab: vocab, &out))
        let worst = llmCheckFloatEntropies(out, exact, tokens: tokens, vocab: vocab)
        print("LLM worst token entropy error, f32 logits, V=1000: \(worst)")
    }

    func testDoubleLogitsAgainstReference() {
        var rng = TestRandom(seed: 2)
        let tokens = 30, vocab = 1000
        var logits = llmRandomLogits(tokens: tokens, vocab: vocab, spreads: [0.05, 0.5, 1, 3, 10, 40], rng: &rng)
        let masked = llmRandomLogits(tokens: 6, vocab: vocab, spreads: [1, 5], maskShare: 0.4, rng: &rng)
        logits.replaceSubrange(0..<(6 * vocab), with: masked)
        var out = [Double](repeating: .nan, count: tokens)
        XCTAssertNil(llmTokenEntropy(logits, tokens: tokens, vocab: vocab, &out))
        var worstRelative = 0.0
        for t in 0..<tokens {
            let expected = llmReferenceRow(llmRow(logits, t, vocab))!.entropy
            let error = abs(out[t] - expected)
            XCTAssertLessThanOrEqual(error, 1e-12 * expected + 1e-15, "token \(t): \(out[t]) vs \(expected)")
            if expected > 1e-3 { worstRelative = max(worstRelative, error / expected) }
        }
        print("LLM worst token entropy relative error, f64 logits, V=1000: \(worstRelative)")
    }

    func testBFloat16LogitsAgainstReference() {
        var rng = TestRandom(seed: 3)
        let tokens = 24, vocab = 1500
        let logits = llmRandomLogits(tokens: tokens, vocab: vocab, spreads: [0.3, 1, 4, 12], maskShare: 0.1, rng: &rng)
        let bits = logits.map { llmBF16Truncating($0) }
        let exact = bits.map { llmBF16Value($0) }
        let bf16 = bits.map { BFloat16(bitPattern: $0) }
        var out = [Float](repeating: .nan, count: tokens)
        XCTAssertNil(llmTokenEntropy(bf16, tokens: tokens, vocab: vocab, &out))
        let worst = llmCheckFloatEntropies(out, exact, tokens: tokens, vocab: vocab)
        print("LLM worst token entropy error, bf16 logits, V=1500: \(worst)")
    }

    /// A Qwen-sized vocabulary, a few rows per type.
    func testVocabulary151936() {
        var rng = TestRandom(seed: 4)
        let tokens = 3, vocab = 151_936
        let logits = llmRandomLogits(tokens: tokens, vocab: vocab, spreads: [1.5, 4, 0.2], maskShare: 0.05, rng: &rng)

        let floats = logits.map { Float($0) }
        var outFloat = [Float](repeating: .nan, count: tokens)
        XCTAssertNil(llmTokenEntropy(floats, tokens: tokens, vocab: vocab, &outFloat))
        let worstFloat = llmCheckFloatEntropies(outFloat, floats.map { Double($0) }, tokens: tokens, vocab: vocab)

        let bits = logits.map { llmBF16Truncating($0) }
        var outBF16 = [Float](repeating: .nan, count: tokens)
        XCTAssertNil(llmTokenEntropy(bits.map { BFloat16(bitPattern: $0) }, tokens: tokens, vocab: vocab, &outBF16))
        let worstBF16 = llmCheckFloatEntropies(outBF16, bits.map { llmBF16Value($0) }, tokens: tokens, vocab: vocab)

        var outDouble = [Double](repeating: .nan, count: tokens)
        XCTAssertNil(llmTokenEntropy(logits, tokens: tokens, vocab: vocab, &outDouble))
        var worstDouble = 0.0
        for t in 0..<tokens {
            let expected = llmReferenceRow(llmRow(logits, t, vocab))!.entropy
            let relative = abs(outDouble[t] - expected) / expected
            worstDouble = max(worstDouble, relative)
            XCTAssertLessThanOrEqual(relative, 1e-12, "token \(t): \(outDouble[t]) vs \(expected)")
        }
        print("LLM worst token entropy error, V=151936: f32 \(worstFloat), bf16 \(worstBF16), f64 rel \(worstDouble)")
    }

    func testMaskedRows() {
        let vocab = 9
        let ninf = -Double.infinity
        let rows: [[Double]] = [
            [ninf, 1, 2, ninf, 3, ninf, 0.5, ninf, ninf],           // some masked
            [ninf, ninf, ninf, ninf, ninf, ninf, ninf, ninf, 4.25],  // all but the last
            [-7.5, ninf, ninf, ninf, ninf, ninf, ninf, ninf, ninf],  // all but the first
            [ninf, ninf, ninf, 1e4, ninf, ninf, ninf, ninf, ninf],   // all but one, large
            [ninf, 2, 2, ninf, 2, ninf, ninf, ninf, ninf],           // three ties, rest masked
            [ninf, ninf, ninf, ninf, ninf, ninf, ninf, -3, -3],      // two ties
        ]
        let logits = rows.flatMap { $0 }
        let tokens = rows.count
        let expected = rows.map { llmReferenceRow($0)!.entropy }
        XCTAssertEqual(expected[1], 0)
        XCTAssertEqual(expected[4], log(3), accuracy: 1e-15)

        var outDouble = [Double](repeating: .nan, count: tokens)
        XCTAssertNil(llmTokenEntropy(logits, tokens: tokens, vocab: vocab, &outDouble))
        var outFloat = [Float](repeating: .nan, count: tokens)
        XCTAssertNil(llmTokenEntropy(logits.map { Float($0) }, tokens: tokens, vocab: vocab, &outFloat))
        var outBF16 = [Float](repeating: .nan, count: tokens)
        let bf16 = logits.map { BFloat16(bitPattern: llmBF16Truncating($0)) }  // all exact in bf16
        XCTAssertNil(llmTokenEntropy(bf16, tokens: tokens, vocab: vocab, &outBF16))
        for t in 0..<tokens {
            XCTAssertEqual(outDouble[t], expected[t], accuracy: 1e-12 * expected[t] + 1e-15, "row \(t)")
            XCTAssertLessThanOrEqual(llmMixedError(Double(outFloat[t]), expected[t]), 1e-6, "row \(t)")
            XCTAssertLessThanOrEqual(llmMixedError(Double(outBF16[t]), expected[t]), 1e-6, "row \(t)")
        }
        // A single unmasked logit is a one-hot distribution: exactly zero.
        for t in 1...3 {
            XCTAssertEqual(outDouble[t], 0)
            XCTAssertEqual(outFloat[t], 0)
            XCTAssertEqual(outBF16[t], 0)
        }
    }

    func testHugeMagnitudesDouble() {
        let rows: [([Double], Double)] = [
            ([1e30, -1e30, 1e30, 0.5], log(2)),
            ([-1e30, 1e30], 0),                      // the max jumps by 2e30
            ([1e30, -1e30], 0),
            ([-1e30, -1e30, -1e30, -1e30], log(4)),
            ([-1e30, 1e30, 1e30 - 1e15, 1e30], log(2)),
            ([3, -1e30, 4, -1e30], log1p(exp(-1.0)) + exp(-1.0) / (1 + exp(-1.0))),
        ]
        for (row, expected) in rows {
            XCTAssertEqual(llmReferenceRow(row)!.entropy, expected, accuracy: 1e-15)
            var out = [Double](repeating: .nan, count: 1)
            XCTAssertNil(llmTokenEntropy(row, tokens: 1, vocab: row.count, &out))
            XCTAssertEqual(out[0], expected, accuracy: 1e-12 * expected + 1e-15, "\(row)")
        }
    }

    /// Finite Double logits whose differences overflow to -inf (|z| near Double.greatestFiniteMagnitude)
    /// are legitimate input: the entropy is that of the rows' maxima, here two ties.
    func testDoubleLogitsNearOverflow() {
        let big = 1.7e308
        let rows: [([Double], Double)] = [
            ([-big, big, big], log(2)),
            ([big, -big, big], log(2)),
            ([-big, -big, big, 0, big], log(2)),
            ([-Double.greatestFiniteMagnitude, Double.greatestFiniteMagnitude], 0),
        ]
        for (row, expected) in rows {
            XCTAssertEqual(llmReferenceRow(row)!.entropy, expected)
            var out = [Double](repeating: .nan, count: 1)
            XCTAssertNil(llmTokenEntropy(row, tokens: 1, vocab: row.count, &out))
            XCTAssertEqual(out[0], expected, accuracy: 1e-12, "row \(row)")
        }
    }

    func testHugeMagnitudesFloat() {
        let rows: [([Float], Double)] = [
            ([3e38, -3e38, 3e38, 1], log(2)),
            ([-3e38, 3e38], 0),
            ([-3e38, -3e38, -3e38, -3e38], log(4)),
            ([-Float.greatestFiniteMagnitude, Float.greatestFiniteMagnitude, 0], 0),
            ([Float.greatestFiniteMagnitude, Float.greatestFiniteMagnitude, -3e38], log(2)),
        ]
        for (row, expected) in rows {
            XCTAssertEqual(llmReferenceRow(row.map { Double($0) })!.entropy, expected, accuracy: 1e-15)
            var out = [Float](repeating: .nan, count: 1)
            XCTAssertNil(llmTokenEntropy(row, tokens: 1, vocab: row.count, &out))
            XCTAssertLessThanOrEqual(llmMixedError(Double(out[0]), expected), 1e-6, "\(row) -> \(out[0])")
        }
        // bfloat16: the largest finite values, 0x7F7F and 0xFF7F.
        let bf16: [BFloat16] = [0x7F7F, 0xFF7F, 0x7F7F, 0x3F80].map { BFloat16(bitPattern: $0) }
        var out = [Float](repeating: .nan, count: 1)
        XCTAssertNil(llmTokenEntropy(bf16, tokens: 1, vocab: 4, &out))
        XCTAssertLessThanOrEqual(llmMixedError(Double(out[0]), log(2)), 1e-6)
    }

    func testTies() {
        let vocab = 4096
        var allEqual = [Double](repeating: 3.75, count: vocab)
        var out = [Double](repeating: .nan, count: 1)
        XCTAssertNil(llmTokenEntropy(allEqual, tokens: 1, vocab: vocab, &out))
        XCTAssertEqual(out[0], log(Double(vocab)), accuracy: 1e-12 * log(Double(vocab)))
        var outFloat = [Float](repeating: .nan, count: 1)
        XCTAssertNil(llmTokenEntropy(allEqual.map { Float($0) }, tokens: 1, vocab: vocab, &outFloat))
        XCTAssertLessThanOrEqual(llmMixedError(Double(outFloat[0]), log(Double(vocab))), 1e-6)

        // Many duplicates at a few levels, the maximum repeated.
        var rng = TestRandom(seed: 5)
        let levels: [Double] = [-2, 0, 0.5, 1.25, 1.25]
        for i in 0..<vocab { allEqual[i] = levels[rng.int(levels.count)] }
        let expected = llmReferenceRow(allEqual)!.entropy
        XCTAssertNil(llmTokenEntropy(allEqual, tokens: 1, vocab: vocab, &out))
        XCTAssertEqual(out[0], expected, accuracy: 1e-12 * expected)
        XCTAssertNil(llmTokenEntropy(allEqual.map { Float($0) }, tokens: 1, vocab: vocab, &outFloat))
        XCTAssertLessThanOrEqual(llmMixedError(Double(outFloat[0]), expected), 1e-6)
        let bf16 = allEqual.map { BFloat16(bitPattern: llmBF16Truncating($0)) }
        XCTAssertNil(llmTokenEntropy(bf16, tokens: 1, vocab: vocab, &outFloat))
        XCTAssertLessThanOrEqual(llmMixedError(Double(outFloat[0]), expected), 1e-6)
    }

    func testVocabularyOfOneHasZeroEntropy() {
        let values: [Double] = [0, -1e30, 1e30, 3.5, -12]
        var outDouble = [Double](repeating: .nan, count: values.count)
        XCTAssertNil(llmTokenEntropy(values, tokens: values.count, vocab: 1, &outDouble))
        XCTAssertEqual(outDouble, [Double](repeating: 0, count: values.count))
        let floats: [Float] = [0, -3e38, 3e38, 3.5, -12]
        var outFloat = [Float](repeating: .nan, count: floats.count)
        XCTAssertNil(llmTokenEntropy(floats, tokens: floats.count, vocab: 1, &outFloat))
        XCTAssertEqual(outFloat, [Float](repeating: 0, count: floats.count))
        let bf16 = floats.map { BFloat16(bitPattern: llmBF16Truncating(Double($0))) }
        outFloat = [Float](repeating: .nan, count: floats.count)
        XCTAssertNil(llmTokenEntropy(bf16, tokens: floats.count, vocab: 1, &outFloat))
        XCTAssertEqual(outFloat, [Float](repeating: 0, count: floats.count))
    }

    /// Near one-hot float64 rows through the streaming pass (portable kernels, blocks of 64):
    /// the top logit in any block, flat rows of other logits g below it. With r = (V - 1) e^-g
    /// the entropy is log1p(r) + g r / (1 + r); within 4e-15 + 1.2e-16 g relative
    /// (docs/math.md 5), where a sum S = 1 + r rounded to double lost 1/41 of it at g = 40.
    func testNearOneHotDoubleRows() {
        for vocab in [2, 64, 65, 1000] {
            for gap in [10.0, 36, 40, 60, 300] {
                for top in Set([0, vocab / 2, vocab - 1]) {
                    var row = [Double](repeating: -3, count: vocab)
                    row[top] = gap - 3
                    var out = [Double](repeating: .nan, count: 1)
                    XCTAssertNil(llmTokenEntropy(row, tokens: 1, vocab: vocab, &out))
                    let r = Double(vocab - 1) * Glibc.exp(-gap)
                    let want = Glibc.log1p(r) + gap * r / (1 + r)
                    XCTAssertEqual(out[0], want, accuracy: (4e-15 + 1.2e-16 * gap) * want, "vocab \(vocab), gap \(gap), top at \(top)")
                }
            }
        }
    }

    func testZeroTokensWritesNothing() {
        var out: [Float] = [42]
        XCTAssertNil(llmTokenEntropy([Float(1)], tokens: 0, vocab: 1, &out))
        XCTAssertEqual(out, [42])
    }
}

final class LLMOnlineSoftmaxTests: XCTestCase {
    private func check(_ values: [Double], _ name: String, file: StaticString = #filePath, line: UInt = #line) {
        var online = OnlineSoftmax()
        for v in values { online.add(v) }
        let reference = llmReferenceRow(values)!
        XCTAssertTrue(online.isValid, name, file: file, line: line)
        XCTAssertEqual(online.maximum, reference.maximum, name, file: file, line: line)
        XCTAssertEqual(online.sumExp, reference.sumExp, accuracy: 1e-13 * reference.sumExp, name, file: file, line: line)
        XCTAssertEqual(online.logSumExp, reference.logSumExp, accuracy: 1e-13 * max(1, abs(reference.logSumExp)),
                       name, file: file, line: line)
        XCTAssertEqual(online.entropy, reference.entropy, accuracy: 1e-12 * reference.entropy + 1e-15,
                       name, file: file, line: line)
    }

    func testIncreasingValuesMaximumGrowsEveryStep() {
        check((0..<500).map { -30 + 0.37 * Double($0) }, "increasing, small steps")
        check((0..<300).map { 1e-3 * Double($0) }, "increasing, tiny steps")
        check((0..<40).map { 60 * Double($0) }, "increasing, steps beyond exp range")
        check((0..<40).map { -1e4 + 7 * Double($0) }, "increasing, mid steps")
    }

    func testDecreasingValues() {
        check((0..<500).map { 30 - 0.37 * Double($0) }, "decreasing")
        check((0..<40).map { -60 * Double($0) }, "decreasing, large steps")
    }

    func testRandomValues() {
        var rng = TestRandom(seed: 6)
        for spread in [0.01, 1.0, 5.0, 50.0] {
            var values = (0..<5000).map { _ in spread * rng.normal() }
            for i in stride(from: 0, to: values.count, by: 17) { values[i] = -.infinity }
            values[0] = -.infinity  // a masked value first
            check(values, "random, spread \(spread)")
        }
    }

    /// A finite jump of the maximum so large that the difference overflows (-1.7e308 then
    /// 1.7e308): the old terms vanish and the statistics must stay finite.
    func testMaximumJumpBeyondDoubleRange() {
        var online = OnlineSoftmax()
        online.add(-1.7e308)
        online.add(1.7e308)
        XCTAssertEqual(online.maximum, 1.7e308)
        XCTAssertEqual(online.sumExp, 1)
        XCTAssertTrue(online.sumShiftedTimesExp.isFinite, "sum (v - m) e^(v - m) = \(online.sumShiftedTimesExp)")
        online.add(1.7e308)
        XCTAssertEqual(online.sumExp, 2)
        XCTAssertEqual(online.entropy, log(2), accuracy: 1e-15)
    }

    func testAllMaskedIsInvalid() {
        var empty = OnlineSoftmax()
        XCTAssertFalse(empty.isValid)
        for _ in 0..<100 { empty.add(-.infinity) }
        XCTAssertFalse(empty.isValid)
        XCTAssertEqual(empty.sumExp, 0)
        empty.add(-2.5)
        XCTAssertTrue(empty.isValid)
        XCTAssertEqual(empty.logSumExp, -2.5)
        XCTAssertEqual(empty.entropy, 0)
        empty.add(-.infinity)
        XCTAssertEqual(empty.logSumExp, -2.5)
        XCTAssertEqual(empty.entropy, 0)
    }
}

final class LLMResponseEntropyTests: XCTestCase {
    func testInterleavedRandomResponses() throws {
        var rng = TestRandom(seed: 7)
        let lengths = [1, 2, 4, 5, 10, 23, 0, 57, 3, 14, 15]
        let responses = lengths.count
        var ids: [Int64] = []
        var entropies: [Float] = []
        for (b, length) in lengths.enumerated() {
            for _ in 0..<length {
                ids.append(Int64(b))
                // Response 7 draws from few levels, so that it holds many ties.
                entropies.append(b == 7 ? Float([0.5, 1.0, 2.0][rng.int(3)]) : Float(rng.uniform(0, 6)))
            }
        }
        // Tokens of no response, some with values the kernel must not read.
        for i in 0..<20 {
            ids.append(-1)
            entropies.append([Float.nan, .infinity, -.infinity, 100, -5][i % 5])
        }
        // Shuffle (Fisher-Yates).
        for i in stride(from: ids.count - 1, to: 0, by: -1) {
            let j = rng.int(i + 1)
            ids.swapAt(i, j)
            entropies.swapAt(i, j)
        }
        for topFraction in [0.2, 0.5, 1.0, 0.05] {
            let parameters = try LLMParameters(omegaLow: 0.45, omegaHigh: 3, k: 2, topFraction: topFraction,
                                               scaleAdvantages: true)
            let expected = llmReferenceResponseEntropy(tokenEntropy: entropies, responseId: ids, responses: responses,
                                                       topFraction: topFraction)
            var out = [Float](repeating: -7, count: responses)
            XCTAssertNil(llmResponseEntropy(parameters, tokenEntropy: entropies, responseId: ids,
                                            responses: responses, tokens: ids.count, &out))
            for b in 0..<responses {
                if lengths[b] == 0 {
                    XCTAssertTrue(out[b].isNaN, "empty response \(b) must be NaN")
                } else {
                    XCTAssertEqual(out[b], expected[b], accuracy: expected[b].ulp, "response \(b), top \(topFraction)")
                }
            }
        }
    }

    func testShortResponsesWithTopFractionOneFifth() {
        // Known answers: n = max(1, floor(0.2*L)).
        let responsesValues: [[Float]] = [
            [0.7],                              // L=1: n=1
            [0.3, 0.9],                         // L=2: n=1
            [0.5, 2.5, 1.0, 2.0],               // L=4: n=1
            [0.1, 0.2, 3.0, 0.4, 0.5],          // L=5: n=1
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],    // L=10: n=2
            [5, 3, 3, 3, 3, 1, 1, 1, 1, 1],     // L=10: n=2, a tie at the cut
            [2, 2, 2, 1, 1, 1, 1, 1, 1, 1],     // L=10: ties
            (1...15).map { Float($0) },         // L=15: n=3
            (1...14).reversed().map { Float($0) },  // L=14: n=floor(2.8)=2
        ]
        let expected: [Float] = [0.7, 0.9, 2.5, 3.0, 9.5, 4, 2, 14, 13.5]
        // Interleave round-robin.
        var ids: [Int64] = []
        var entropies: [Float] = []
        let longest = responsesValues.map(\.count).max()!
        for i in 0..<longest {
            for (b, values) in responsesValues.enumerated() where i < values.count {
                ids.append(Int64(b))
                entropies.append(values[i])
                if i % 3 == 0 {
                    ids.append(-1)
                    entropies.append(.nan)
                }
            }
        }
        var out = [Float](repeating: -7, count: expected.count)
        XCTAssertNil(llmResponseEntropy(llmDefaultParameters, tokenEntropy: entropies, responseId: ids,
                                        responses: expected.count, tokens: ids.count, &out))
        XCTAssertEqual(out, expected)
    }

    func testTopFractionOneIsTheMean() throws {
        let parameters = try LLMParameters(omegaLow: 0.45, omegaHigh: 3, k: 2, topFraction: 1, scaleAdvantages: false)
        let entropies: [Float] = [1, 2, 4, 0.5, 0.25, 3]
        let ids: [Int64] = [0, 1, 0, 1, 1, 0]
        var out = [Float](repeating: -7, count: 2)
        XCTAssertNil(llmResponseEntropy(parameters, tokenEntropy: entropies, responseId: ids, responses: 2,
                                        tokens: ids.count, &out))
        XCTAssertEqual(out, [Float((1.0 + 4 + 3) / 3), Float((2 + 0.5 + 0.25) / 3.0)])
    }

    func testZeroTokensGivesNaNForEveryResponse() {
        var out = [Float](repeating: -7, count: 3)
        XCTAssertNil(llmResponseEntropy(llmDefaultParameters, tokenEntropy: nil, responseId: nil, responses: 3,
                                        tokens: 0, &out))
        XCTAssertTrue(out.allSatisfy(\.isNaN))
        // Tokens only of no response: the same.
        out = [Float](repeating: -7, count: 3)
        XCTAssertNil(llmResponseEntropy(llmDefaultParameters, tokenEntropy: [1, 2], responseId: [-1, -1],
                                        responses: 3, tokens: 2, &out))
        XCTAssertTrue(out.allSatisfy(\.isNaN))
    }

    func testZeroResponses() {
        var out: [Float] = [-7]
        XCTAssertNil(llmResponseEntropy(llmDefaultParameters, tokenEntropy: [1, .nan], responseId: [-1, -1],
                                        responses: 0, tokens: 2, &out))
        XCTAssertEqual(out, [-7])
        XCTAssertNil(llmResponseEntropy(llmDefaultParameters, tokenEntropy: [1, .nan], responseId: [-1, -1],
                                        responses: 0, tokens: 2, &out, passOut: false))
        XCTAssertNil(llmResponseEntropy(llmDefaultParameters, tokenEntropy: nil, responseId: nil,
                                        responses: 0, tokens: 0, &out, passOut: false))
        // With zero responses, any id but -1 is out of range.
        XCTAssertEqual(llmResponseEntropy(llmDefaultParameters, tokenEntropy: [1], responseId: [0],
                                          responses: 0, tokens: 1, &out), .badIndex)
        XCTAssertEqual(out, [-7])
    }
}
