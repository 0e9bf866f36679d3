// Top-k LLM-ERA log-probabilities (docs/math.md, "Top-k log-probabilities"): TopKLogprob and
// the top-k linear head against a plain float64 reference (selection by a stable sort: value
// descending, index ascending), ties at the k-th value, k = 1, k >= vocab, masks, scales
// k / 1 / 1/k, bfloat16, and the gradient against finite differences.
import XCTest
@testable import ERACore
#if canImport(Glibc)
import Glibc
#endif

/// The reference: K = the k largest finite z (a tie: the lower index first), then
/// logp = s z_a - logsumexp_K(s z) or -1e4, the gradient g s (1{j = a} - softmax_K(s z)_j) on K
/// (0 elsewhere, and everywhere when a is outside K), and the full-row entropy.
private func topKReference(_ row: [Double], label: Int, scale s: Double, k: Int, grad g: Double)
    -> (logprob: Double, entropy: Double, gradient: [Double]) {
    let order = row.indices.filter { row[$0] > -Double.infinity }
        .sorted { row[$0] > row[$1] || (row[$0] == row[$1] && $0 < $1) }
    let chosen = Array(order.prefix(k))
    let m = chosen.map { s * row[$0] }.max()!
    let lse = m + Glibc.log(chosen.reduce(0.0) { $0 + Glibc.exp(s * row[$1] - m) })
    let full = row.filter { $0 > -Double.infinity }.map { s * $0 }
    let fm = full.max()!
    let sum = full.reduce(0.0) { $0 + Glibc.exp($1 - fm) }
    let entropy = Glibc.log(sum) - full.reduce(0.0) { $0 + ($1 - fm) * Glibc.exp($1 - fm) } / sum
    var gradient = [Double](repeating: 0, count: row.count)
    guard chosen.contains(label) else { return (TopKLogprob.outsideLogprob, entropy, gradient) }
    for j in chosen { gradient[j] = g * s * ((j == label ? 1 : 0) - Glibc.exp(s * row[j] - lse)) }
    return (s * row[label] - lse, entropy, gradient)
}

private func topKForward<S: LogitStorage>(_ logits: [S], tokens: Int, vocab: Int, labels: [Int64], scales: [Float],
                                          k: Int) -> ([Float], [Float], ERAError?) {
    var logprob = [Float](repeating: .nan, count: tokens), entropy = [Float](repeating: .nan, count: tokens)
    let error = llmCapture { () throws(ERAError) in
        try TopKLogprob.forward(tokens: tokens, vocab: vocab, logits: logits, labels: labels, scales: scales, topK: k,
                                outLogprob: &logprob, outEntropy: &entropy)
    }
    return (logprob, entropy, error)
}

private func topKBackward<S: LogitStorage>(_ logits: [S], tokens: Int, vocab: Int, labels: [Int64], scales: [Float],
                                           k: Int, grad: [Float]) -> ([S], ERAError?) {
    var out = [S](repeating: S(rounding: 7), count: logits.count)
    let error = llmCapture { () throws(ERAError) in
        try TopKLogprob.backward(tokens: tokens, vocab: vocab, logits: logits, labels: labels, scales: scales, topK: k,
                                 gradLogprob: grad, outGrad: &out)
    }
    return (out, error)
}

final class LLMTopKTests: XCTestCase {
    /// Rows with ties straddling the k-th value, masks, fewer finite logits than k; labels at
    /// the top, at the last tied entry inside K, at the first tied entry outside, anywhere.
    private func cases(vocab: Int, rng: inout TestRandom) -> (logits: [Double], labels: [Int64], scales: [Float]) {
        let tokens = 9
        var logits = [Double](), labels = [Int64]()
        for t in 0..<tokens {
            var row = (0..<vocab).map { _ in (rng.normal() * 2 * 4).rounded() / 4 }  // many ties
            if t == 2 { for i in stride(from: 0, to: vocab, by: 3) { row[i] = -.infinity } }
            if t == 3 { for i in 10..<vocab { row[i] = -.infinity } }
            logits += row
            let sorted = row.indices.filter { row[$0] > -.infinity }.sorted { row[$0] > row[$1] || (row[$0] == row[$1] && $0 < $1) }
            switch t % 4 {
            case 0: labels.append(Int64(sorted[0]))
            case 1: labels.append(Int64(sorted[19]))  // the 20th: inside K for k = 20, ties or not
            case 2: labels.append(Int64(sorted[min(20, sorted.count - 1)]))  // the 21st: outside
            default: labels.append(Int64(sorted[rng.int(sorted.count)]))
            }
        }
        let scales: [Float] = (0..<tokens).map { [2, 1, 0.5][$0 % 3] }
        return (logits, labels, scales)
    }

