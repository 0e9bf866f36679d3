// LLM ERA (math 3) errors: each bad input is reported with its error and leaves every output
// exactly as it was (outputs are pre-filled with a sentinel and compared bit for bit).
import XCTest
@testable import ERACore

private let llmSentinel: Float = -123.5
private let llmTokens = 3
private let llmVocab = 50

/// 3 x 50 logits, finite, in Double.
private func llmBaseLogits() -> [Double] {
    var rng = TestRandom(seed: 30)
    return llmRandomLogits(tokens: llmTokens, vocab: llmVocab, spreads: [1, 3], rng: &rng)
}

private let llmBaseLabels: [Int64] = [4, 17, 49]

/// The logit corruptions that make a row invalid, with the error they must give.
private let llmBadLogits: [(String, ([Double]) -> [Double])] = [
    ("NaN in the last row's last logit", { var z = $0; z[z.count - 1] = .nan; return z }),
    ("+inf logit", { var z = $0; z[7] = .infinity; return z }),
    ("+inf in the last row", { var z = $0; z[2 * llmVocab + 3] = .infinity; return z }),
    ("fully masked row", { var z = $0; for i in llmVocab..<(2 * llmVocab) { z[i] = -.infinity }; return z }),
]

final class LLMErrorTests: XCTestCase {
    // MARK: token entropy

    func testTokenEntropyNonFiniteLeavesOutputUntouched() {
        for (name, corrupt) in llmBadLogits {
            let logits = corrupt(llmBaseLogits())
            var outFloat = [Float](repeating: llmSentinel, count: llmTokens)
            XCTAssertEqual(llmTokenEntropy(logits.map { Float($0) }, tokens: llmTokens, vocab: llmVocab, &outFloat),
                           .nonFinite, "f32: \(name)")
            XCTAssertEqual(llmBits(outFloat), llmBits([Float](repeating: llmSentinel, count: llmTokens)), "f32: \(name)")

            var outDouble = [Double](repeating: Double(llmSentinel), count: llmTokens)
            XCTAssertEqual(llmTokenEntropy(logits, tokens: llmTokens, vocab: llmVocab, &outDouble), .nonFinite,
                           "f64: \(name)")
            XCTAssertEqual(outDouble, [Double](repeating: Double(llmSentinel), count: llmTokens), "f64: \(name)")

            // bfloat16: NaN as 0x7FC0, +inf as 0x7F80, -inf as 0xFF80.
            let bf16 = logits.map { BFloat16(bitPattern: $0.isNaN ? 0x7FC0 : llmBF16Truncating($0)) }
            var outBF16 = [Float](repeating: llmSentinel, count: llmTokens)
            XCTAssertEqual(llmTokenEntropy(bf16, tokens: llmTokens, vocab: llmVocab, &outBF16), .nonFinite,
                           "bf16: \(name)")
            XCTAssertEqual(llmBits(outBF16), llmBits([Float](repeating: llmSentinel, count: llmTokens)), "bf16: \(name)")
        }
    }

    // MARK: forward and backward

    /// Every way the forward and backward passes must refuse their input, as
    /// (name, logits, labels, scales, grad, error).
    private func badPassInputs() -> [(String, [Double], [Int64], [Float]?, [Float], ERAError)] {
        let z = llmBaseLogits()
        let labels = llmBaseLabels
        let scales: [Float] = [1, 2, 0.5]
        let grad: [Float] = [1, -0.5, 2]
        var cases: [(String, [Double], [Int64], [Float]?, [Float], ERAError)] = []
        for (name, corrupt) in llmBadLogits {
            cases.append((name, corrupt(z), labels, scales, grad, .nonFinite))
            cases.append((name + ", no scales", corrupt(z), labels, nil, grad, .nonFinite))
        }
        cases.append(("label -1", z, [4, 17, -1], scales, grad, .badIndex))
        cases.append(("label == vocab", z, [4, 17, Int64(llmVocab)], scales, grad, .badIndex))
        cases.append(("label huge", z, [Int64.max, 17, 49], nil, grad, .badIndex))
        var maskedLabel = z
        maskedLabel[2 * llmVocab + 49] = -.infinity
        cases.append(("label at a -inf logit", maskedLabel, labels, scales, grad, .badIndex))
        cases.append(("scale 0", z, labels, [1, 2, 0], grad, .badParameter))
        cases.append(("scale -0", z, labels, [1, -0.0, 1], grad, .badParameter))
        cases.append(("scale negative", z, labels, [-1, 2, 1], grad, .badParameter))
        cases.append(("scale NaN", z, labels, [1, 2, .nan], grad, .nonFinite))
        cases.append(("scale +inf", z, labels, [1, .infinity, 1], grad, .nonFinite))
        return cases
    }

