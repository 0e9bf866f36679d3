// LLM ERA (math 3): adaptive scales, scaled log-probabilities and their gradient, and thread
// determinism, against the float64 references of LLMReference.swift.
import XCTest
@testable import ERACore
#if canImport(Glibc)
import Glibc
#endif

/// Random labels, each pointing at a finite logit of its row.
private func llmRandomLabels(_ logits: [Double], tokens: Int, vocab: Int, rng: inout TestRandom) -> [Int64] {
    (0..<tokens).map { t in
        while true {
            let i = rng.int(vocab)
            if logits[t * vocab + i] > -Double.infinity { return Int64(i) }
        }
    }
}

/// Per-token scales cycling through the values the rule produces (k = 2, 1/k) and others.
private func llmCyclingScales(_ tokens: Int) -> [Float] {
    let cycle: [Float] = [1, 2, 0.5, 1.0 / 3.0, 1.7, 3]
    return (0..<tokens).map { cycle[$0 % cycle.count] }
}

final class LLMScalesTests: XCTestCase {
    /// Runs the scales kernel out of place and in place and checks both against the rule.
    private func checkRule(_ parameters: LLMParameters, responseEntropy: [Float], ids: [Int64], advantages: [Float],
                           file: StaticString = #filePath, line: UInt = #line) {
        var scale = [Float](repeating: -9, count: ids.count)
        var outAdvantages = [Float](repeating: -9, count: ids.count)
        XCTAssertNil(llmScales(parameters, responseEntropy: responseEntropy, responses: responseEntropy.count,
                               responseId: ids, advantages: advantages, scale: &scale, outAdvantages: &outAdvantages),
                     file: file, line: line)
        for t in 0..<ids.count {
            let a = Double(advantages[t])
            let s = ids[t] < 0 ? 1 : llmReferenceScale(responseEntropy: responseEntropy[Int(ids[t])], advantage: advantages[t],
                                                       omegaLow: parameters.omegaLow, omegaHigh: parameters.omegaHigh,
                                                       k: parameters.k)
            XCTAssertEqual(scale[t], Float(s), "token \(t)", file: file, line: line)
            let expectedAdvantage = parameters.scaleAdvantages ? Float(a / s) : advantages[t]
            XCTAssertEqual(outAdvantages[t], expectedAdvantage, accuracy: expectedAdvantage.ulp,
                           "token \(t)", file: file, line: line)
            if s == 1 || !parameters.scaleAdvantages {
                XCTAssertEqual(outAdvantages[t].bitPattern, advantages[t].bitPattern, "token \(t) unchanged",
                               file: file, line: line)
            }
        }
        // In place: the same results.
        var inPlace = advantages
        var scaleInPlace = [Float](repeating: -9, count: ids.count)
        XCTAssertNil(llmScalesInPlace(parameters, responseEntropy: responseEntropy, responses: responseEntropy.count,
                                      responseId: ids, advantages: &inPlace, scale: &scaleInPlace),
                     file: file, line: line)
        XCTAssertEqual(llmBits(inPlace), llmBits(outAdvantages), "in place", file: file, line: line)
        XCTAssertEqual(llmBits(scaleInPlace), llmBits(scale), "in place", file: file, line: line)
    }

