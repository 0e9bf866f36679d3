// Fused linear heads (docs/linear-heads.md): the LLM-ERA log-probability of math 3 and a
// discrete-ERA cross-entropy (math 2) computed straight from hidden states and an output
// weight matrix, z = hidden · weightᵀ (+ bias).
//
// The LLM passes never form the tokens x vocab logits. They multiply one tile of at most
// tokenBlock x vocabChunk logits at a time (cblas_sgemm), fold it into per-token softmax
// statistics or into the gradients, and drop it: scratch memory is a tile per thread plus a
// few numbers per token.
import COpenBLAS
import Synchronization

/// How one call cuts its tokens x vocab logits into tiles. Every size here depends on the
/// problem only, never on the thread setting, so every matrix product has the same operands
/// whichever thread runs it and every sum is taken in the same order: results are identical
/// bit for bit for every thread setting (docs/linear-heads.md, "Threads").
struct LogitTiling {
    /// Tokens per block and vocabulary entries per chunk: a tile is at most 128 x 2048 floats
    /// (1 MiB), large enough for the matrix products to run near the BLAS's peak.
    static let tokenBlock = 128
    static let vocabChunk = 2048
    /// The chunks are dealt, in order, to at most this many groups of consecutive chunks. A
    /// group is the unit of parallel work across the vocabulary: its statistics and its share
    /// of the hidden-state gradient are kept apart and summed in group order.
    static let maximumGroups = 16

    let tokens: Int
    let vocab: Int
    let dim: Int
    let blocks: Int
    let chunks: Int
    let groups: Int

    init(tokens: Int, vocab: Int, dim: Int) {
        self.tokens = tokens
        self.vocab = vocab
        self.dim = dim
        blocks = (tokens + LogitTiling.tokenBlock - 1) / LogitTiling.tokenBlock
        chunks = (vocab + LogitTiling.vocabChunk - 1) / LogitTiling.vocabChunk
        groups = min(chunks, LogitTiling.maximumGroups)
    }

    func tokenRange(block: Int) -> Range<Int> {
        (block * LogitTiling.tokenBlock)..<min(tokens, (block + 1) * LogitTiling.tokenBlock)
    }

    func vocabRange(chunk: Int) -> Range<Int> {
        (chunk * LogitTiling.vocabChunk)..<min(vocab, (chunk + 1) * LogitTiling.vocabChunk)
    }

    func chunkRange(group: Int) -> Range<Int> {
        (chunks * group / groups)..<(chunks * (group + 1) / groups)
    }

    /// Floats in the largest tile.
    var tileCount: Int { min(tokens, LogitTiling.tokenBlock) * min(vocab, LogitTiling.vocabChunk) }

    /// Element-operations of one tile's logits, for the thread split.
    var tileWork: Int { tileCount.multipliedReportingOverflow(by: dim).partialValue & Int.max }
}

/// How the threads of one call share the BLAS. OpenBLAS built with threads of its own runs
/// each product on its pool, which serves one product at a time: two of libera's threads
/// asking at once leave one spinning while it waits (measured: a backward pass 3x slower).
/// So when OpenBLAS uses more than one thread, the products of a call run one at a time (each
/// spread over OpenBLAS's threads) while the rest of the work runs in parallel; with
/// OPENBLAS_NUM_THREADS=1 they run side by side on libera's threads. Only the schedule
/// changes, never a result.
struct ProductGate: ~Copyable {
    let lock = Mutex(())
    let oneAtATime = openblas_get_num_threads() > 1

    @inline(__always)
    func run(_ product: () -> Void) {
        if oneAtATime { lock.withLock { _ in product() } } else { product() }
    }
}

/// What the statistics pass keeps of one token: everything the log-probability, the entropy
/// and the gradient pass need of its logits, without the logits themselves.
struct TokenStatistics {
    /// Of s_t*z_t over the whole vocabulary: the maximum m, the count at m, S less those and
    /// T (OnlineSoftmax), merged over the chunk groups in group order.
    var softmax: OnlineSoftmax
    /// z_t[a_t], the label's logit (not scaled), taken from the tile that holds it.
    var labelLogit: Double