    func testMatchesReferenceF32AndBF16() {
        var rng = TestRandom(seed: 61)
        let vocab = 3000, k = 20
        let (logits, labels, scales) = cases(vocab: vocab, rng: &rng)
        let tokens = labels.count
        let grad = (0..<tokens).map { _ in Float(rng.normal()) }
        for bf16 in [false, true] {
            let values = bf16 ? logits.map { llmBF16Value(llmBF16Truncating($0)) } : logits.map { Double(Float($0)) }
            let (logprob, entropy, error) = bf16
                ? topKForward(values.map { BFloat16(Float($0)) }, tokens: tokens, vocab: vocab, labels: labels, scales: scales, k: k)
                : topKForward(values.map { Float($0) }, tokens: tokens, vocab: vocab, labels: labels, scales: scales, k: k)
            XCTAssertNil(error)
            var gradient: [Double]
            if bf16 {
                let (out, e) = topKBackward(values.map { BFloat16(Float($0)) }, tokens: tokens, vocab: vocab, labels: labels,
                                            scales: scales, k: k, grad: grad)
                XCTAssertNil(e)
                gradient = out.map { $0.doubleValue }
            } else {
                let (out, e) = topKBackward(values.map { Float($0) }, tokens: tokens, vocab: vocab, labels: labels,
                                            scales: scales, k: k, grad: grad)
                XCTAssertNil(e)
                gradient = out.map { Double($0) }
            }
            var outside = 0
            for t in 0..<tokens {
                let row = Array(values[(t * vocab)..<((t + 1) * vocab)])
                let want = topKReference(row, label: Int(labels[t]), scale: Double(scales[t]), k: k, grad: Double(grad[t]))
                if want.logprob == TopKLogprob.outsideLogprob {
                    outside += 1
                    XCTAssertEqual(logprob[t], -1e4, "token \(t)")
                } else {
                    XCTAssertLessThan(llmMixedError(Double(logprob[t]), want.logprob), 1e-6, "token \(t)")
                }
                XCTAssertLessThan(Swift.abs(Double(entropy[t]) - want.entropy) / max(want.entropy, 1e-3), 1e-5, "token \(t)")
                for j in 0..<vocab {
                    let got = gradient[t * vocab + j], expected = want.gradient[j]
                    if expected == 0 { XCTAssertEqual(got, 0, "token \(t) entry \(j)"); continue }
                    XCTAssertLessThan(Swift.abs(got - expected), (bf16 ? 4e-3 : 1e-7) * Swift.abs(expected) + 1e-12,
                                      "token \(t) entry \(j)")
                }
            }
            XCTAssertGreaterThanOrEqual(outside, 2)  // the 21st-label rows (and row 3: ten finite logits only)
        }
    }

    /// Ties at the k-th value: the lower index wins, in every thread setting and whichever
    /// piece of the row the tied values fall in.
    func testTieRuleLowerIndexWins() {
        let vocab = 5000
        var row = [Float](repeating: 0, count: vocab)
        for i in [7, 2100, 4999] { row[i] = 3 }  // three tied at the top, k = 2: indices 7 and 2100
        for i in [100, 2500] { row[i] = 1 }       // tied at the k-th value for k = 4: 100 wins
        let labels: [Int64] = [7, 2100, 4999, 100, 2500]
        let logits = Array([[Float]](repeating: row, count: labels.count).joined())
        let ones = [Float](repeating: 1, count: labels.count)
        let (two, _, e2) = topKForward(logits, tokens: 5, vocab: vocab, labels: labels, scales: ones, k: 2)
        XCTAssertNil(e2)
        XCTAssertEqual(two[0], Float(-Glibc.log(2.0)))
        XCTAssertEqual(two[1], Float(-Glibc.log(2.0)))
        XCTAssertEqual(two[2], -1e4)
        let (four, _, e4) = topKForward(logits, tokens: 5, vocab: vocab, labels: labels, scales: ones, k: 4)
        XCTAssertNil(e4)
        XCTAssertNotEqual(four[3], -1e4)
        XCTAssertEqual(four[4], -1e4)
    }

