// Top-k LLM-ERA log-probabilities through the fused linear head (docs/linear-heads.md,
// docs/math.md "Top-k log-probabilities"): the logits z = hidden · weightᵀ are formed one tile
// at a time as in LinearHeads, and each token's top-k selection is carried across the
// vocabulary tiles (one selection per chunk group, merged in group order).
import COpenBLAS

/// Per-token top-k selections in scratch: k (value, index) slots per token and group, and how
/// many of them are filled.
final class TopKSlots {
    let k: Int
    let values: TypedScratch<Double>
    let indices: TypedScratch<Int>
    let counts: TypedScratch<Int>

    init(k: Int, selections: Int) throws(ERAError) {
        self.k = k
        values = try TypedScratch<Double>(perBlock: selections * k)
        indices = try TypedScratch<Int>(perBlock: selections * k)
        counts = try TypedScratch<Int>(perBlock: selections)
    }

    func selection(_ slot: Int) -> TopKSelection {
        TopKSelection(values: values.base! + slot * k, indices: indices.base! + slot * k, capacity: k,
                      count: counts.base![slot])
    }

    func store(_ selection: TopKSelection, _ slot: Int) { counts.base![slot] = selection.count }
}

extension LinearHeads {
    /// logp'_t = u[a_t] - logsumexp_{K_t} u (-1e4 when a_t is outside K_t), u = s_t z_t, and,
    /// when `outEntropy` is given, the full-vocabulary entropy of softmax(u), with
    /// z = hidden · weightᵀ formed one tile at a time. top_k >= vocab is logprobForward.
    /// Throws as logprobForward, and .badParameter for topK < 1. Nothing is written then.
    public static func topKLogprobForward(tokens: Int, vocab: Int, dim: Int, hidden: UnsafePointer<Float>?,
                                          weight: UnsafePointer<Float>, labels: UnsafePointer<Int64>?,
                                          scales: UnsafePointer<Float>?, topK: Int,
                                          outLogprob: UnsafeMutablePointer<Float>?,
                                          outEntropy: UnsafeMutablePointer<Float>?) throws(ERAError) {
        try TopKLogprob.validate(topK: topK)
        guard topK < vocab else {
            try logprobForward(tokens: tokens, vocab: vocab, dim: dim, hidden: hidden, weight: weight, labels: labels,
                               scales: scales, outLogprob: outLogprob, outEntropy: outEntropy)
            return
        }
        let statisticsScratch = try TypedScratch<TokenStatistics>(perBlock: tokens)
        guard let inputs = try forwardInputs(tokens: tokens, vocab: vocab, dim: dim, hidden: hidden, weight: weight,
                                             labels: labels, scales: scales, outLogprob: outLogprob) else { return }
        let (hidden, labels, outLogprob) = (inputs.hidden, inputs.labels, inputs.outLogprob)
        let tiling = LogitTiling(tokens: tokens, vocab: vocab, dim: dim)
        let perToken = statisticsScratch.base!
        let selections = try TopKSlots(k: topK, selections: tokens)
        try topKStatistics(tiling, hidden: hidden, weight: weight, labels: labels, scales: scales, entropy: true,
                           perToken: perToken, selections: selections)
        func logprob(_ t: Int) -> Double {
            let selection = selections.selection(t)
            guard selection.contains(Int(labels[t])) else { return TopKLogprob.outsideLogprob }
            let s = scales.map { Double($0[t]) } ?? 1
            let sums = selection.scaledSums(scale: s)
            return (s * perToken[t].labelLogit - sums.maximum) - Math.log(sums.sumExp)
        }
        for t in 0..<tokens {
            guard Float(logprob(t)).isFinite else { throw .badParameter }
        }
        for t in 0..<tokens {
            outLogprob[t] = Float(logprob(t))
            outEntropy?[t] = Float(perToken[t].softmax.entropy)
        }
    }

