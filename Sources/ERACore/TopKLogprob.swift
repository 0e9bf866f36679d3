// Top-k LLM-ERA log-probabilities (docs/math.md, "Top-k log-probabilities"; spec 6.1), as the
// official ERA-LLM actor computes them (k = 20). With u = s_t z_t and K_t its k largest
// entries (lower index first at a tie):
//   logp'_t = u[a_t] - logsumexp_{j in K_t} u_j   if a_t in K_t,  else outsideLogprob (-1e4)
//   dlogp'_t/dz_t[j] = s_t (1{j = a_t} - softmax_{K_t}(u)_j) for j in K_t, 0 elsewhere
//   (0 everywhere when a_t is outside K_t).
// The entropy stays the full-vocabulary entropy of softmax(u).

public enum TopKLogprob {
    /// The log-probability of a label outside the top k (the official constant), whose
    /// gradient is zero.
    public static let outsideLogprob = -1.0e4

    /// The vocabulary is streamed in pieces of this many logits: each piece is folded into the
    /// softmax statistics and then into the selection while it is in cache.
    static let piece = 2048

    /// Throws .badParameter for top_k < 1.
    static func validate(topK: Int) throws(ERAError) {
        guard topK >= 1 else { throw .badParameter }
    }

    /// The full-row softmax statistics (when `statistics`) and the top-k selection of one row
    /// in one pass, piece by piece. nil for NaN or +inf, or a fully masked row.
    @inline(__always)
    static func scanRow<S: LogitStorage>(_ row: UnsafePointer<S>, vocab: Int, scale: Double, statistics: Bool,
                                         selection: inout TopKSelection) -> OnlineSoftmax?? {
        var total: OnlineSoftmax? = nil
        var start = 0
        while start < vocab {
            let count = min(piece, vocab - start)
            if statistics {
                // streamRow is nil for a fully masked piece as well as for a bad one; the
                // selection's scan below tells the two apart.
                if let stats = streamRow(row + start, count: count, scale: scale) {
                    total = total.map { $0.merged(with: stats) } ?? stats
                }
            }
            guard selection.add(row + start, count: count, offset: start) else { return nil }
            start += count
        }
        guard selection.count > 0 else { return nil }  // every logit masked
        return .some(total)
    }

    /// logp'_t as above and, when `outEntropy` is given, the full-vocabulary entropy of
    /// softmax(s_t z_t), from one pass over each row. top_k >= vocab is the full log-softmax
    /// (LLMERA.logprobForward, bit for bit). Throws as LLMERA.logprobForward, and .badParameter
    /// for topK < 1; nothing is written then.
    public static func forward<S: LogitStorage>(
        tokens: Int, vocab: Int, logits: UnsafePointer<S>, labels: UnsafePointer<Int64>, scales: UnsafePointer<Float>?,
        topK: Int, outLogprob: UnsafeMutablePointer<Float>, outEntropy: UnsafeMutablePointer<Float>?) throws(ERAError) {
        try validate(topK: topK)
        guard topK < vocab else {
            try LLMERA.logprobForward(tokens: tokens, vocab: vocab, logits: logits, labels: labels, scales: scales,
                                      outLogprob: outLogprob, outEntropy: outEntropy)
            return
        }
        try LLMERA.validate(tokens: tokens, vocab: vocab, labels: labels, scales: scales)
        let scratch = try Scratch(blocks: 1, perBlock: 3 * tokens)
        guard let logprobs = scratch.base else { return }
        let entropies = logprobs + tokens
        let selectionScratch = try TypedScratch<Double>(perBlock: tokens * topK)
        let indexScratch = try TypedScratch<Int>(perBlock: tokens * topK)
        let selectionValues = selectionScratch.base!, selectionIndices = indexScratch.base!
        try LLMERA.forEachToken(tokens: tokens, vocab: vocab, faults: logprobs + 2 * tokens) { t in
            let row = logits + t * vocab
            let s = scales.map { Double($0[t]) } ?? 1
            var selection = TopKSelection(values: selectionValues + t * topK, indices: selectionIndices + t * topK,
                                          capacity: topK)
            guard let scanned = scanRow(row, vocab: vocab, scale: s, statistics: outEntropy != nil,
                                        selection: &selection) else { return .nonFinite }
            let label = Int(labels[t])
            guard row[label].doubleValue > -Double.infinity else { return .maskedLabel }
            entropies[t] = scanned?.entropy ?? 0
            guard selection.contains(label) else {
                logprobs[t] = outsideLogprob
                return .none
            }
            // (s z_a - s v_max) - log sum_K exp(s v - s v_max), as LLMERA.logprobForward.
            let sums = selection.scaledSums(scale: s)
            logprobs[t] = (s * row[label].doubleValue - sums.maximum) - Math.log(sums.sumExp)
            return Float(logprobs[t]).isFinite ? .none : .overflow
        }
        for t in 0..<tokens {
            outLogprob[t] = Float(logprobs[t])
            outEntropy?[t] = Float(entropies[t])
        }
    }