    func testThresholdsAndAdvantageSigns() throws {
        // Thresholds that float32 holds exactly, so that "exactly at the threshold" is exact.
        let parameters = try LLMParameters(omegaLow: 0.5, omegaHigh: 3.0, k: 2, topFraction: 0.2, scaleAdvantages: true)
        let entropies: [Float] = [0.5, Float(0.5).nextDown, 3.0, Float(3.0).nextUp, 1.0, 0, 40, Float(3.0).nextDown,
                                  Float(0.5).nextUp]
        let expectedForPositive: [Float] = [1, 2, 1, 0.5, 1, 2, 0.5, 1, 1]
        let advantageValues: [Float] = [1.5, 0, -0.0, -2, Float.leastNonzeroMagnitude, 1e-30, -Float.leastNonzeroMagnitude, 1e38]
        var ids: [Int64] = []
        var advantages: [Float] = []
        for b in 0..<entropies.count {
            for a in advantageValues {
                ids.append(Int64(b))
                advantages.append(a)
            }
        }
        checkRule(parameters, responseEntropy: entropies, ids: ids, advantages: advantages)

        // The known answers, spelled out.
        var scale = [Float](repeating: -9, count: ids.count)
        var outAdvantages = [Float](repeating: -9, count: ids.count)
        XCTAssertNil(llmScales(parameters, responseEntropy: entropies, responses: entropies.count, responseId: ids,
                               advantages: advantages, scale: &scale, outAdvantages: &outAdvantages))
        for t in 0..<ids.count {
            let b = Int(ids[t]), a = advantages[t]
            let expected: Float = a > 0 ? expectedForPositive[b] : 1
            XCTAssertEqual(scale[t], expected, "response \(b) (H = \(entropies[b])), A = \(a)")
            if a > 0 {
                XCTAssertEqual(outAdvantages[t], a / expected, "A/s")
            }
        }
    }

    /// Thresholds float32 cannot hold are rounded to float32 before the (strict) comparison:
    /// an entropy equal to Float(omega) keeps scale 1 (era.h, era_llm_scales_f32).
    func testThresholdsComparedInFloat32() throws {
        let parameters = try LLMParameters(omegaLow: 0.45, omegaHigh: 2.7, k: 2, topFraction: 0.2, scaleAdvantages: true)
        let low = Float(0.45), high = Float(2.7)
        XCTAssertNotEqual(Double(low), 0.45)
        XCTAssertNotEqual(Double(high), 2.7)
        let entropies: [Float] = [low, low.nextDown, low.nextUp, high, high.nextDown, high.nextUp]
        let ids: [Int64] = [0, 1, 2, 3, 4, 5]
        var scale = [Float](repeating: -9, count: ids.count)
        var outAdvantages = [Float](repeating: -9, count: ids.count)
        XCTAssertNil(llmScales(parameters, responseEntropy: entropies, responses: entropies.count, responseId: ids,
                               advantages: [Float](repeating: 1, count: ids.count), scale: &scale,
                               outAdvantages: &outAdvantages))
        XCTAssertEqual(scale, [1, 2, 1, 1, 1, 0.5])
        XCTAssertEqual(outAdvantages, [1, 0.5, 1, 1, 1, 2])
    }

    func testNoResponseTokensKeepScaleOneAndAdvantage() throws {
        let parameters = try LLMParameters(omegaLow: 0.5, omegaHigh: 3.0, k: 2, topFraction: 0.2, scaleAdvantages: true)
        // Response 1 has no tokens: its NaN entropy is never read.
        let entropies: [Float] = [0.1, .nan, 5]
        let ids: [Int64] = [-1, 0, -1, 2, -1, 0]
        let advantages: [Float] = [1, 1, -3, 1, 7.25, -1]
        var scale = [Float](repeating: -9, count: ids.count)
        var outAdvantages = [Float](repeating: -9, count: ids.count)
        XCTAssertNil(llmScales(parameters, responseEntropy: entropies, responses: 3, responseId: ids,
                               advantages: advantages, scale: &scale, outAdvantages: &outAdvantages))
        XCTAssertEqual(scale, [1, 2, 1, 0.5, 1, 1])
        XCTAssertEqual(outAdvantages, [1, 0.5, -3, 2, 7.25, -1])
        checkRule(parameters, responseEntropy: entropies, ids: ids, advantages: advantages)
    }

    func testScaleAdvantagesOff() throws {
        let parameters = try LLMParameters(omegaLow: 0.5, omegaHigh: 3.0, k: 2, topFraction: 0.2, scaleAdvantages: false)
        let entropies: [Float] = [0.1, 5, 1]
        let ids: [Int64] = [0, 1, 2, 0, 1, -1]
        let advantages: [Float] = [1.25, 0.75, 2, -1, -2, 3]
        var scale = [Float](repeating: -9, count: ids.count)
        var outAdvantages = [Float](repeating: -9, count: ids.count)
        XCTAssertNil(llmScales(parameters, responseEntropy: entropies, responses: 3, responseId: ids,
                               advantages: advantages, scale: &scale, outAdvantages: &outAdvantages))
        XCTAssertEqual(scale, [2, 0.5, 1, 1, 1, 1])
        XCTAssertEqual(outAdvantages, advantages)
        checkRule(parameters, responseEntropy: entropies, ids: ids, advantages: advantages)
    }