    /// Gradients of sum_t g_t logp'_t (s_t constant) with z = hidden · weightᵀ, where
    ///   dz_t,j = g_t s_t (1{j = a_t} - softmax_{K_t}(s_t z_t)_j) for j in K_t, else 0
    ///   outGradHidden = dz · weight,  outGradWeight = dzᵀ · hidden
    /// each written (not accumulated) when given. One pass over the tiles selects K_t; dz then
    /// has at most k entries per token, and both products are sums over those entries (token
    /// order for the weight, so that results do not depend on the thread setting).
    /// top_k >= vocab is logprobBackward. Throws as logprobBackward, and .badParameter for
    /// topK < 1. Nothing is written then.
    public static func topKLogprobBackward(tokens: Int, vocab: Int, dim: Int, hidden: UnsafePointer<Float>?,
                                           weight: UnsafePointer<Float>, labels: UnsafePointer<Int64>?,
                                           scales: UnsafePointer<Float>?, topK: Int,
                                           gradLogprob: UnsafePointer<Float>?,
                                           outGradHidden: UnsafeMutablePointer<Float>?,
                                           outGradWeight: UnsafeMutablePointer<Float>?) throws(ERAError) {
        try TopKLogprob.validate(topK: topK)
        guard topK < vocab else {
            try logprobBackward(tokens: tokens, vocab: vocab, dim: dim, hidden: hidden, weight: weight, labels: labels,
                                scales: scales, gradLogprob: gradLogprob, outGradHidden: outGradHidden,
                                outGradWeight: outGradWeight)
            return
        }
        let statisticsScratch = try TypedScratch<TokenStatistics>(perBlock: tokens)
        let checked = try backwardInputs(tokens: tokens, vocab: vocab, dim: dim, hidden: hidden, weight: weight,
                                         labels: labels, scales: scales, gradLogprob: gradLogprob,
                                         outGradHidden: outGradHidden, outGradWeight: outGradWeight)
        guard let inputs = checked else { return }
        // The bounds of logprobBackward hold here too: the top-k softmax also sums to 1.
        let (hidden, labels, gradLogprob) = (inputs.hidden, inputs.labels, inputs.gradLogprob)
        let tiling = LogitTiling(tokens: tokens, vocab: vocab, dim: dim)
        let selections = try TopKSlots(k: topK, selections: tokens)
        try topKStatistics(tiling, hidden: hidden, weight: weight, labels: labels, scales: scales, entropy: false,
                           perToken: statisticsScratch.base!, selections: selections)
        guard outGradHidden != nil || outGradWeight != nil else { return }
        // The selected values become dz (rounded to float32, as the dense head's dz tile).
        for t in 0..<tokens {
            let selection = selections.selection(t)
            let label = Int(labels[t])
            guard selection.contains(label) else {
                selections.counts.base![t] = 0
                continue
            }
            let s = scales.map { Double($0[t]) } ?? 1
            let sums = selection.scaledSums(scale: s)
            let g = Double(gradLogprob[t]) * s, inverseSum = 1 / sums.sumExp
            for p in 0..<selection.count {
                let probability = Math.exp(max(s * selection.values[p] - sums.maximum, SoftmaxStatistics.lowestShift))
                    * inverseSum
                selection.values[p] = Double(Float(g * ((selection.indices[p] == label ? 1 : 0) - probability)))
            }
        }
        if let outGradHidden {
            // gradHidden[t, :] = sum over the entries of dz_t,j weight[j, :], in double.
            try forEachRowBlock(rows: tokens, workPerRow: topK * dim, scratchPerBlock: dim) { (range, sum) in
                let sum = sum!
                for t in range {
                    let selection = selections.selection(t)
                    for i in 0..<dim { sum[i] = 0 }
                    for p in 0..<selection.count {
                        let dz = selection.values[p], row = weight + selection.indices[p] * dim
                        for i in 0..<dim { sum[i] += dz * Double(row[i]) }
                    }
                    let out = outGradHidden + t * dim
                    for i in 0..<dim { out[i] = Float(sum[i]) }
                }
            }
        }
        if let outGradWeight {
            // gradWeight[j, :] = sum over tokens t (in order) with j in K_t of dz_t,j hidden[t, :].
            for i in 0..<(vocab * dim) { outGradWeight[i] = 0 }
            for t in 0..<tokens {
                let selection = selections.selection(t)
                let row = hidden + t * dim
                for p in 0..<selection.count {
                    let dz = Float(selection.values[p]), out = outGradWeight + selection.indices[p] * dim
                    for i in 0..<dim { out[i] += dz * row[i] }
                }
            }
        }
    }

    /// Fills perToken[t] (the full-vocabulary softmax statistics when `entropy`, and the
    /// label's logit) and the top-k selection of s_t z_t for every token, through the tiles of
    /// LinearHeads.statistics: each (token block, chunk group) tile carries a selection per
    /// token across its chunks, and the group selections are merged in group order.
    /// Throws .nonFinite when a logit overflows float32.
    static func topKStatistics(_ tiling: LogitTiling, hidden: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                               labels: UnsafePointer<Int64>, scales: UnsafePointer<Float>?, entropy: Bool,
                               perToken: UnsafeMutablePointer<TokenStatistics>,
                               selections: TopKSlots) throws(ERAError) {
        let groups = tiling.groups
        let groupScratch = try TypedScratch<OnlineSoftmax>(perBlock: tiling.tokens * groups)
        let groupSelections = try TopKSlots(k: selections.k, selections: tiling.tokens * groups)
        let groupStatistics = groupScratch.base!
        try forEachTile(tiling) { (block, group, tile, gate: borrowing ProductGate) in
            let rows = tiling.tokenRange(block: block)
            let chunks = tiling.chunkRange(group: group)
            for t in rows { groupSelections.counts.base![t * groups + group] = 0 }
            for chunk in chunks {
                let columns = tiling.vocabRange(chunk: chunk)
                gate.run {
                    multiplyLogits(hidden: hidden, weight: weight, dim: tiling.dim, tokens: rows, columns: columns,
                                   into: tile)
                }
                for t in rows {
                    let row = UnsafePointer(tile + (t - rows.lowerBound) * columns.count)
                    // -inf would pass as a mask; here it can only be an overflow.
                    guard allFinite(row, count: columns.count) else { return .nonFinite }
                    let slot = t * groups + group
                    if entropy {
                        guard let stats = streamRow(row, count: columns.count,
                                                    scale: scales.map { Double($0[t]) } ?? 1) else { return .nonFinite }
                        groupStatistics[slot] = chunk == chunks.lowerBound
                            ? stats : groupStatistics[slot].merged(with: stats)
                    }
                    var selection = groupSelections.selection(slot)
                    _ = selection.add(row, count: columns.count, offset: columns.lowerBound)
                    groupSelections.store(selection, slot)
                    let label = Int(labels[t])
                    if columns.contains(label) { perToken[t].labelLogit = Double(row[label - columns.lowerBound]) }
                }
            }
            return .none
        }
        for t in 0..<tiling.tokens {
            if entropy {
                let slots = groupStatistics + t * groups
                var total = slots[0]
                for group in 1..<groups { total = total.merged(with: slots[group]) }
                perToken[t].softmax = total
            } else {
                perToken[t].softmax = OnlineSoftmax()
            }
            selections.counts.base![t] = 0
            var selection = selections.selection(t)
            for group in 0..<groups {
                let part = groupSelections.selection(t * groups + group)
                for p in 0..<part.count { selection.insert(part.values[p], part.indices[p]) }
            }
            selections.store(selection, t)
        }
    }
}
