// Independent float64 references and small helpers for the LLM ERA tests (math 3).
// Nothing here calls ERACore to compute an expected value: the references are plain two-pass
// loops (max, then compensated sums of exp) in Double. Every internal name starts with `llm`
// or `LLM` so that it cannot clash with the helpers of the other test files of this module.
import XCTest
@testable import ERACore
#if canImport(Glibc)
import Glibc
#endif


// MARK: - Softmax reference (two passes, float64)

/// Softmax statistics of one row of (scaled) values v_i:
///   m = max v,  S = 1 + rest  (rest = sum of exp(v_i - m) over all entries but one maximal one),
///   U = sum (v_i - m) exp(v_i - m).
/// Keeping `rest` apart lets log S = log1p(rest) stay accurate for near one-hot rows.
struct LLMReferenceRow {
    let maximum: Double
    let rest: Double
    let shiftedTimesExp: Double

    var sumExp: Double { 1 + rest }
    var logSumExp: Double { maximum + Glibc.log1p(rest) }
    /// H = log S - U/S.
    var entropy: Double { Glibc.log1p(rest) - shiftedTimesExp / (1 + rest) }
    /// softmax probability of a (scaled) value of this row.
    func probability(_ v: Double) -> Double { Glibc.exp(v - maximum) / (1 + rest) }
    /// log softmax of a (scaled) value of this row.
    func logProbability(_ v: Double) -> Double { (v - maximum) - Glibc.log1p(rest) }
}

/// The reference statistics of softmax(scale * row); nil when every entry is -inf.
/// Entries that are -inf are masks and contribute nothing.
func llmReferenceRow(_ row: [Double], scale: Double = 1) -> LLMReferenceRow? {
    // Pass 1: the maximum.
    var m = -Double.infinity
    for z in row {
        let v = scale * z
        if v > m { m = v }
    }
    guard m > -Double.infinity else { return nil }
    // Pass 2: the sums, skipping one occurrence of the maximum (it contributes exactly 1 and 0).
    var rest = CompensatedSum()
    var product = CompensatedSum()
    var skipped = false
    for z in row {
        let v = scale * z
        if v == -Double.infinity { continue }
        let d = v - m
        if d == 0 && !skipped {
            skipped = true
            continue
        }
        // exp(d) is 0 in double below about -745; -inf differences (overflow) are the same.
        if d < -800 { continue }
        let e = Glibc.exp(d)
        rest.add(e)
        product.add(d * e)
    }
    return LLMReferenceRow(maximum: m, rest: rest.value, shiftedTimesExp: product.value)
}

/// Row t of a tokens x vocab array, as Double.
func llmRow(_ values: [Double], _ t: Int, _ vocab: Int) -> [Double] {
    Array(values[(t * vocab)..<((t + 1) * vocab)])
}

/// The reference log-probability logp = s*z[a] - logsumexp(s*z) as a function of Double logits
/// (used for the finite differences as well).
func llmReferenceLogprob(_ row: [Double], label: Int, scale: Double) -> Double {
    let stats = llmReferenceRow(row, scale: scale)!
    return stats.logProbability(scale * row[label])
}

/// The reference gradient g*s*(onehot(a) - softmax(s*z)).
func llmReferenceGradient(_ row: [Double], label: Int, scale: Double, grad: Double) -> [Double] {
    let stats = llmReferenceRow(row, scale: scale)!
    var out = [Double](repeating: 0, count: row.count)
    for i in 0..<row.count {
        let p = row[i] == -Double.infinity ? 0 : stats.probability(scale * row[i])
        out[i] = grad * scale * ((i == label ? 1 : 0) - p)
    }
    return out
}

// MARK: - Random logits