    /// logp'_t = (s_t z_t[a_t] - m) - log S, as in LLMERA.logprobForward.
    @inline(__always)
    func logprob(scale s: Double) -> Double {
        (s * labelLogit - softmax.maximum) - Math.log(softmax.sumExp)
    }
}

public enum LinearHeads {
    /// Gradients are refused (.badParameter) when a bound on their magnitude exceeds this: a
    /// quarter of the float32 range, which leaves room for the rounding of long sums.
    static let gradientLimit = Double(Float.greatestFiniteMagnitude) / 4

    // MARK: LLM ERA through the linear head (math 3)

    /// logp'_t = s_t*z_t[a_t] - logsumexp(s_t*z_t) and, when `outEntropy` is given, the entropy
    /// of softmax(s_t*z_t), with z = hidden · weightᵀ formed one tile at a time.
    /// hidden is tokens x dim, weight vocab x dim (row-major); `hidden` may be nil only when
    /// tokens == 0. Throws .badIndex for a label outside 0..<vocab; .nonFinite for NaN or an
    /// infinity in hidden, weight or the scales, or a logit that overflows float32;
    /// .badParameter for a scale <= 0 or a log-probability that overflows float32.
    /// Nothing is written when it throws.
    public static func logprobForward(tokens: Int, vocab: Int, dim: Int, hidden: UnsafePointer<Float>?,
                                      weight: UnsafePointer<Float>, labels: UnsafePointer<Int64>?,
                                      scales: UnsafePointer<Float>?, outLogprob: UnsafeMutablePointer<Float>?,
                                      outEntropy: UnsafeMutablePointer<Float>?) throws(ERAError) {
        let statisticsScratch = try TypedScratch<TokenStatistics>(perBlock: tokens)
        guard let inputs = try forwardInputs(tokens: tokens, vocab: vocab, dim: dim, hidden: hidden, weight: weight,
                                             labels: labels, scales: scales, outLogprob: outLogprob) else { return }
        let (hidden, labels, outLogprob) = (inputs.hidden, inputs.labels, inputs.outLogprob)
        let tiling = LogitTiling(tokens: tokens, vocab: vocab, dim: dim)
        let perToken = statisticsScratch.base!
        try statistics(tiling, hidden: hidden, weight: weight, labels: labels, scales: scales, perToken: perToken)
        // Every log-probability is checked before the first is written; the second loop
        // computes them again (one logarithm per token) rather than keep them in scratch.
        for t in 0..<tokens {
            guard Float(perToken[t].logprob(scale: scales.map { Double($0[t]) } ?? 1)).isFinite else {
                throw .badParameter
            }
        }
        for t in 0..<tokens {
            outLogprob[t] = Float(perToken[t].logprob(scale: scales.map { Double($0[t]) } ?? 1))
            outEntropy?[t] = Float(perToken[t].softmax.entropy)
        }
    }

