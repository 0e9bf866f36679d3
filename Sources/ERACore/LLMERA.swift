// LLM ERA: adaptive post-sampling logit scaling for GRPO-style policy updates (math 3).
//
//   H_t     = entropy(softmax(z_t))
//   Hresp_b = mean of the max(1, floor(top_fraction*L_b)) largest H_t of response b
//   s_t     = k if Hresp_b < omega_low and A_t > 0; 1/k if Hresp_b > omega_high and A_t > 0; else 1
//   A'_t    = A_t / s_t (when scale_advantages)
//   logp'_t = s_t*z_t[a_t] - logsumexp(s_t*z_t),  dlogp'_t/dz_t = s_t*(onehot(a_t) - softmax(s_t*z_t))

/// The parameters of the adaptive scale, validated.
public struct LLMParameters: Sendable {
    public let omegaLow: Double
    public let omegaHigh: Double
    public let k: Double
    public let topFraction: Double
    public let scaleAdvantages: Bool

    /// Throws .badParameter unless all are finite, omegaLow <= omegaHigh, k > 0 with k and 1/k
    /// normal float32 numbers (about 1.2e-38 <= k <= 8.5e37, so that the float32 scales
    /// written are finite and positive), and 0 < topFraction <= 1.
    public init(omegaLow: Double, omegaHigh: Double, k: Double, topFraction: Double, scaleAdvantages: Bool) throws(ERAError) {
        guard omegaLow.isFinite, omegaHigh.isFinite, k.isFinite, topFraction.isFinite,
              omegaLow <= omegaHigh, k > 0, Float(k).isNormal, Float(1 / k).isNormal,
              topFraction > 0, topFraction <= 1 else { throw .badParameter }
        self.omegaLow = omegaLow
        self.omegaHigh = omegaHigh
        self.k = k
        self.topFraction = topFraction
        self.scaleAdvantages = scaleAdvantages
    }

    /// The number of top token entropies averaged for a response of `length` tokens.
    public func topCount(length: Int) -> Int {
        max(1, Int((topFraction * Double(length)).rounded(.down)))
    }

    /// The logit scale of a token of a response with entropy `responseEntropy` and advantage
    /// `advantage`. The comparisons are made in float32, the type of the data, with the
    /// thresholds rounded to float32 (as a framework compares a float32 tensor with a scalar),
    /// so that an entropy equal to Float(omegaLow) is not below omegaLow.
    @inline(__always)
    public func scale(responseEntropy: Float, advantage: Float) -> Double {
        guard advantage > 0 else { return 1 }
        if responseEntropy < Float(omegaLow) { return k }
        if responseEntropy > Float(omegaHigh) { return 1 / k }
        return 1
    }
}

public enum LLMERA {
    /// Work per vocabulary entry, for the thread split.
    static let workPerLogit = 8

    /// Runs `body(token)` for every token across the thread setting, each writing its results
    /// into scratch memory and returning a fault, recorded in `faults`; then throws the first
    /// fault in token order.
    static func forEachToken(tokens: Int, vocab: Int, faults: UnsafeMutablePointer<Double>,
                             _ body: (Int) -> RowFault) throws(ERAError) {
        try forEachRowBlock(rows: tokens, workPerRow: vocab * workPerLogit) { range, _ in
            for t in range { faults[t] = body(t).rawValue }
        }
        for t in 0..<tokens {
            if let error = RowFault(rawValue: faults[t])?.error { throw error }
        }
    }

    /// Entropy of softmax(logits[t, :]) for each token, in one pass over each row. -inf logits
    /// are masked; NaN, +inf or a fully masked row throw .nonFinite, and then nothing is written.
    public static func tokenEntropy<S: LogitStorage, T: BinaryFloatingPoint>(
        tokens: Int, vocab: Int, logits: UnsafePointer<S>, out: UnsafeMutablePointer<T>) throws(ERAError) {
        let scratch = try Scratch(blocks: 1, perBlock: 2 * tokens)
        guard let entropies = scratch.base else { return }
        try forEachToken(tokens: tokens, vocab: vocab, faults: entropies + tokens) { t in
            guard let stats = streamRow(logits + t * vocab, count: vocab, scale: 1) else { return .nonFinite }
            entropies[t] = stats.entropy
            return .none
        }
        for t in 0..<tokens { out[t] = T(entropies[t]) }
    }