/// A tokens x vocab matrix of logits: each row normal with its own spread (cycling through
/// `spreads`) and its own offset, then a share `maskShare` of the entries set to -inf (never
/// all of a row).
func llmRandomLogits(tokens: Int, vocab: Int, spreads: [Double], maskShare: Double = 0,
                     rng: inout TestRandom) -> [Double] {
    var values = [Double](repeating: 0, count: tokens * vocab)
    for t in 0..<tokens {
        let spread = spreads[t % spreads.count]
        let offset = rng.uniform(-20, 20)
        for i in 0..<vocab {
            values[t * vocab + i] = offset + spread * rng.normal()
        }
        if maskShare > 0 && vocab > 1 {
            let keep = rng.int(vocab)
            for i in 0..<vocab where i != keep && rng.uniform() < maskShare {
                values[t * vocab + i] = -Double.infinity
            }
        }
    }
    return values
}

// MARK: - bfloat16, decoded and rounded independently of ERACore

/// The exact value of a bfloat16 bit pattern: the upper half of a float32.
func llmBF16Value(_ bits: UInt16) -> Double {
    Double(Float(bitPattern: UInt32(bits) << 16))
}

/// A bfloat16 bit pattern made by truncating a float32 (an input generator; no rounding).
func llmBF16Truncating(_ value: Double) -> UInt16 {
    UInt16(truncatingIfNeeded: Float(value).bitPattern >> 16)
}

/// Magnitude of the non-negative pattern p (0...0x7F80); the infinity pattern stands for 2^128,
/// the next value after the largest finite one in the bfloat16 grid (IEEE overflow rule).
private func llmBF16Magnitude(_ p: UInt16) -> Double {
    p == 0x7F80 ? 0x1p128 : llmBF16Value(p)
}

/// x rounded to the nearest bfloat16, ties to the even pattern, found by bisection over the
/// ordered non-negative patterns and a comparison with the (exact) midpoint of the two
/// neighbours. NaN gives 0x7FC0 (compare NaN by isNaN, not by bits).
func llmRoundToBF16(_ x: Double) -> UInt16 {
    if x.isNaN { return 0x7FC0 }
    let sign: UInt16 = x.sign == .minus ? 0x8000 : 0
    let a = Swift.abs(x)
    if a >= 0x1p128 { return sign | 0x7F80 }
    // Invariant: magnitude(lo) <= a < magnitude(hi).
    var lo: UInt16 = 0
    var hi: UInt16 = 0x7F80
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2
        if llmBF16Magnitude(mid) <= a { lo = mid } else { hi = mid }
    }
    let low = llmBF16Magnitude(lo)
    if low == a { return sign | lo }
    let midpoint = (low + llmBF16Magnitude(hi)) / 2  // exact: 9 significant bits at most
    if a < midpoint { return sign | lo }
    if a > midpoint { return sign | hi }
    return sign | (lo & 1 == 0 ? lo : hi)
}

/// Distance in units in the last place between two non-NaN bfloat16 patterns (+0 == -0).
func llmBF16UlpDistance(_ a: UInt16, _ b: UInt16) -> Int {
    func ordered(_ p: UInt16) -> Int { p & 0x8000 != 0 ? -Int(p & 0x7FFF) : Int(p) }
    return Swift.abs(ordered(a) - ordered(b))
}

// MARK: - Response entropy and scale references

/// Mean of the max(1, floor(topFraction*L)) largest entropies of each response; NaN if L == 0.
func llmReferenceResponseEntropy(tokenEntropy: [Float], responseId: [Int64], responses: Int,
                                 topFraction: Double) -> [Float] {
    var buckets = [[Double]](repeating: [], count: responses)
    for t in 0..<tokenEntropy.count where responseId[t] >= 0 {
        buckets[Int(responseId[t])].append(Double(tokenEntropy[t]))
    }
    return buckets.map { bucket -> Float in
        if bucket.isEmpty { return .nan }
        let sorted = bucket.sorted(by: >)
        let n = Swift.max(1, Int(Glibc.floor(topFraction * Double(bucket.count))))
        var sum = 0.0
        for i in 0..<n { sum += sorted[i] }
        return Float(sum / Double(n))
    }
}