    /// Gradients of sum_t g_t logp'_t (s_t constant) with z = hidden · weightᵀ:
    ///   dz_t,i = g_t s_t (1{i = a_t} - softmax(s_t z_t)_i)
    ///   outGradHidden = dz · weight,  outGradWeight = dzᵀ · hidden
    /// each written (not accumulated) when given. One pass over the tiles for the statistics,
    /// one more for the gradients. Throws as the forward pass (but for the log-probability's
    /// overflow), .nonFinite also for grad_logprob, .badParameter when g_t s_t overflows
    /// float32 or a requested gradient could (its bound exceeds gradientLimit:
    /// 2 max_t|g_t s_t| max|weight| for the hidden states, sum_t |g_t s_t| max|hidden_t| for
    /// the weight). Nothing is written when it throws.
    public static func logprobBackward(tokens: Int, vocab: Int, dim: Int, hidden: UnsafePointer<Float>?,
                                       weight: UnsafePointer<Float>, labels: UnsafePointer<Int64>?,
                                       scales: UnsafePointer<Float>?, gradLogprob: UnsafePointer<Float>?,
                                       outGradHidden: UnsafeMutablePointer<Float>?,
                                       outGradWeight: UnsafeMutablePointer<Float>?) throws(ERAError) {
        let statisticsScratch = try TypedScratch<TokenStatistics>(perBlock: tokens)
        let checked = try backwardInputs(tokens: tokens, vocab: vocab, dim: dim, hidden: hidden, weight: weight,
                                         labels: labels, scales: scales, gradLogprob: gradLogprob,
                                         outGradHidden: outGradHidden, outGradWeight: outGradWeight)
        guard let inputs = checked else { return }
        let (hidden, labels, gradLogprob) = (inputs.hidden, inputs.labels, inputs.gradLogprob)
        let tiling = LogitTiling(tokens: tokens, vocab: vocab, dim: dim)
        let perToken = statisticsScratch.base!
        try statistics(tiling, hidden: hidden, weight: weight, labels: labels, scales: scales, perToken: perToken)
        guard outGradHidden != nil || outGradWeight != nil else { return }
        try gradients(tiling, hidden: hidden, weight: weight, labels: labels, scales: scales,
                      gradLogprob: gradLogprob, perToken: UnsafePointer(perToken),
                      outGradHidden: outGradHidden, outGradWeight: outGradWeight)
    }

    /// The checks that the dense and the top-k forward passes share (after their statistics
    /// scratch), in this order: the weight finite, then (with tokens) the pointers, the labels
    /// and scales, the hidden states finite. nil when there are no tokens (nothing to write).
    static func forwardInputs(tokens: Int, vocab: Int, dim: Int, hidden: UnsafePointer<Float>?,
                              weight: UnsafePointer<Float>, labels: UnsafePointer<Int64>?,
                              scales: UnsafePointer<Float>?, outLogprob: UnsafeMutablePointer<Float>?)
        throws(ERAError) -> ForwardInputs? {
        // The row magnitudes only prove the inputs finite here: the weight's, then the hidden
        // states' in the same place.
        let magnitudeScratch = try TypedScratch<Double>(perBlock: max(tokens, vocab))
        let magnitudes = magnitudeScratch.base!  // never empty: vocab >= 1
        guard rowMagnitudes(weight, rows: vocab, cols: dim, into: magnitudes) else { throw .nonFinite }
        guard tokens > 0 else { return nil }
        guard let hidden, let labels, let outLogprob else { throw .nullPointer }
        try LLMERA.validate(tokens: tokens, vocab: vocab, labels: labels, scales: scales)
        guard rowMagnitudes(hidden, rows: tokens, cols: dim, into: magnitudes) else { throw .nonFinite }
        return ForwardInputs(hidden: hidden, labels: labels, outLogprob: outLogprob)
    }

    struct ForwardInputs {
        let hidden: UnsafePointer<Float>
        let labels: UnsafePointer<Int64>
        let outLogprob: UnsafeMutablePointer<Float>
    }