    func testForwardErrorsLeaveOutputsUntouched() {
        let sentinels = llmBits([Float](repeating: llmSentinel, count: llmTokens))
        for (name, logits, labels, scales, _, error) in badPassInputs() {
            var logp = [Float](repeating: llmSentinel, count: llmTokens)
            var entropy = [Float](repeating: llmSentinel, count: llmTokens)
            XCTAssertEqual(llmForward(logits.map { Float($0) }, tokens: llmTokens, vocab: llmVocab, labels: labels,
                                      scales: scales, logprob: &logp, entropy: &entropy), error, "f32: \(name)")
            XCTAssertEqual(llmBits(logp), sentinels, "f32: \(name)")
            XCTAssertEqual(llmBits(entropy), sentinels, "f32: \(name)")

            let bf16 = logits.map { BFloat16(bitPattern: $0.isNaN ? 0x7FC0 : llmBF16Truncating($0)) }
            XCTAssertEqual(llmForward(bf16, tokens: llmTokens, vocab: llmVocab, labels: labels, scales: scales,
                                      logprob: &logp, entropy: &entropy), error, "bf16: \(name)")
            XCTAssertEqual(llmBits(logp), sentinels, "bf16: \(name)")
            XCTAssertEqual(llmBits(entropy), sentinels, "bf16: \(name)")
        }
    }

    func testBackwardErrorsLeaveOutputsUntouched() {
        var cases = badPassInputs()
        let z = llmBaseLogits()
        cases.append(("grad NaN", z, llmBaseLabels, nil, [1, 1, .nan], .nonFinite))
        cases.append(("grad +inf", z, llmBaseLabels, [1, 2, 0.5], [.infinity, 1, 1], .nonFinite))
        cases.append(("grad -inf", z, llmBaseLabels, [1, 2, 0.5], [1, -.infinity, 1], .nonFinite))
        let count = llmTokens * llmVocab
        for (name, logits, labels, scales, grad, error) in cases {
            let floats = logits.map { Float($0) }
            var out = [Float](repeating: llmSentinel, count: count)
            XCTAssertEqual(llmBackward(floats, tokens: llmTokens, vocab: llmVocab, labels: labels, scales: scales,
                                       grad: grad, &out), error, "f32: \(name)")
            XCTAssertEqual(llmBits(out), llmBits([Float](repeating: llmSentinel, count: count)), "f32: \(name)")
            // In place: the logits must survive the refused call.
            var buffer = floats
            XCTAssertEqual(llmBackwardInPlace(&buffer, tokens: llmTokens, vocab: llmVocab, labels: labels,
                                              scales: scales, grad: grad), error, "f32 in place: \(name)")
            XCTAssertEqual(llmBits(buffer), llmBits(floats), "f32 in place: \(name)")

            let bf16 = logits.map { BFloat16(bitPattern: $0.isNaN ? 0x7FC0 : llmBF16Truncating($0)) }
            let bf16Sentinel = BFloat16(bitPattern: 0x1234)
            var outB = [BFloat16](repeating: bf16Sentinel, count: count)
            XCTAssertEqual(llmBackward(bf16, tokens: llmTokens, vocab: llmVocab, labels: labels, scales: scales,
                                       grad: grad, &outB), error, "bf16: \(name)")
            XCTAssertTrue(outB.allSatisfy { $0.bitPattern == 0x1234 }, "bf16: \(name)")
            var bufferB = bf16
            XCTAssertEqual(llmBackwardInPlace(&bufferB, tokens: llmTokens, vocab: llmVocab, labels: labels,
                                              scales: scales, grad: grad), error, "bf16 in place: \(name)")
            XCTAssertEqual(llmBits(bufferB), llmBits(bf16), "bf16 in place: \(name)")
        }
    }