    func testRandomAgainstRuleWithOtherK() throws {
        var rng = TestRandom(seed: 8)
        for (k, scaleAdvantages) in [(3.0, true), (1.37, true), (0.6, true), (2.0, false)] {
            let parameters = try LLMParameters(omegaLow: 0.45, omegaHigh: 2.5, k: k, topFraction: 0.2,
                                               scaleAdvantages: scaleAdvantages)
            let responses = 16
            let entropies = (0..<responses).map { _ in Float(rng.uniform(0, 4)) }
            let ids = (0..<400).map { _ in Int64(rng.int(responses + 1)) - 1 }
            let advantages = (0..<400).map { _ in Float(rng.normal()) }
            checkRule(parameters, responseEntropy: entropies, ids: ids, advantages: advantages)
        }
    }
}

final class LLMLogprobForwardTests: XCTestCase {
    /// Checks logp and entropy of softmax(s*z) against the reference; returns the worst errors.
    @discardableResult
    private func check(logp: [Float], entropy: [Float], exact: [Double], tokens: Int, vocab: Int, labels: [Int64],
                       scales: [Float]?, file: StaticString = #filePath, line: UInt = #line) -> (Double, Double) {
        var worstLogp = 0.0, worstEntropy = 0.0
        for t in 0..<tokens {
            let row = llmRow(exact, t, vocab)
            let s = scales.map { Double($0[t]) } ?? 1
            let expectedLogp = llmReferenceLogprob(row, label: Int(labels[t]), scale: s)
            let expectedEntropy = llmReferenceRow(row, scale: s)!.entropy
            let e1 = llmMixedError(Double(logp[t]), expectedLogp)
            let e2 = llmMixedError(Double(entropy[t]), expectedEntropy)
            worstLogp = max(worstLogp, e1)
            worstEntropy = max(worstEntropy, e2)
            XCTAssertLessThanOrEqual(e1, 1e-6, "token \(t) logp \(logp[t]) vs \(expectedLogp)", file: file, line: line)
            XCTAssertLessThanOrEqual(e2, 1e-6, "token \(t) entropy \(entropy[t]) vs \(expectedEntropy)",
                                     file: file, line: line)
            XCTAssertLessThanOrEqual(logp[t], 0, file: file, line: line)
        }
        return (worstLogp, worstEntropy)
    }

    func testFloatLogits() {
        var rng = TestRandom(seed: 9)
        let tokens = 24, vocab = 777
        var logits = llmRandomLogits(tokens: tokens, vocab: vocab, spreads: [0.5, 2, 5, 15], rng: &rng)
        let masked = llmRandomLogits(tokens: 8, vocab: vocab, spreads: [1, 4], maskShare: 0.3, rng: &rng)
        logits.replaceSubrange(0..<(8 * vocab), with: masked)
        let floats = logits.map { Float($0) }
        let exact = floats.map { Double($0) }
        let labels = llmRandomLabels(exact, tokens: tokens, vocab: vocab, rng: &rng)
        var worst = (0.0, 0.0)
        for scales in [nil, llmCyclingScales(tokens)] {
            var logp = [Float](repeating: .nan, count: tokens)
            var entropy = [Float](repeating: .nan, count: tokens)
            XCTAssertNil(llmForward(floats, tokens: tokens, vocab: vocab, labels: labels, scales: scales,
                                    logprob: &logp, entropy: &entropy))
            let w = check(logp: logp, entropy: entropy, exact: exact, tokens: tokens, vocab: vocab, labels: labels,
                          scales: scales)
            worst = (max(worst.0, w.0), max(worst.1, w.1))
            // Without the entropy output: the same log-probabilities, the entropy array untouched.
            var logp2 = [Float](repeating: .nan, count: tokens)
            var untouched = [Float](repeating: -9, count: tokens)
            XCTAssertNil(llmForward(floats, tokens: tokens, vocab: vocab, labels: labels, scales: scales,
                                    logprob: &logp2, entropy: &untouched, passEntropy: false))
            XCTAssertEqual(llmBits(logp2), llmBits(logp))
            XCTAssertEqual(untouched, [Float](repeating: -9, count: tokens))
        }
        print("LLM worst logprob forward error, f32 logits: logp \(worst.0), entropy \(worst.1)")
    }