/// The scale rule of math 3, written out. The entropy is a float32 and the comparisons are made
/// in float32 with the thresholds rounded to float32 (era.h: "as a framework compares a float32
/// tensor with a scalar"), strictly.
func llmReferenceScale(responseEntropy: Float, advantage: Float, omegaLow: Double, omegaHigh: Double,
                       k: Double) -> Double {
    let low = Float(omegaLow), high = Float(omegaHigh)
    if advantage > 0 && responseEntropy < low { return k }
    if advantage > 0 && responseEntropy > high { return 1 / k }
    return 1
}

// MARK: - Calling the kernels on arrays

/// Runs a throwing kernel call and returns its error (nil on success).
func llmCapture(_ body: () throws(ERAError) -> Void) -> ERAError? {
    do {
        try body()
        return nil
    } catch {
        return error
    }
}

func llmTokenEntropy<S: LogitStorage, T: BinaryFloatingPoint>(_ logits: [S], tokens: Int, vocab: Int,
                                                               _ out: inout [T]) -> ERAError? {
    logits.withUnsafeBufferPointer { lp in
        out.withUnsafeMutableBufferPointer { op in
            llmCapture { () throws(ERAError) in
                try LLMERA.tokenEntropy(tokens: tokens, vocab: vocab, logits: lp.baseAddress!, out: op.baseAddress!)
            }
        }
    }
}

func llmResponseEntropy(_ parameters: LLMParameters, tokenEntropy: [Float]?, responseId: [Int64]?,
                        responses: Int, tokens: Int, _ out: inout [Float], passOut: Bool = true) -> ERAError? {
    let entropies = tokenEntropy ?? [0]
    let ids = responseId ?? [0]
    return entropies.withUnsafeBufferPointer { ep in
        ids.withUnsafeBufferPointer { ip in
            out.withUnsafeMutableBufferPointer { op in
                llmCapture { () throws(ERAError) in
                    try LLMERA.responseEntropy(parameters: parameters, tokens: tokens,
                                               tokenEntropy: tokenEntropy == nil ? nil : ep.baseAddress!,
                                               responseId: responseId == nil ? nil : ip.baseAddress!,
                                               responses: responses, out: passOut ? op.baseAddress! : nil)
                }
            }
        }
    }
}

func llmScales(_ parameters: LLMParameters, responseEntropy: [Float], responses: Int, responseId: [Int64],
               advantages: [Float], scale: inout [Float], outAdvantages: inout [Float]) -> ERAError? {
    responseEntropy.withUnsafeBufferPointer { rp in
        responseId.withUnsafeBufferPointer { ip in
            advantages.withUnsafeBufferPointer { ap in
                scale.withUnsafeMutableBufferPointer { sp in
                    outAdvantages.withUnsafeMutableBufferPointer { op in
                        llmCapture { () throws(ERAError) in
                            try LLMERA.scales(parameters: parameters, tokens: responseId.count,
                                              responseEntropy: rp.baseAddress!, responses: responses,
                                              responseId: ip.baseAddress!, advantages: ap.baseAddress!,
                                              outScale: sp.baseAddress!, outAdvantages: op.baseAddress!)
                        }
                    }
                }
            }
        }
    }
}

/// scales with outAdvantages == advantages (in place).
func llmScalesInPlace(_ parameters: LLMParameters, responseEntropy: [Float], responses: Int,
                      responseId: [Int64], advantages: inout [Float], scale: inout [Float]) -> ERAError? {
    responseEntropy.withUnsafeBufferPointer { rp in
        responseId.withUnsafeBufferPointer { ip in
            advantages.withUnsafeMutableBufferPointer { ap in
                scale.withUnsafeMutableBufferPointer { sp in
                    llmCapture { () throws(ERAError) in
                        try LLMERA.scales(parameters: parameters, tokens: responseId.count,
                                          responseEntropy: rp.baseAddress!, responses: responses,
                                          responseId: ip.baseAddress!, advantages: UnsafePointer(ap.baseAddress!),
                                          outScale: sp.baseAddress!, outAdvantages: ap.baseAddress!)
                    }
                }
            }
        }
    }
}