    /// The checks that the dense and the top-k backward passes share after their statistics
    /// scratch (see logprobBackward), the gradient bounds included. With no tokens it writes
    /// the weight's gradient (zeros: a sum over nothing) and returns nil.
    static func backwardInputs(tokens: Int, vocab: Int, dim: Int, hidden: UnsafePointer<Float>?,
                               weight: UnsafePointer<Float>, labels: UnsafePointer<Int64>?,
                               scales: UnsafePointer<Float>?, gradLogprob: UnsafePointer<Float>?,
                               outGradHidden: UnsafeMutablePointer<Float>?,
                               outGradWeight: UnsafeMutablePointer<Float>?) throws(ERAError) -> BackwardInputs? {
        // The largest magnitude of each row: the hidden states', then the weight's.
        let magnitudeScratch = try TypedScratch<Double>(perBlock: tokens + vocab)
        let hiddenMagnitudes = magnitudeScratch.base!  // never empty: vocab >= 1
        let weightMagnitudes = hiddenMagnitudes + tokens
        guard rowMagnitudes(weight, rows: vocab, cols: dim, into: weightMagnitudes) else { throw .nonFinite }
        guard tokens > 0 else {
            // No tokens: the weight's gradient is a sum over nothing.
            if let outGradWeight { for i in 0..<(vocab * dim) { outGradWeight[i] = 0 } }
            return nil
        }
        guard let hidden, let labels, let gradLogprob else { throw .nullPointer }
        try LLMERA.validate(tokens: tokens, vocab: vocab, labels: labels, scales: scales)
        guard rowMagnitudes(hidden, rows: tokens, cols: dim, into: hiddenMagnitudes) else { throw .nonFinite }
        var largestGradScale = 0.0, weightGradientBound = 0.0
        for t in 0..<tokens {
            guard gradLogprob[t].isFinite else { throw .nonFinite }
            let gradScale = Swift.abs(Double(gradLogprob[t]) * (scales.map { Double($0[t]) } ?? 1))
            guard Float(gradScale).isFinite else { throw .badParameter }  // dz is stored as float32
            largestGradScale = max(largestGradScale, gradScale)
            weightGradientBound += gradScale * hiddenMagnitudes[t]
        }
        var largestWeight = 0.0
        for v in 0..<vocab { largestWeight = max(largestWeight, weightMagnitudes[v]) }
        if outGradHidden != nil, 2 * largestGradScale * largestWeight > gradientLimit { throw .badParameter }
        if outGradWeight != nil, weightGradientBound > gradientLimit { throw .badParameter }
        return BackwardInputs(hidden: hidden, labels: labels, gradLogprob: gradLogprob)
    }

    struct BackwardInputs {
        let hidden: UnsafePointer<Float>
        let labels: UnsafePointer<Int64>
        let gradLogprob: UnsafePointer<Float>
    }

    /// Runs `tileWork(block, group, tile, gate)` on every (token block, chunk group) tile of
    /// `tiling`, the tiles in parallel, each thread block with a tile of logits scratch of its
    /// own; throws the first fault in tile order. The scratch is taken before any tile runs.
    @inline(__always)
    static func forEachTile(_ tiling: LogitTiling,
                            _ tileWork: (Int, Int, UnsafeMutablePointer<Float>, borrowing ProductGate) -> RowFault)
        throws(ERAError) {
        let groups = tiling.groups, tiles = tiling.blocks * groups
        // What went wrong in each tile (.none when nothing did), by tile index.
        let faultScratch = try TypedScratch<RowFault>(perBlock: tiles)
        // One tile of logits per thread block.
        let threadBlocks = Threads.blockCount(rows: tiles, workPerRow: tiling.tileWork * (tiling.chunks / groups))
        let tileScratch = try TypedScratch<Float>(blocks: threadBlocks, perBlock: tiling.tileCount)
        let faults = faultScratch.base!, tileBase = tileScratch.base!
        let gate = ProductGate()
        Threads.forEachBlock(rows: tiles, blocks: threadBlocks) { threadBlock, range in
            let tile = tileBase + threadBlock * tiling.tileCount
            for index in range { faults[index] = tileWork(index / groups, index % groups, tile, gate) }
        }
        for index in 0..<tiles {
            if let error = faults[index].error { throw error }
        }
    }