    /// The valid base input passes, so that the cases above fail for their corruption alone.
    func testBaseInputIsValid() {
        let floats = llmBaseLogits().map { Float($0) }
        var logp = [Float](repeating: llmSentinel, count: llmTokens)
        var entropy = [Float](repeating: llmSentinel, count: llmTokens)
        XCTAssertNil(llmForward(floats, tokens: llmTokens, vocab: llmVocab, labels: llmBaseLabels, scales: [1, 2, 0.5],
                                logprob: &logp, entropy: &entropy))
        var out = [Float](repeating: llmSentinel, count: llmTokens * llmVocab)
        XCTAssertNil(llmBackward(floats, tokens: llmTokens, vocab: llmVocab, labels: llmBaseLabels, scales: [1, 2, 0.5],
                                 grad: [1, -0.5, 2], &out))
        var outEntropy = [Float](repeating: llmSentinel, count: llmTokens)
        XCTAssertNil(llmTokenEntropy(floats, tokens: llmTokens, vocab: llmVocab, &outEntropy))
    }

    // MARK: response entropy and scales

    func testResponseEntropyErrors() throws {
        let parameters = try LLMParameters(omegaLow: 0.45, omegaHigh: 3, k: 2, topFraction: 0.2, scaleAdvantages: true)
        let entropies: [Float] = [1, 2, 3, 0.5, 0.25]
        let cases: [(String, [Float], [Int64], ERAError)] = [
            ("id -2", entropies, [0, 1, -2, 0, 1], .badIndex),
            ("id == responses", entropies, [0, 1, 0, 1, 2], .badIndex),
            ("id huge", entropies, [Int64.max, 1, 0, 1, 0], .badIndex),
            ("NaN entropy of a response token", [1, 2, 3, 0.5, .nan], [0, 1, 0, 1, 1], .nonFinite),
            ("+inf entropy of a response token", [.infinity, 2, 3, 0.5, 1], [0, 1, 0, 1, 1], .nonFinite),
            ("-inf entropy of a response token", [1, 2, -.infinity, 0.5, 1], [0, 1, 0, 1, 1], .nonFinite),
        ]
        let sentinels = llmBits([Float](repeating: llmSentinel, count: 2))
        for (name, tokenEntropy, ids, error) in cases {
            var out = [Float](repeating: llmSentinel, count: 2)
            XCTAssertEqual(llmResponseEntropy(parameters, tokenEntropy: tokenEntropy, responseId: ids, responses: 2,
                                              tokens: ids.count, &out), error, name)
            XCTAssertEqual(llmBits(out), sentinels, name)
        }
        // NaN for a token of no response is accepted (and not read).
        var out = [Float](repeating: llmSentinel, count: 2)
        XCTAssertNil(llmResponseEntropy(parameters, tokenEntropy: [1, 2, .nan, 0.5, .infinity], responseId: [0, 1, -1, 1, -1],
                                        responses: 2, tokens: 5, &out))
        XCTAssertEqual(out, [1, 2])
    }