func llmForward<S: LogitStorage>(_ logits: [S], tokens: Int, vocab: Int, labels: [Int64], scales: [Float]?,
                                 logprob: inout [Float], entropy: inout [Float],
                                 passEntropy: Bool = true) -> ERAError? {
    let scaleValues = scales ?? [1]
    return logits.withUnsafeBufferPointer { lp in
        labels.withUnsafeBufferPointer { bp in
            scaleValues.withUnsafeBufferPointer { sp in
                logprob.withUnsafeMutableBufferPointer { op in
                    entropy.withUnsafeMutableBufferPointer { ep in
                        llmCapture { () throws(ERAError) in
                            try LLMERA.logprobForward(tokens: tokens, vocab: vocab, logits: lp.baseAddress!,
                                                      labels: bp.baseAddress!,
                                                      scales: scales == nil ? nil : sp.baseAddress!,
                                                      outLogprob: op.baseAddress!,
                                                      outEntropy: passEntropy ? ep.baseAddress! : nil)
                        }
                    }
                }
            }
        }
    }
}

func llmBackward<S: LogitStorage>(_ logits: [S], tokens: Int, vocab: Int, labels: [Int64], scales: [Float]?,
                                  grad: [Float], _ out: inout [S]) -> ERAError? {
    let scaleValues = scales ?? [1]
    return logits.withUnsafeBufferPointer { lp in
        labels.withUnsafeBufferPointer { bp in
            scaleValues.withUnsafeBufferPointer { sp in
                grad.withUnsafeBufferPointer { gp in
                    out.withUnsafeMutableBufferPointer { op in
                        llmCapture { () throws(ERAError) in
                            try LLMERA.logprobBackward(tokens: tokens, vocab: vocab, logits: lp.baseAddress!,
                                                       labels: bp.baseAddress!,
                                                       scales: scales == nil ? nil : sp.baseAddress!,
                                                       gradLogprob: gp.baseAddress!, outGrad: op.baseAddress!)
                        }
                    }
                }
            }
        }
    }
}

/// logprobBackward with outGrad == logits: `buffer` holds the logits before, the gradient after.
func llmBackwardInPlace<S: LogitStorage>(_ buffer: inout [S], tokens: Int, vocab: Int, labels: [Int64],
                                         scales: [Float]?, grad: [Float]) -> ERAError? {
    let scaleValues = scales ?? [1]
    return labels.withUnsafeBufferPointer { bp in
        scaleValues.withUnsafeBufferPointer { sp in
            grad.withUnsafeBufferPointer { gp in
                buffer.withUnsafeMutableBufferPointer { op in
                    llmCapture { () throws(ERAError) in
                        try LLMERA.logprobBackward(tokens: tokens, vocab: vocab, logits: UnsafePointer(op.baseAddress!),
                                                   labels: bp.baseAddress!,
                                                   scales: scales == nil ? nil : sp.baseAddress!,
                                                   gradLogprob: gp.baseAddress!, outGrad: op.baseAddress!)
                    }
                }
            }
        }
    }
}

// MARK: - Comparisons

/// Bit patterns, so that arrays holding NaN sentinels can be compared exactly.
func llmBits(_ values: [Float]) -> [UInt32] { values.map(\.bitPattern) }
func llmBits(_ values: [Double]) -> [UInt64] { values.map(\.bitPattern) }
func llmBits(_ values: [BFloat16]) -> [UInt16] { values.map(\.bitPattern) }

/// |actual - expected| / max(1, |expected|): the "abs/rel" error used for float32 outputs.
func llmMixedError(_ actual: Double, _ expected: Double) -> Double {
    Swift.abs(actual - expected) / Swift.max(1, Swift.abs(expected))
}