    /// Response entropies: for each response b in 0..<responses, the mean of the
    /// max(1, floor(topFraction * L_b)) largest token entropies among its L_b tokens; NaN for a
    /// response without tokens. Tokens with response id -1 are ignored. Pointers may be nil only
    /// where their count (tokens, responses) is 0.
    /// Throws .badIndex for an id outside -1..<responses, .nonFinite for a non-finite entropy
    /// of a response token; nothing is written then.
    public static func responseEntropy(parameters: LLMParameters, tokens: Int, tokenEntropy: UnsafePointer<Float>?,
                                       responseId: UnsafePointer<Int64>?, responses: Int,
                                       out: UnsafeMutablePointer<Float>?) throws(ERAError) {
        // starts[b + 1] counts the tokens of response b, then becomes the bucket boundaries.
        let scratch = try Scratch(blocks: 1, perBlock: (responses + 1) + tokens)
        let starts = scratch.base!  // never empty: responses + 1 >= 1
        for b in 0...responses { starts[b] = 0 }
        if let responseId, let tokenEntropy {
            for t in 0..<tokens {
                let id = responseId[t]
                guard id >= -1, id < Int64(responses) else { throw .badIndex }
                if id >= 0 {
                    guard tokenEntropy[t].isFinite else { throw .nonFinite }
                    starts[Int(id) + 1] += 1
                }
            }
        }
        guard let out, responses > 0 else { return }
        // Bucket the entropies by response (a counting sort), then average each bucket's top.
        for b in 0..<responses { starts[b + 1] += starts[b] }
        let buckets = starts + (responses + 1)
        var fill = [Int](repeating: 0, count: responses)
        if let responseId, let tokenEntropy {
            for t in 0..<tokens where responseId[t] >= 0 {
                let b = Int(responseId[t])
                buckets[Int(starts[b]) + fill[b]] = Double(tokenEntropy[t])
                fill[b] += 1
            }
        }
        for b in 0..<responses {
            let start = Int(starts[b]), length = Int(starts[b + 1]) - start
            guard length > 0 else {
                out[b] = .nan
                continue
            }
            var bucket = UnsafeMutableBufferPointer(start: buckets + start, count: length)
            bucket.sort(by: >)
            let n = parameters.topCount(length: length)
            var sum = 0.0
            for i in 0..<n { sum += bucket[i] }
            out[b] = Float(sum / Double(n))
        }
    }

    /// Per-token logit scales and (when parameters.scaleAdvantages) rescaled advantages A/s.
    /// Tokens with response id -1 get scale 1 and their advantage unchanged.
    /// Throws .badIndex for an id outside -1..<responses, .nonFinite for a non-finite advantage
    /// or a non-finite entropy of a response that some token belongs to.
    public static func scales(parameters: LLMParameters, tokens: Int, responseEntropy: UnsafePointer<Float>?,
                              responses: Int, responseId: UnsafePointer<Int64>, advantages: UnsafePointer<Float>,
                              outScale: UnsafeMutablePointer<Float>, outAdvantages: UnsafeMutablePointer<Float>) throws(ERAError) {
        func scale(_ t: Int) -> Double {
            let id = responseId[t]
            return id < 0 ? 1 : parameters.scale(responseEntropy: responseEntropy![Int(id)], advantage: advantages[t])
        }
        func rescaled(_ t: Int) -> Float {
            parameters.scaleAdvantages ? Float(Double(advantages[t]) / scale(t)) : advantages[t]
        }
        for t in 0..<tokens {
            let id = responseId[t]
            guard id >= -1, id < Int64(responses) else { throw .badIndex }
            guard advantages[t].isFinite else { throw .nonFinite }
            if id >= 0 { guard responseEntropy![Int(id)].isFinite else { throw .nonFinite } }
            // A huge advantage divided by a tiny 1/k can leave the float32 range.
            guard rescaled(t).isFinite else { throw .badParameter }
        }
        for t in 0..<tokens {
            let advantage = rescaled(t)  // read before the write: outAdvantages may be advantages
            outScale[t] = Float(scale(t))
            outAdvantages[t] = advantage
        }
    }

    /// Checks labels (in 0..<vocab) and scales (finite, > 0; nil means 1 everywhere).
    static func validate(tokens: Int, vocab: Int, labels: UnsafePointer<Int64>,
                         scales: UnsafePointer<Float>?) throws(ERAError) {
        for t in 0..<tokens {
            guard labels[t] >= 0, labels[t] < Int64(vocab) else { throw .badIndex }
        }
        if let scales {
            for t in 0..<tokens {
                guard scales[t].isFinite else { throw .nonFinite }
                guard scales[t] > 0 else { throw .badParameter }
            }
        }
    }