    /// Fills perToken[t] for every token t: the softmax statistics of s_t*z_t over the whole
    /// vocabulary and the label's logit z_t[a_t] (TokenStatistics).
    /// The tiles (token block, chunk group) run in parallel; each merges its chunks' statistics
    /// in chunk order into its own slot per token, and the slots are merged in group order.
    /// Throws .nonFinite when a logit overflows float32 (the inputs were checked finite).
    static func statistics(_ tiling: LogitTiling, hidden: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                           labels: UnsafePointer<Int64>, scales: UnsafePointer<Float>?,
                           perToken: UnsafeMutablePointer<TokenStatistics>) throws(ERAError) {
        let groups = tiling.groups
        // The statistics of token t over the chunks of group g, at t * groups + g.
        let groupScratch = try TypedScratch<OnlineSoftmax>(perBlock: tiling.tokens * groups)
        let groupStatistics = groupScratch.base!
        try forEachTile(tiling) { (block, group, tile, gate: borrowing ProductGate) in
            statisticsTile(tiling, block: block, group: group, hidden: hidden, weight: weight, labels: labels,
                           scales: scales, gate: gate, tile: tile, groupStatistics: groupStatistics, perToken: perToken)
        }
        for t in 0..<tiling.tokens {
            let slots = groupStatistics + t * groups
            var total = slots[0]
            for group in 1..<groups { total = total.merged(with: slots[group]) }
            perToken[t].softmax = total
        }
    }

    /// One tile of the statistics pass: the chunks of `group` for the tokens of `block`.
    @inline(__always)
    static func statisticsTile(_ tiling: LogitTiling, block: Int, group: Int, hidden: UnsafePointer<Float>,
                               weight: UnsafePointer<Float>, labels: UnsafePointer<Int64>,
                               scales: UnsafePointer<Float>?, gate: borrowing ProductGate,
                               tile: UnsafeMutablePointer<Float>,
                               groupStatistics: UnsafeMutablePointer<OnlineSoftmax>,
                               perToken: UnsafeMutablePointer<TokenStatistics>) -> RowFault {
        let rows = tiling.tokenRange(block: block)
        let chunks = tiling.chunkRange(group: group)
        for chunk in chunks {
            let columns = tiling.vocabRange(chunk: chunk)
            gate.run {
                multiplyLogits(hidden: hidden, weight: weight, dim: tiling.dim, tokens: rows, columns: columns, into: tile)
            }
            for t in rows {
                let row = tile + (t - rows.lowerBound) * columns.count
                // -inf would pass as a mask in streamRow; here it can only be an overflow.
                guard allFinite(row, count: columns.count),
                      let stats = streamRow(UnsafePointer(row), count: columns.count,
                                            scale: scales.map { Double($0[t]) } ?? 1) else { return .nonFinite }
                let slot = groupStatistics + (t * tiling.groups + group)
                slot.pointee = chunk == chunks.lowerBound ? stats : slot.pointee.merged(with: stats)
                let label = Int(labels[t])
                if columns.contains(label) { perToken[t].labelLogit = Double(row[label - columns.lowerBound]) }
            }
        }
        return .none
    }