    func testScalesErrors() throws {
        let parameters = try LLMParameters(omegaLow: 0.45, omegaHigh: 3, k: 2, topFraction: 0.2, scaleAdvantages: true)
        let responseEntropy: [Float] = [0.1, 5]
        let advantages: [Float] = [1, -1, 2, 0.5]
        let cases: [(String, [Float], [Int64], [Float], ERAError)] = [
            ("id -2", responseEntropy, [0, 1, -2, 0], advantages, .badIndex),
            ("id == responses", responseEntropy, [0, 1, 0, 2], advantages, .badIndex),
            ("NaN advantage", responseEntropy, [0, 1, 0, 1], [1, -1, 2, .nan], .nonFinite),
            ("+inf advantage", responseEntropy, [0, 1, 0, 1], [.infinity, -1, 2, 1], .nonFinite),
            ("-inf advantage of a token of no response", responseEntropy, [0, 1, -1, 1], [1, -1, -.infinity, 1],
             .nonFinite),
            ("NaN entropy of a response with tokens", [0.1, .nan], [0, 1, 0, 1], advantages, .nonFinite),
            ("+inf entropy of a response with tokens", [.infinity, 5], [0, 1, 0, 1], advantages, .nonFinite),
        ]
        let sentinels = llmBits([Float](repeating: llmSentinel, count: 4))
        for (name, entropy, ids, advantages, error) in cases {
            var scale = [Float](repeating: llmSentinel, count: 4)
            var outAdvantages = [Float](repeating: llmSentinel, count: 4)
            XCTAssertEqual(llmScales(parameters, responseEntropy: entropy, responses: 2, responseId: ids,
                                     advantages: advantages, scale: &scale, outAdvantages: &outAdvantages), error, name)
            XCTAssertEqual(llmBits(scale), sentinels, name)
            XCTAssertEqual(llmBits(outAdvantages), sentinels, name)
            // In place: the advantages survive.
            var inPlace = advantages
            XCTAssertEqual(llmScalesInPlace(parameters, responseEntropy: entropy, responses: 2, responseId: ids,
                                            advantages: &inPlace, scale: &scale), error, "in place: \(name)")
            XCTAssertEqual(llmBits(inPlace), llmBits(advantages), "in place: \(name)")
            XCTAssertEqual(llmBits(scale), sentinels, "in place: \(name)")
        }
    }

    // MARK: parameters

    func testInvalidParameters() {
        func make(_ omegaLow: Double = 0.45, _ omegaHigh: Double = 3, _ k: Double = 2, _ topFraction: Double = 0.2)
            -> ERAError? {
            llmCapture { () throws(ERAError) in
                _ = try LLMParameters(omegaLow: omegaLow, omegaHigh: omegaHigh, k: k, topFraction: topFraction,
                                      scaleAdvantages: true)
            }
        }
        XCTAssertNil(make())
        XCTAssertNil(make(1, 1), "omega_low == omega_high is allowed")
        XCTAssertNil(make(0.45, 3, 2, 1), "top_fraction 1 is allowed")
        XCTAssertNil(make(-1, 3, 0.5, 1e-9))
        let bad: [(String, ERAError?)] = [
            ("omegaLow > omegaHigh", make(3.5, 3)),
            ("k = 0", make(0.45, 3, 0)),
            ("k = -0", make(0.45, 3, -0.0)),
            ("k < 0", make(0.45, 3, -2)),
            ("topFraction = 0", make(0.45, 3, 2, 0)),
            ("topFraction < 0", make(0.45, 3, 2, -0.2)),
            ("topFraction > 1", make(0.45, 3, 2, 1.0.nextUp)),
            ("omegaLow NaN", make(.nan)),
            ("omegaHigh NaN", make(0.45, .nan)),
            ("k NaN", make(0.45, 3, .nan)),
            ("topFraction NaN", make(0.45, 3, 2, .nan)),
            ("omegaLow -inf", make(-.infinity)),
            ("omegaHigh +inf", make(0.45, .infinity)),
            ("k +inf", make(0.45, 3, .infinity)),
            ("topFraction +inf", make(0.45, 3, 2, .infinity)),
        ]
        for (name, error) in bad { XCTAssertEqual(error, .badParameter, name) }
    }
}