    func testBFloat16Logits() {
        var rng = TestRandom(seed: 10)
        let tokens = 24, vocab = 1003
        let logits = llmRandomLogits(tokens: tokens, vocab: vocab, spreads: [0.5, 2, 5, 15], maskShare: 0.1, rng: &rng)
        let bits = logits.map { llmBF16Truncating($0) }
        let exact = bits.map { llmBF16Value($0) }
        let bf16 = bits.map { BFloat16(bitPattern: $0) }
        let labels = llmRandomLabels(exact, tokens: tokens, vocab: vocab, rng: &rng)
        var worst = (0.0, 0.0)
        for scales in [nil, llmCyclingScales(tokens)] {
            var logp = [Float](repeating: .nan, count: tokens)
            var entropy = [Float](repeating: .nan, count: tokens)
            XCTAssertNil(llmForward(bf16, tokens: tokens, vocab: vocab, labels: labels, scales: scales,
                                    logprob: &logp, entropy: &entropy))
            let w = check(logp: logp, entropy: entropy, exact: exact, tokens: tokens, vocab: vocab, labels: labels,
                          scales: scales)
            worst = (max(worst.0, w.0), max(worst.1, w.1))
        }
        print("LLM worst logprob forward error, bf16 logits: logp \(worst.0), entropy \(worst.1)")
    }

    func testVocabulary151936() {
        var rng = TestRandom(seed: 11)
        let tokens = 2, vocab = 151_936
        let logits = llmRandomLogits(tokens: tokens, vocab: vocab, spreads: [2, 6], maskShare: 0.02, rng: &rng)
        let labels = llmRandomLabels(logits, tokens: tokens, vocab: vocab, rng: &rng)
        let floats = logits.map { Float($0) }
        var logp = [Float](repeating: .nan, count: tokens)
        var entropy = [Float](repeating: .nan, count: tokens)
        XCTAssertNil(llmForward(floats, tokens: tokens, vocab: vocab, labels: labels, scales: [2, 0.5],
                                logprob: &logp, entropy: &entropy))
        let wf = check(logp: logp, entropy: entropy, exact: floats.map { Double($0) }, tokens: tokens, vocab: vocab,
                       labels: labels, scales: [2, 0.5])
        let bits = logits.map { llmBF16Truncating($0) }
        XCTAssertNil(llmForward(bits.map { BFloat16(bitPattern: $0) }, tokens: tokens, vocab: vocab, labels: labels,
                                scales: [1, 2], logprob: &logp, entropy: &entropy))
        let wb = check(logp: logp, entropy: entropy, exact: bits.map { llmBF16Value($0) }, tokens: tokens,
                       vocab: vocab, labels: labels, scales: [1, 2])
        print("LLM worst logprob forward error, V=151936: f32 \(wf), bf16 \(wb)")
    }