    /// The gradient pass. Token blocks run one after the other; within a block the chunk groups
    /// run in parallel. A group owns the weight-gradient rows of its chunks and accumulates
    /// them over the token blocks in block order; its share of the block's hidden-state
    /// gradient goes to a partial of its own, and the partials are summed in group order (in
    /// double, rounded once). All scratch is taken before the first write.
    static func gradients(_ tiling: LogitTiling, hidden: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                          labels: UnsafePointer<Int64>, scales: UnsafePointer<Float>?,
                          gradLogprob: UnsafePointer<Float>, perToken: UnsafePointer<TokenStatistics>,
                          outGradHidden: UnsafeMutablePointer<Float>?,
                          outGradWeight: UnsafeMutablePointer<Float>?) throws(ERAError) {
        let dim = tiling.dim, groups = tiling.groups
        let blockRows = min(tiling.tokens, LogitTiling.tokenBlock)
        let products = (outGradHidden != nil ? 1 : 0) + (outGradWeight != nil ? 1 : 0)
        let threadBlocks = Threads.blockCount(rows: groups,
                                              workPerRow: tiling.tileWork * (1 + products) * (tiling.chunks / groups))
        // One tile of logits (then of dz) per thread block.
        let tileScratch = try TypedScratch<Float>(blocks: threadBlocks, perBlock: tiling.tileCount)
        // Each group's share of the block's hidden-state gradient (group-major, blockRows x dim
        // each); none when there is one group, which writes the output directly.
        let partialCount = outGradHidden != nil && groups > 1 ? groups * blockRows * dim : 0
        let partialScratch = try TypedScratch<Float>(perBlock: partialCount)
        let tileBase = tileScratch.base!
        let partials = partialScratch.base
        let gate = ProductGate()

        for block in 0..<tiling.blocks {
            let rows = tiling.tokenRange(block: block)
            let blockHidden = hidden + rows.lowerBound * dim
            Threads.forEachBlock(rows: groups, blocks: threadBlocks) { threadBlock, groupRange in
                let tile = tileBase + threadBlock * tiling.tileCount
                for group in groupRange {
                    let chunks = tiling.chunkRange(group: group)
                    for chunk in chunks {
                        let columns = tiling.vocabRange(chunk: chunk)
                        gate.run {
                            multiplyLogits(hidden: hidden, weight: weight, dim: dim, tokens: rows, columns: columns,
                                           into: tile)
                        }
                        for t in rows {
                            let stats = perToken[t].softmax
                            let s = scales.map { Double($0[t]) } ?? 1
                            let label = Int(labels[t])
                            gradientRow(tile + (t - rows.lowerBound) * columns.count, count: columns.count, scale: s,
                                        maximum: stats.maximum, inverseSum: 1 / stats.sumExp,
                                        gradScale: Double(gradLogprob[t]) * s,
                                        label: columns.contains(label) ? label - columns.lowerBound : nil)
                        }
                        let n = Int32(columns.count)
                        gate.run {
                            if let outGradWeight {
                                // gradWeight[chunk] (+)= dzᵀ · hidden[block]
                                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, Int32(dim), Int32(rows.count),
                                            1, tile, n, blockHidden, Int32(dim), block == 0 ? 0 : 1,
                                            outGradWeight + columns.lowerBound * dim, Int32(dim))
                            }
                            if let outGradHidden {
                                // gradHidden[block] (+)= dz · weight[chunk], into the group's partial
                                let target = partials.map { $0 + group * blockRows * dim }
                                    ?? outGradHidden + rows.lowerBound * dim
                                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows.count), Int32(dim),
                                            n, 1, tile, n, weight + columns.lowerBound * dim, Int32(dim),
                                            chunk == chunks.lowerBound ? 0 : 1, target, Int32(dim))
                            }
                        }
                    }
                }
            }
            if let outGradHidden, let partials {
                for r in 0..<rows.count {
                    let out = outGradHidden + (rows.lowerBound + r) * dim
                    for j in 0..<dim {
                        var sum = 0.0
                        for group in 0..<groups { sum += Double(partials[(group * blockRows + r) * dim + j]) }
                        out[j] = Float(sum)
                    }
                }
            }
        }
    }

    /// dz_i = gradScale * (1{i = label} - exp(scale*z_i - maximum) * inverseSum) over one row of
    /// a tile, in place, in double and rounded once to float32 (math 3). `label` is nil when the
    /// token's label lies in another chunk.
    @inline(__always)
    static func gradientRow(_ row: UnsafeMutablePointer<Float>, count: Int, scale: Double, maximum: Double,
                            inverseSum: Double, gradScale: Double, label: Int?) {
        func probability(_ z: Float) -> Double {
            Math.exp(max(scale * Double(z) - maximum, SoftmaxStatistics.lowestShift)) * inverseSum
        }
        // The vector kernel always treats one entry as the label: without a label in this
        // chunk it is given entry 0, which is then recomputed as a non-label entry.
        let first = row[0]
        if VectorKernels.logprobGradientRow(UnsafePointer(row), count: count, scale: scale, maximum: maximum,
                                            inverseSum: inverseSum, gradScale: gradScale, label: label ?? 0, out: row) {
            if label == nil { row[0] = Float(-gradScale * probability(first)) }
            return
        }
        for i in 0..<count {
            row[i] = Float(gradScale * ((i == label ? 1 : 0) - probability(row[i])))
        }
    }

    /// tile[r, j] = hidden[tokens.lowerBound + r, :] · weight[columns.lowerBound + j, :], a
    /// tokens.count x columns.count row-major tile.
    @inline(__always)
    static func multiplyLogits(hidden: UnsafePointer<Float>, weight: UnsafePointer<Float>, dim: Int, tokens: Range<Int>,
                               columns: Range<Int>, into tile: UnsafeMutablePointer<Float>) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(tokens.count), Int32(columns.count), Int32(dim), 1,
                    hidden + tokens.lowerBound * dim, Int32(dim), weight + columns.lowerBound * dim, Int32(dim), 0,
                    tile, Int32(columns.count))
    }

    // MARK: Linear + discrete ERA + cross-entropy (math 2)

    /// A classification head: logits = features · weightᵀ + bias, z' = discrete ERA(logits),
    /// loss = mean over rows of logsumexp(z'_r) - z'_r[label_r], and, for each gradient
    /// pointer given, the gradient of the loss back through the ERA activation to the
    /// features, the weight and the bias (written, not accumulated).
    /// features is rows x dim, weight classes x dim, bias classes (nil: none); rows >= 1.
    /// Throws .badIndex for a label outside 0..<classes, .nonFinite for NaN or an infinity in
    /// features, weight or bias or a logit that overflows float32, .badParameter when a
    /// requested gradient could overflow float32 (a bound from the logit gradients exceeds
    /// gradientLimit). Nothing is written when it throws.
    public static func discreteCrossEntropy(era: DiscreteERA, rows: Int, dim: Int, features: UnsafePointer<Float>,
                                            weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                                            labels: UnsafePointer<Int64>, outLoss: UnsafeMutablePointer<Float>,
                                            outGradFeatures: UnsafeMutablePointer<Float>?,
                                            outGradWeight: UnsafeMutablePointer<Float>?,
                                            outGradBias: UnsafeMutablePointer<Float>?) throws(ERAError) {
        let classes = era.classes
        for r in 0..<rows {
            guard labels[r] >= 0, labels[r] < Int64(classes) else { throw .badIndex }
        }
        // Doubles: row magnitudes of features and weight, per-row losses, two class sums.
        let scratch = try Scratch(blocks: 1, perBlock: 2 * rows + 3 * classes)
        let featureMagnitudes = scratch.base!, weightMagnitudes = featureMagnitudes + rows
        let rowLoss = weightMagnitudes + classes, classSums = rowLoss + rows, classBounds = classSums + classes
        guard rowMagnitudes(features, rows: rows, cols: dim, into: featureMagnitudes),
              rowMagnitudes(weight, rows: classes, cols: dim, into: weightMagnitudes) else { throw .nonFinite }
        if let bias { guard allFinite(bias, count: classes) else { throw .nonFinite } }

        // Floats: the logits, then the ERA logits, which become their gradient.
        let count = rows * classes
        let floatScratch = try TypedScratch<Float>(perBlock: 2 * count)
        let logits = floatScratch.base!
        let gradients = logits + count
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(classes), Int32(dim), 1,
                    features, Int32(dim), weight, Int32(dim), 0, logits, Int32(classes))
        if let bias {
            for r in 0..<rows {
                for c in 0..<classes { logits[r * classes + c] += bias[c] }
            }
        }
        guard allFinite(logits, count: count) else { throw .nonFinite }
        try era.forward(rows: rows, input: logits, output: gradients)

        // Cross-entropy at the ERA logits and its gradient, (softmax(z') - onehot) / rows.
        let inverseRows = 1 / Double(rows)
        try forEachRowBlock(rows: rows, workPerRow: classes * 8) { range, _ in
            for r in range {
                let row = gradients + r * classes
                let label = Int(labels[r])
                let stats = SoftmaxStatistics(UnsafePointer(row), count: classes)
                rowLoss[r] = Math.log(stats.sumExp) - (Double(row[label]) - stats.maximum)
                for c in 0..<classes {
                    row[c] = Float((stats.probability(Double(row[c])) - (c == label ? 1 : 0)) * inverseRows)
                }
            }
        }
        var loss = 0.0
        for r in 0..<rows { loss += rowLoss[r] }
        guard outGradFeatures != nil || outGradWeight != nil || outGradBias != nil else {
            outLoss.pointee = Float(loss * inverseRows)
            return
        }
        try era.backward(rows: rows, input: logits, gradOutput: gradients, gradInput: gradients)

        // Bounds on the requested gradients, from the logit gradients G:
        // |gradFeatures[r, j]| <= sum_c |G_rc| max|weight|, |gradWeight[c, j]| <= sum_r |G_rc| max|features_r|.
        var largestWeight = 0.0
        for c in 0..<classes {
            largestWeight = max(largestWeight, weightMagnitudes[c])
            classSums[c] = 0
            classBounds[c] = 0
        }
        var featureBound = 0.0
        for r in 0..<rows {
            var rowSum = 0.0
            for c in 0..<classes {
                let g = Double(gradients[r * classes + c])
                rowSum += Swift.abs(g)
                classSums[c] += g
                classBounds[c] += Swift.abs(g) * featureMagnitudes[r]
            }
            featureBound = max(featureBound, rowSum * largestWeight)
        }
        var weightBound = 0.0
        for c in 0..<classes { weightBound = max(weightBound, classBounds[c]) }
        if outGradFeatures != nil, featureBound > gradientLimit { throw .badParameter }
        if outGradWeight != nil, weightBound > gradientLimit { throw .badParameter }

        // Everything is checked: write.
        outLoss.pointee = Float(loss * inverseRows)
        if let outGradBias {
            for c in 0..<classes { outGradBias[c] = Float(classSums[c]) }
        }
        if let outGradWeight {
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(classes), Int32(dim), Int32(rows), 1,
                        gradients, Int32(classes), features, Int32(dim), 0, outGradWeight, Int32(dim))
        }
        if let outGradFeatures {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(dim), Int32(classes), 1,
                        gradients, Int32(classes), weight, Int32(dim), 0, outGradFeatures, Int32(dim))
        }
    }

    // MARK: input scans

    /// The largest magnitude in each row of a rows x cols float32 matrix, into `out`, scanned
    /// across the thread setting. False when any value is NaN or infinite.
    static func rowMagnitudes(_ values: UnsafePointer<Float>, rows: Int, cols: Int,
                              into out: UnsafeMutablePointer<Double>) -> Bool {
        let blocks = Threads.blockCount(rows: rows, workPerRow: cols)
        Threads.forEachBlock(rows: rows, blocks: blocks) { _, range in
            for r in range { out[r] = largestMagnitude(values + r * cols, count: cols).map { Double($0) } ?? .nan }
        }
        for r in 0..<rows where out[r].isNaN { return false }
        return true
    }

    /// The largest |x| of `count` floats, or nil when one is NaN or infinite. Magnitudes are
    /// compared as bit patterns (sign cleared), which order like the values and put NaN and
    /// infinity above every finite float.
    @inline(__always)
    static func largestMagnitude(_ values: UnsafePointer<Float>, count: Int) -> Float? {
        let raw = UnsafeRawPointer(values)
        let magnitude = SIMD8<UInt32>(repeating: 0x7fff_ffff)
        var top = SIMD8<UInt32>()
        var i = 0
        while i + 8 <= count {
            let bits = raw.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<UInt32>.self) & magnitude
            top.replace(with: bits, where: bits .> top)
            i += 8
        }
        var largest = top.max()
        while i < count {
            largest = max(largest, values[i].bitPattern & 0x7fff_ffff)
            i += 1
        }
        return largest < Float.infinity.bitPattern ? Float(bitPattern: largest) : nil
    }
}