    /// k = 1: the argmax gets 0 and zero gradients; k >= vocab: the full pass bit for bit.
    func testKLimits() {
        var rng = TestRandom(seed: 62)
        let tokens = 6, vocab = 700
        let logits = (0..<(tokens * vocab)).map { _ in Float(rng.normal() * 3) }
        let labels = (0..<tokens).map { _ in Int64(rng.int(vocab)) }
        let scales: [Float] = [2, 1, 0.5, 2, 1, 0.5]
        let grad = (0..<tokens).map { _ in Float(rng.normal()) }
        var fullLogprob = [Float](repeating: 0, count: tokens), fullEntropy = fullLogprob
        XCTAssertNil(llmForward(logits, tokens: tokens, vocab: vocab, labels: labels, scales: scales,
                                logprob: &fullLogprob, entropy: &fullEntropy))
        var fullGradient = [Float](repeating: 0, count: logits.count)
        XCTAssertNil(llmBackward(logits, tokens: tokens, vocab: vocab, labels: labels, scales: scales, grad: grad,
                                 &fullGradient))
        for k in [vocab, vocab + 1, Int.max] {
            let (logprob, entropy, error) = topKForward(logits, tokens: tokens, vocab: vocab, labels: labels, scales: scales, k: k)
            XCTAssertNil(error)
            XCTAssertEqual(llmBits(logprob), llmBits(fullLogprob))
            XCTAssertEqual(llmBits(entropy), llmBits(fullEntropy))
            let (gradient, e) = topKBackward(logits, tokens: tokens, vocab: vocab, labels: labels, scales: scales, k: k, grad: grad)
            XCTAssertNil(e)
            XCTAssertEqual(llmBits(gradient), llmBits(fullGradient))
        }
        let argmax = (0..<tokens).map { t in Int64((0..<vocab).max { logits[t * vocab + $0] < logits[t * vocab + $1] }!) }
        let (logprob, entropy, _) = topKForward(logits, tokens: tokens, vocab: vocab, labels: argmax, scales: scales, k: 1)
        XCTAssertEqual(logprob, [Float](repeating: 0, count: tokens))
        XCTAssertEqual(llmBits(entropy), llmBits(fullEntropy))  // the full row's entropy: one piece, the same pass
        let (gradient, _) = topKBackward(logits, tokens: tokens, vocab: vocab, labels: argmax, scales: scales, k: 1, grad: grad)
        XCTAssertTrue(gradient.allSatisfy { $0 == 0 })
        for k in [0, -1, Int.min] {
            XCTAssertEqual(topKForward(logits, tokens: tokens, vocab: vocab, labels: labels, scales: scales, k: k).2, .badParameter)
        }
    }

    /// The gradient against central differences of the forward, in float64 storage.
    func testGradientMatchesFiniteDifferences() {
        var rng = TestRandom(seed: 63)
        let tokens = 3, vocab = 50, k = 5
        var logits = (0..<(tokens * vocab)).map { _ in rng.normal() * 2 }
        let labels: [Int64] = (0..<tokens).map { t in
            Int64((0..<vocab).max { logits[t * vocab + $0] < logits[t * vocab + $1] }!)
        }
        logits[1 * vocab + 3] = -.infinity
        let scales: [Float] = [2, 1, 0.5]
        let grad: [Float] = [1, -0.5, 2]
        let (gradient, error) = topKBackward(logits, tokens: tokens, vocab: vocab, labels: labels, scales: scales, k: k, grad: grad)
        XCTAssertNil(error)
        func objective(_ z: [Double]) -> Double {
            var total = 0.0
            for t in 0..<tokens {
                let row = Array(z[(t * vocab)..<((t + 1) * vocab)])
                total += Double(grad[t]) * topKReference(row, label: Int(labels[t]), scale: Double(scales[t]), k: k, grad: 1).logprob
            }
            return total
        }
        // The forward of the core, in double, against the reference first.
        var worst = 0.0
        let h = 1e-6
        for i in 0..<logits.count where logits[i] > -.infinity {
            var up = logits, down = logits
            up[i] += h
            down[i] -= h
            let difference = (objective(up) - objective(down)) / (2 * h)
            worst = max(worst, Swift.abs(difference - gradient[i]))
        }
        XCTAssertLessThan(worst, 1e-8)
        // and the reference forward is the core's forward (float64 storage).
        let (logprob, _, _) = topKForward(logits, tokens: tokens, vocab: vocab, labels: labels, scales: scales, k: k)
        for t in 0..<tokens {
            let row = Array(logits[(t * vocab)..<((t + 1) * vocab)])
            let want = topKReference(row, label: Int(labels[t]), scale: Double(scales[t]), k: k, grad: 1).logprob
            XCTAssertLessThan(llmMixedError(Double(logprob[t]), want), 1e-7)
        }
    }

    /// Bad rows (NaN, +inf, fully masked, masked label) throw, and nothing is written.
    func testBadRowsWriteNothing() {
        let vocab = 100
        var logits = [Float](repeating: 0.5, count: 2 * vocab)
        let labels: [Int64] = [1, 2]
        let scales: [Float] = [1, 1]
        for (i, value, error) in [(150, Float.nan, ERAError.nonFinite), (150, .infinity, .nonFinite), (102, -.infinity, .badIndex)] {
            var bad = logits
            bad[i] = value
            let (logprob, _, e) = topKForward(bad, tokens: 2, vocab: vocab, labels: labels, scales: scales, k: 3)
            XCTAssertEqual(e, error)
            XCTAssertTrue(logprob.allSatisfy { $0.isNaN })
            let (gradient, eb) = topKBackward(bad, tokens: 2, vocab: vocab, labels: labels, scales: scales, k: 3, grad: [1, 1])
            XCTAssertEqual(eb, error)
            XCTAssertTrue(gradient.allSatisfy { $0 == 7 })
        }
        for i in vocab..<(2 * vocab) { logits[i] = -.infinity }
        XCTAssertEqual(topKForward(logits, tokens: 2, vocab: vocab, labels: labels, scales: scales, k: 3).2, .nonFinite)
    }