    /// logp'_t = s_t*z_t[a_t] - logsumexp(s_t*z_t) and, when `outEntropy` is given, the entropy of
    /// softmax(s_t*z_t), in one pass over each row without forming the scaled logits.
    public static func logprobForward<S: LogitStorage>(
        tokens: Int, vocab: Int, logits: UnsafePointer<S>, labels: UnsafePointer<Int64>, scales: UnsafePointer<Float>?,
        outLogprob: UnsafeMutablePointer<Float>, outEntropy: UnsafeMutablePointer<Float>?) throws(ERAError) {
        try validate(tokens: tokens, vocab: vocab, labels: labels, scales: scales)
        let scratch = try Scratch(blocks: 1, perBlock: 3 * tokens)
        guard let logprobs = scratch.base else { return }
        let entropies = logprobs + tokens
        try forEachToken(tokens: tokens, vocab: vocab, faults: logprobs + 2 * tokens) { t in
            let row = logits + t * vocab
            let s = scales.map { Double($0[t]) } ?? 1
            guard let stats = streamRow(row, count: vocab, scale: s) else { return .nonFinite }
            let labelLogit = row[Int(labels[t])].doubleValue
            guard labelLogit > -Double.infinity else { return .maskedLabel }
            // (s z_a - max) - log S, not s z_a - (max + log S): next to logits of 1e30 the
            // second loses log S entirely (ties at 1e30 gave log-probability 0, not -log 2).
            logprobs[t] = (s * labelLogit - stats.maximum) - Math.log(stats.sumExp)
            entropies[t] = stats.entropy
            return Float(logprobs[t]).isFinite ? .none : .overflow
        }
        for t in 0..<tokens {
            outLogprob[t] = Float(logprobs[t])
            outEntropy?[t] = Float(entropies[t])
        }
    }

    /// out[t, i] = grad[t] * s_t * (1{i == a_t} - softmax(s_t*z_t)_i): one pass per row for
    /// logsumexp (all rows, so that a bad row is found before anything is written), one more to
    /// write. `outGrad` may be `logits`.
    public static func logprobBackward<S: LogitStorage>(
        tokens: Int, vocab: Int, logits: UnsafePointer<S>, labels: UnsafePointer<Int64>, scales: UnsafePointer<Float>?,
        gradLogprob: UnsafePointer<Float>, outGrad: UnsafeMutablePointer<S>) throws(ERAError) {
        try validate(tokens: tokens, vocab: vocab, labels: labels, scales: scales)
        for t in 0..<tokens {
            guard gradLogprob[t].isFinite else { throw .nonFinite }
            // |gradient| <= |g| * s: keep it inside the range of the output type.
            let bound = Double(gradLogprob[t]) * (scales.map { Double($0[t]) } ?? 1)
            guard S(rounding: bound).doubleValue.isFinite else { throw .badParameter }
        }
        // Per token: the row max and sum of exp(v - max), from which softmax = exp(v - max)/S.
        // (exp(v - logsumexp) would round: for v = 1e30, logsumexp = 1e30 + log 2 is 1e30.)
        let scratch = try Scratch(blocks: 1, perBlock: 3 * tokens)
        guard let maxima = scratch.base else { return }
        let sums = maxima + tokens
        try forEachToken(tokens: tokens, vocab: vocab, faults: maxima + 2 * tokens) { t in
            let row = logits + t * vocab
            guard let stats = streamRow(row, count: vocab, scale: scales.map { Double($0[t]) } ?? 1) else { return .nonFinite }
            guard row[Int(labels[t])].doubleValue > -Double.infinity else { return .maskedLabel }
            maxima[t] = stats.maximum
            sums[t] = stats.sumExp
            return .none
        }
        try forEachRowBlock(rows: tokens, workPerRow: vocab * workPerLogit) { range, _ in
            for t in range {
                let s = scales.map { Double($0[t]) } ?? 1
                let g = Double(gradLogprob[t]) * s
                let maximum = maxima[t], inverseSum = 1 / sums[t]
                let label = Int(labels[t])
                let row = logits + t * vocab
                let out = outGrad + t * vocab
                if VectorKernels.logprobGradientRow(row, count: vocab, scale: s, maximum: maximum, inverseSum: inverseSum,
                                                    gradScale: g, label: label, out: out) { continue }
                for i in 0..<vocab {
                    let p = Math.exp(max(s * row[i].doubleValue - maximum, SoftmaxStatistics.lowestShift)) * inverseSum
                    out[i] = S(rounding: g * ((i == label ? 1 : 0) - p))
                }
            }
        }
    }
}