    func testMaskedLogitsAndKnownValues() {
        let ninf = -Float.infinity
        // Row 0: only the label unmasked: logp 0, entropy 0 whatever the scale.
        // Row 1: two equal logits unmasked: logp -log 2, entropy log 2 whatever the scale.
        // Row 2: logits (0, log 3) at scale 1: p = (1/4, 3/4).
        let logits: [Float] = [ninf, ninf, 5, ninf,
                               1.5, ninf, ninf, 1.5,
                               0, Float(log(3.0)), ninf, ninf]
        let labels: [Int64] = [2, 3, 0]
        for scales in [nil, [Float(2), 0.5, 1]] as [[Float]?] {
            var logp = [Float](repeating: .nan, count: 3)
            var entropy = [Float](repeating: .nan, count: 3)
            XCTAssertNil(llmForward(logits, tokens: 3, vocab: 4, labels: labels, scales: scales, logprob: &logp,
                                    entropy: &entropy))
            XCTAssertEqual(logp[0], 0)
            XCTAssertEqual(entropy[0], 0)
            XCTAssertEqual(logp[1], Float(-log(2.0)), accuracy: 1e-7)
            XCTAssertEqual(entropy[1], Float(log(2.0)), accuracy: 1e-7)
            XCTAssertEqual(logp[2], Float(-log(4.0)), accuracy: 1e-6)
            XCTAssertEqual(entropy[2], Float(log(4.0) - 0.75 * log(3.0)), accuracy: 1e-6)
            let bf16 = logits.map { BFloat16(bitPattern: llmBF16Truncating(Double($0))) }
            var logpB = [Float](repeating: .nan, count: 3)
            var entropyB = [Float](repeating: .nan, count: 3)
            XCTAssertNil(llmForward(bf16, tokens: 3, vocab: 4, labels: labels, scales: scales, logprob: &logpB,
                                    entropy: &entropyB))
            XCTAssertEqual(logpB[0], 0)
            XCTAssertEqual(entropyB[0], 0)
            XCTAssertEqual(logpB[1], Float(-log(2.0)), accuracy: 1e-7)
        }
    }

    func testZeroTokensWritesNothing() {
        var logp: [Float] = [42]
        var entropy: [Float] = [43]
        XCTAssertNil(llmForward([Float(1)], tokens: 0, vocab: 1, labels: [0], scales: nil, logprob: &logp,
                                entropy: &entropy))
        XCTAssertEqual(logp, [42])
        XCTAssertEqual(entropy, [43])
    }
}

final class LLMLogprobBackwardTests: XCTestCase {
    /// Analytic check of a float32 gradient against the float64 reference, element by element:
    /// to 1e-6 relative (the sum S comes from the float32-lane statistics, within about 3.5e-7)
    /// plus 1.5e-7 per nat of distance from the row maximum (the vector kernel rounds the
    /// exponent s (z - max) in float32: about 1.2e-7 relative per nat), and entries below
    /// float32's normal range (times |s g|) as 0 (docs/math.md, "Vector kernels"); masked
    /// logits exactly 0; each row sums to ~0.
    @discardableResult
    private func checkFloatGradient(_ out: [Float], exact: [Double], tokens: Int, vocab: Int, labels: [Int64],
                                    scales: [Float]?, grads: [Float],
                                    file: StaticString = #filePath, line: UInt = #line) -> Double {
        var worstRelative = 0.0
        for t in 0..<tokens {
            let row = llmRow(exact, t, vocab)
            let s = scales.map { Double($0[t]) } ?? 1
            let g = Double(grads[t])
            let reference = llmReferenceGradient(row, label: Int(labels[t]), scale: s, grad: g)
            var rowSum = 0.0
            var failures = 0
            let rowMaximum = row.max()!
            for i in 0..<vocab {
                let got = Double(out[t * vocab + i])
                rowSum += got
                if row[i] == -Double.infinity {
                    if got != 0 { failures += 1 }
                    continue
                }
                let error = abs(got - reference[i])
                if abs(reference[i]) >= Double(Float.leastNormalMagnitude) {
                    worstRelative = max(worstRelative, error / abs(reference[i]))
                }
                let distance = s * (rowMaximum - row[i])
                if error > (1e-6 + 1.5e-7 * distance) * abs(reference[i])
                    + Double(Float.leastNormalMagnitude) * max(1, abs(s * g)) { failures += 1 }
                if error > 1e-6 * max(1, abs(s * g)) { failures += 1 }
            }
            XCTAssertEqual(failures, 0, "token \(t): elements off the reference (or masked and not 0)",
                           file: file, line: line)
            // sum_i g*s*(onehot - softmax) = g*s*(1 - 1) = 0.
            XCTAssertLessThanOrEqual(abs(rowSum), 1e-6 * max(abs(s * g), 1e-30), "token \(t) row sum \(rowSum)",
                                     file: file, line: line)
        }
        return worstRelative
    }