    /// The linear head: against the top-k reference on logits formed in double, and the
    /// same bits for every thread setting.
    func testLinearHeadMatchesReference() throws {
        var rng = TestRandom(seed: 64)
        let tokens = 140, dim = 8, vocab = 4500, k = 20  // two token blocks, three vocabulary chunks
        let hidden = (0..<(tokens * dim)).map { _ in Float(rng.normal()) }
        let weight = (0..<(vocab * dim)).map { _ in Float(rng.normal() * 0.7) }
        var logits = [Double](repeating: 0, count: tokens * vocab)
        for t in 0..<tokens {
            for v in 0..<vocab {
                var x = 0.0
                for j in 0..<dim { x += Double(hidden[t * dim + j]) * Double(weight[v * dim + j]) }
                logits[t * vocab + v] = x
            }
        }
        let labels: [Int64] = (0..<tokens).map { t in
            t % 2 == 0 ? Int64((0..<vocab).max { logits[t * vocab + $0] < logits[t * vocab + $1] }!) : Int64(rng.int(vocab))
        }
        let scales: [Float] = (0..<tokens).map { [2, 1, 0.5][$0 % 3] }
        let grad = (0..<tokens).map { _ in Float(rng.normal()) }
        func run() throws -> ([Float], [Float], [Float], [Float]) {
            var logprob = [Float](repeating: .nan, count: tokens), entropy = logprob
            var gradHidden = [Float](repeating: .nan, count: tokens * dim), gradWeight = [Float](repeating: .nan, count: vocab * dim)
            try LinearHeads.topKLogprobForward(tokens: tokens, vocab: vocab, dim: dim, hidden: hidden, weight: weight,
                                               labels: labels, scales: scales, topK: k, outLogprob: &logprob,
                                               outEntropy: &entropy)
            try LinearHeads.topKLogprobBackward(tokens: tokens, vocab: vocab, dim: dim, hidden: hidden, weight: weight,
                                                labels: labels, scales: scales, topK: k, gradLogprob: grad,
                                                outGradHidden: &gradHidden, outGradWeight: &gradWeight)
            return (logprob, entropy, gradHidden, gradWeight)
        }
        let (logprob, entropy, gradHidden, gradWeight) = try run()
        var refHidden = [Double](repeating: 0, count: tokens * dim), refWeight = [Double](repeating: 0, count: vocab * dim)
        for t in 0..<tokens {
            let row = Array(logits[(t * vocab)..<((t + 1) * vocab)])
            let want = topKReference(row, label: Int(labels[t]), scale: Double(scales[t]), k: k, grad: Double(grad[t]))
            if want.logprob == TopKLogprob.outsideLogprob {
                XCTAssertEqual(logprob[t], -1e4)
            } else {
                XCTAssertLessThan(llmMixedError(Double(logprob[t]), want.logprob), 1e-5, "token \(t)")
            }
            XCTAssertLessThan(Swift.abs(Double(entropy[t]) - want.entropy) / want.entropy, 1e-4, "token \(t)")
            for v in 0..<vocab where want.gradient[v] != 0 {
                for j in 0..<dim {
                    refHidden[t * dim + j] += want.gradient[v] * Double(weight[v * dim + j])
                    refWeight[v * dim + j] += want.gradient[v] * Double(hidden[t * dim + j])
                }
            }
        }
        let hiddenScale = refHidden.map(Swift.abs).max()!, weightScale = refWeight.map(Swift.abs).max()!
        XCTAssertLessThan(zip(gradHidden, refHidden).map { Swift.abs(Double($0) - $1) }.max()!, 1e-5 * hiddenScale)
        XCTAssertLessThan(zip(gradWeight, refWeight).map { Swift.abs(Double($0) - $1) }.max()!, 1e-5 * weightScale)
        let saved = Threads.current
        defer { try? Threads.set(saved) }
        for threads in [1, 3] {
            try Threads.set(threads)
            let again = try run()
            XCTAssertEqual(llmBits(again.0), llmBits(logprob))
            XCTAssertEqual(llmBits(again.1), llmBits(entropy))
            XCTAssertEqual(llmBits(again.2), llmBits(gradHidden))
            XCTAssertEqual(llmBits(again.3), llmBits(gradWeight))
        }
    }
}