    /// out[t, j] = grad[t] s_t (1{j = a_t} - softmax_{K_t}(s_t z_t)_j) for j in K_t, 0 elsewhere
    /// (the whole row 0 when a_t is outside K_t). A first pass over every row selects K_t and
    /// keeps its k gradient entries in scratch (so a bad row is found before anything is
    /// written); a second writes each output element once. `outGrad` may be `logits`.
    /// top_k >= vocab is LLMERA.logprobBackward. Throws as LLMERA.logprobBackward, and
    /// .badParameter for topK < 1.
    public static func backward<S: LogitStorage>(
        tokens: Int, vocab: Int, logits: UnsafePointer<S>, labels: UnsafePointer<Int64>, scales: UnsafePointer<Float>?,
        topK: Int, gradLogprob: UnsafePointer<Float>, outGrad: UnsafeMutablePointer<S>) throws(ERAError) {
        try validate(topK: topK)
        guard topK < vocab else {
            try LLMERA.logprobBackward(tokens: tokens, vocab: vocab, logits: logits, labels: labels, scales: scales,
                                       gradLogprob: gradLogprob, outGrad: outGrad)
            return
        }
        try LLMERA.validate(tokens: tokens, vocab: vocab, labels: labels, scales: scales)
        for t in 0..<tokens {
            guard gradLogprob[t].isFinite else { throw .nonFinite }
            let bound = Double(gradLogprob[t]) * (scales.map { Double($0[t]) } ?? 1)
            guard S(rounding: bound).doubleValue.isFinite else { throw .badParameter }
        }
        // Per token: how many entries are written (0: label outside the top k), then the
        // entries (index ascending, gradient) in k slots.
        let scratch = try Scratch(blocks: 1, perBlock: 2 * tokens)
        guard let entryCounts = scratch.base else { return }
        let selectionScratch = try TypedScratch<Double>(perBlock: tokens * topK)
        let indexScratch = try TypedScratch<Int>(perBlock: tokens * topK)
        let gradients = selectionScratch.base!, entryIndices = indexScratch.base!
        try LLMERA.forEachToken(tokens: tokens, vocab: vocab, faults: entryCounts + tokens) { t in
            let row = logits + t * vocab
            let s = scales.map { Double($0[t]) } ?? 1
            var selection = TopKSelection(values: gradients + t * topK, indices: entryIndices + t * topK,
                                          capacity: topK)
            guard scanRow(row, vocab: vocab, scale: s, statistics: false, selection: &selection) != nil else {
                return .nonFinite
            }
            let label = Int(labels[t])
            guard row[label].doubleValue > -Double.infinity else { return .maskedLabel }
            guard selection.contains(label) else {
                entryCounts[t] = 0
                return .none
            }
            // The values become gradients in place, then the entries are put in index order.
            let sums = selection.scaledSums(scale: s)
            let g = Double(gradLogprob[t]) * s, inverseSum = 1 / sums.sumExp
            let n = selection.count
            for p in 0..<n {
                let probability = Math.exp(max(s * selection.values[p] - sums.maximum, SoftmaxStatistics.lowestShift))
                    * inverseSum
                selection.values[p] = g * ((selection.indices[p] == label ? 1 : 0) - probability)
            }
            sortByIndex(values: selection.values, indices: selection.indices, count: n)
            entryCounts[t] = Double(n)
            return .none
        }
        try forEachRowBlock(rows: tokens, workPerRow: vocab) { (range, _) in
            for t in range {
                let out = outGrad + t * vocab
                let entries = entryIndices + t * topK, values = gradients + t * topK
                let zero = S(rounding: 0)
                var next = 0
                for p in 0..<Int(entryCounts[t]) {
                    let index = entries[p]
                    while next < index {
                        out[next] = zero
                        next += 1
                    }
                    out[index] = S(rounding: values[p])
                    next = index + 1
                }
                while next < vocab {
                    out[next] = zero
                    next += 1
                }
            }
        }
    }

    /// Insertion sort of k (value, index) pairs by index (k is small).
    @inline(__always)
    static func sortByIndex(values: UnsafeMutablePointer<Double>, indices: UnsafeMutablePointer<Int>, count: Int) {
        guard count > 1 else { return }
        for p in 1..<count {
            let v = values[p], i = indices[p]
            var q = p
            while q > 0 && indices[q - 1] > i {
                values[q] = values[q - 1]
                indices[q] = indices[q - 1]
                q -= 1
            }
            values[q] = v
            indices[q] = i
        }
    }
}