    func testFloatAgainstAnalyticReference() {
        var rng = TestRandom(seed: 12)
        let tokens = 12, vocab = 300
        var logits = llmRandomLogits(tokens: tokens, vocab: vocab, spreads: [0.5, 3, 10], rng: &rng)
        let masked = llmRandomLogits(tokens: 4, vocab: vocab, spreads: [1, 4], maskShare: 0.25, rng: &rng)
        logits.replaceSubrange(0..<(4 * vocab), with: masked)
        let floats = logits.map { Float($0) }
        let exact = floats.map { Double($0) }
        let labels = llmRandomLabels(exact, tokens: tokens, vocab: vocab, rng: &rng)
        var grads = (0..<tokens).map { _ in Float(rng.normal()) }
        grads[5] = 0
        grads[6] = -1
        grads[7] = 1e-20
        var worst = 0.0
        for scales in [nil, llmCyclingScales(tokens)] {
            var out = [Float](repeating: .nan, count: tokens * vocab)
            XCTAssertNil(llmBackward(floats, tokens: tokens, vocab: vocab, labels: labels, scales: scales, grad: grads, &out))
            worst = max(worst, checkFloatGradient(out, exact: exact, tokens: tokens, vocab: vocab, labels: labels,
                                                  scales: scales, grads: grads))
            // g = 0 gives an all-zero row.
            XCTAssertTrue(out[(5 * vocab)..<(6 * vocab)].allSatisfy { $0 == 0 })
        }
        print("LLM worst logprob gradient relative error, f32: \(worst)")
    }

    /// Central finite differences of the float64 reference log-probability, against the kernel's
    /// float32 gradient.
    func testFloatAgainstFiniteDifferences() {
        var rng = TestRandom(seed: 13)
        let tokens = 6, vocab = 11
        let logits = llmRandomLogits(tokens: tokens, vocab: vocab, spreads: [0.5, 2, 4], maskShare: 0.2, rng: &rng)
        let floats = logits.map { Float($0) }
        let exact = floats.map { Double($0) }
        let labels = llmRandomLabels(exact, tokens: tokens, vocab: vocab, rng: &rng)
        let grads: [Float] = [1, -0.75, 2.5, 1, -1, 0.3]
        let scales: [Float] = [1, 2, 0.5, 3, 1.0 / 3.0, 1.7]
        var out = [Float](repeating: .nan, count: tokens * vocab)
        XCTAssertNil(llmBackward(floats, tokens: tokens, vocab: vocab, labels: labels, scales: scales, grad: grads, &out))
        var worst = 0.0
        for t in 0..<tokens {
            let row = llmRow(exact, t, vocab)
            let s = Double(scales[t]), g = Double(grads[t])
            for j in 0..<vocab {
                if row[j] == -Double.infinity {
                    XCTAssertEqual(out[t * vocab + j], 0, "masked logit \(t), \(j)")
                    continue
                }
                let h = 1e-5 * max(1, abs(row[j]))
                var plus = row, minus = row
                plus[j] += h
                minus[j] -= h
                let difference = g * (llmReferenceLogprob(plus, label: Int(labels[t]), scale: s)
                    - llmReferenceLogprob(minus, label: Int(labels[t]), scale: s)) / (plus[j] - minus[j])
                let error = abs(Double(out[t * vocab + j]) - difference)
                worst = max(worst, error / max(1, abs(s * g)))
                XCTAssertLessThanOrEqual(error, 1e-6 * max(1, abs(s * g)),
                                         "token \(t), logit \(j): kernel \(out[t * vocab + j]), FD \(difference)")
            }
        }
        print("LLM worst logprob gradient vs finite differences (abs/|s g|): \(worst)")
    }

    /// bfloat16 gradients against the double reference rounded to nearest even: within one
    /// bfloat16 step, and equal for at least 99% of the entries.
    func testBFloat16MatchesCorrectlyRoundedReference() {
        var rng = TestRandom(seed: 14)
        let tokens = 10, vocab = 2000
        let logits = llmRandomLogits(tokens: tokens, vocab: vocab, spreads: [0.3, 2, 6, 20], maskShare: 0.1, rng: &rng)
        let bits = logits.map { llmBF16Truncating($0) }
        let exact = bits.map { llmBF16Value($0) }
        let bf16 = bits.map { BFloat16(bitPattern: $0) }
        let labels = llmRandomLabels(exact, tokens: tokens, vocab: vocab, rng: &rng)
        let grads = (0..<tokens).map { _ in Float(rng.normal()) }
        let scales = llmCyclingScales(tokens)
        var out = [BFloat16](repeating: BFloat16(bitPattern: 0x7FC0), count: tokens * vocab)
        XCTAssertNil(llmBackward(bf16, tokens: tokens, vocab: vocab, labels: labels, scales: scales, grad: grads, &out))
        var exactMatches = 0, checked = 0, worstUlps = 0
        for t in 0..<tokens {
            let row = llmRow(exact, t, vocab)
            let reference = llmReferenceGradient(row, label: Int(labels[t]), scale: Double(scales[t]),
                                                 grad: Double(grads[t]))
            for i in 0..<vocab {
                let got = out[t * vocab + i].bitPattern
                if row[i] == -Double.infinity {
                    XCTAssertEqual(got & 0x7FFF, 0, "masked logit \(t), \(i) must get 0")
                    continue
                }
                let expected = llmRoundToBF16(reference[i])
                checked += 1
                if got == expected || (got & 0x7FFF == 0 && expected & 0x7FFF == 0) { exactMatches += 1 }
                // The vector kernel computes each entry in float32 (about 2e-7 relative, more far
                // from the row maximum) and takes entries below 2^-127 |s g| as 0.
                if abs(reference[i]) >= Double(Float.leastNormalMagnitude) * max(1, abs(Double(scales[t] * grads[t]))) {
                    worstUlps = max(worstUlps, llmBF16UlpDistance(got, expected))
                }
            }
        }
        XCTAssertLessThanOrEqual(worstUlps, 1)
        XCTAssertGreaterThanOrEqual(Double(exactMatches), 0.99 * Double(checked))
        print("LLM bf16 gradient: \(exactMatches)/\(checked) equal to the double value rounded, worst \(worstUlps) ulp")
    }

    func testInPlaceEqualsOutOfPlace() {
        var rng = TestRandom(seed: 15)
        let tokens = 7, vocab = 513
        let logits = llmRandomLogits(tokens: tokens, vocab: vocab, spreads: [1, 5], maskShare: 0.1, rng: &rng)
        let labels = llmRandomLabels(logits, tokens: tokens, vocab: vocab, rng: &rng)
        let grads = (0..<tokens).map { _ in Float(rng.normal()) }
        for scales in [nil, llmCyclingScales(tokens)] {
            let floats = logits.map { Float($0) }
            var out = [Float](repeating: .nan, count: tokens * vocab)
            XCTAssertNil(llmBackward(floats, tokens: tokens, vocab: vocab, labels: labels, scales: scales, grad: grads, &out))
            var buffer = floats
            XCTAssertNil(llmBackwardInPlace(&buffer, tokens: tokens, vocab: vocab, labels: labels, scales: scales,
                                            grad: grads))
            XCTAssertEqual(llmBits(buffer), llmBits(out), "f32 in place")

            let bf16 = logits.map { BFloat16(bitPattern: llmBF16Truncating($0)) }
            var outB = [BFloat16](repeating: BFloat16(bitPattern: 0x7FC0), count: tokens * vocab)
            XCTAssertNil(llmBackward(bf16, tokens: tokens, vocab: vocab, labels: labels, scales: scales, grad: grads, &outB))
            var bufferB = bf16
            XCTAssertNil(llmBackwardInPlace(&bufferB, tokens: tokens, vocab: vocab, labels: labels, scales: scales,
                                            grad: grads))
            XCTAssertEqual(llmBits(bufferB), llmBits(outB), "bf16 in place")
        }
    }

    func testVocabulary151936() {
        var rng = TestRandom(seed: 16)
        let tokens = 2, vocab = 151_936
        let logits = llmRandomLogits(tokens: tokens, vocab: vocab, spreads: [2, 6], maskShare: 0.02, rng: &rng)
        let floats = logits.map { Float($0) }
        let exact = floats.map { Double($0) }
        let labels = llmRandomLabels(exact, tokens: tokens, vocab: vocab, rng: &rng)
        let grads: [Float] = [-1.25, 0.5]
        var out = [Float](repeating: .nan, count: tokens * vocab)
        XCTAssertNil(llmBackward(floats, tokens: tokens, vocab: vocab, labels: labels, scales: [2, 0.5], grad: grads, &out))
        let worst = checkFloatGradient(out, exact: exact, tokens: tokens, vocab: vocab, labels: labels, scales: [2, 0.5],
                                       grads: grads)
        print("LLM worst logprob gradient relative error, V=151936: \(worst)")
    }
}

final class LLMThreadsTests: XCTestCase {
    override func tearDown() {
        try? Threads.set(0)
        super.tearDown()
    }

    func testResultsIdenticalForAnyThreadCount() throws {
        var rng = TestRandom(seed: 17)
        let tokens = 64, vocab = 32000
        let logits = llmRandomLogits(tokens: tokens, vocab: vocab, spreads: [0.5, 2, 6], maskShare: 0.01, rng: &rng)
        let floats = logits.map { Float($0) }
        let labels = llmRandomLabels(logits, tokens: tokens, vocab: vocab, rng: &rng)
        let scales = llmCyclingScales(tokens)
        let grads = (0..<tokens).map { _ in Float(rng.normal()) }

        func run() -> (entropy: [UInt32], logp: [UInt32], forwardEntropy: [UInt32], grad: [UInt32]) {
            var entropy = [Float](repeating: .nan, count: tokens)
            XCTAssertNil(llmTokenEntropy(floats, tokens: tokens, vocab: vocab, &entropy))
            var logp = [Float](repeating: .nan, count: tokens)
            var forwardEntropy = [Float](repeating: .nan, count: tokens)
            XCTAssertNil(llmForward(floats, tokens: tokens, vocab: vocab, labels: labels, scales: scales,
                                    logprob: &logp, entropy: &forwardEntropy))
            var grad = [Float](repeating: .nan, count: tokens * vocab)
            XCTAssertNil(llmBackward(floats, tokens: tokens, vocab: vocab, labels: labels, scales: scales,
                                     grad: grads, &grad))
            return (llmBits(entropy), llmBits(logp), llmBits(forwardEntropy), llmBits(grad))
        }

        try Threads.set(1)
        XCTAssertEqual(Threads.current, 1)
        let one = run()
        try Threads.set(3)
        XCTAssertEqual(Threads.current, 3)
        XCTAssertEqual(Threads.blockCount(rows: tokens, workPerRow: vocab * LLMERA.workPerLogit), 3,
                       "the 3-thread run must really split the rows")
        let three = run()
        try Threads.set(0)
        let automatic = run()
        for (name, other) in [("3 threads", three), ("default", automatic)] {
            XCTAssertEqual(one.entropy, other.entropy, name)
            XCTAssertEqual(one.logp, other.logp, name)
            XCTAssertEqual(one.forwardEntropy, other.forwardEntropy, name)
            XCTAssertTrue(one.grad == other.grad, "\(name): gradients differ")
        }
        // And the 1-thread results are right.
        var worst = 0.0
        let exact = floats.map { Double($0) }
        for t in stride(from: 0, to: tokens, by: 9) {
            let expected = llmReferenceRow(llmRow(exact, t, vocab))!.entropy
            worst = max(worst, llmMixedError(Double(Float(bitPattern: one.entropy[t])), expected))
        }
        XCTAssertLessThanOrEqual(worst, 1e-6)
    }
}
