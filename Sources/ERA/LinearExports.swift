// Fused linear head entry points (era.h, "Fused linear heads").
import CEra
import ERACore

/// Checks the shapes of a linear head with `rows` input rows (>= minimumRows) of `dim`
/// features and `outputs` output rows (vocabulary entries or classes) of weights: every
/// element and byte count fits, int64 per-row arrays fit, and the sizes the BLAS is given fit
/// its 32-bit int (dim always; rows and outputs too where `blasRowsAndOutputs`).
/// Returns the element counts of the input rows and of the weight.
func linearHeadShape(_ rows: Int64, _ dim: Int64, _ outputs: Int64, minimumRows: Int64,
                     blasRowsAndOutputs: Bool) throws(ERAError) -> (input: Int, weight: Int) {
    guard rows >= minimumRows, outputs >= 1 else { throw .badShape }
    let input = try checkedElementCount(rows: rows, cols: dim, minCols: 1, elementSize: MemoryLayout<Float>.stride)
    let weight = try checkedElementCount(rows: outputs, cols: dim, minCols: 1, elementSize: MemoryLayout<Float>.stride)
    _ = try checkedElementCount(rows: rows, cols: 1, minCols: 1, elementSize: MemoryLayout<Int64>.stride)
    let blasLimit = Int64(Int32.max)
    guard dim <= blasLimit else { throw .badShape }
    if blasRowsAndOutputs {
        guard rows <= blasLimit, outputs <= blasLimit else { throw .badShape }
        // The rows x outputs logits and their gradients live in scratch memory.
        _ = try checkedElementCount(rows: rows, cols: outputs, minCols: 1, elementSize: 2 * MemoryLayout<Float>.stride)
    }
    return (input, weight)
}

@_cdecl("era_llm_linear_logprob_forward_f32")
public func era_llm_linear_logprob_forward_f32(_ tokens: Int64, _ dim: Int64, _ vocab: Int64,
                                               _ hidden: UnsafePointer<Float>?, _ weight: UnsafePointer<Float>?,
                                               _ labels: UnsafePointer<Int64>?, _ scales: UnsafePointer<Float>?,
                                               _ outLogprob: UnsafeMutablePointer<Float>?,
                                               _ outEntropy: UnsafeMutablePointer<Float>?) -> era_status {
    status { () throws(ERAError) in
        let counts = try linearHeadShape(tokens, dim, vocab, minimumRows: 0, blasRowsAndOutputs: false)
        try requirePointer(hidden, count: counts.input)
        guard let weight else { throw .nullPointer }  // never empty: vocab, dim >= 1
        try requirePointer(labels, count: Int(tokens))
        try requirePointer(outLogprob, count: Int(tokens))
        try requireDisjoint(outputs: [Span(outLogprob, Int(tokens)), Span(outEntropy, Int(tokens))],
                            inputs: [Span(hidden, counts.input), Span(weight, counts.weight), Span(labels, Int(tokens)),
                                     Span(scales, Int(tokens))])
        try LinearHeads.logprobForward(tokens: Int(tokens), vocab: Int(vocab), dim: Int(dim), hidden: hidden,
                                       weight: weight, labels: labels, scales: scales, outLogprob: outLogprob,
                                       outEntropy: outEntropy)
    }
}

@_cdecl("era_llm_linear_logprob_backward_f32")
public func era_llm_linear_logprob_backward_f32(_ tokens: Int64, _ dim: Int64, _ vocab: Int64,
                                                _ hidden: UnsafePointer<Float>?, _ weight: UnsafePointer<Float>?,
                                                _ labels: UnsafePointer<Int64>?, _ scales: UnsafePointer<Float>?,
                                                _ gradLogprob: UnsafePointer<Float>?,
                                                _ outGradHidden: UnsafeMutablePointer<Float>?,
                                                _ outGradWeight: UnsafeMutablePointer<Float>?) -> era_status {
    status { () throws(ERAError) in
        let counts = try linearHeadShape(tokens, dim, vocab, minimumRows: 0, blasRowsAndOutputs: false)
        try requirePointer(hidden, count: counts.input)
        guard let weight else { throw .nullPointer }
        try requirePointer(labels, count: Int(tokens))
        try requirePointer(gradLogprob, count: Int(tokens))
        try requireDisjoint(outputs: [Span(outGradHidden, counts.input), Span(outGradWeight, counts.weight)],
                            inputs: [Span(hidden, counts.input), Span(weight, counts.weight), Span(labels, Int(tokens)),
                                     Span(scales, Int(tokens)), Span(gradLogprob, Int(tokens))])
        try LinearHeads.logprobBackward(tokens: Int(tokens), vocab: Int(vocab), dim: Int(dim), hidden: hidden,
                                        weight: weight, labels: labels, scales: scales, gradLogprob: gradLogprob,
                                        outGradHidden: counts.input > 0 ? outGradHidden : nil,
                                        outGradWeight: outGradWeight)
    }
}

@_cdecl("era_linear_discrete_ce_f32")
public func era_linear_discrete_ce_f32(_ params: UnsafePointer<era_discrete_params>?, _ rows: Int64, _ dim: Int64,
                                       _ classes: Int64, _ features: UnsafePointer<Float>?,
                                       _ weight: UnsafePointer<Float>?, _ bias: UnsafePointer<Float>?,
                                       _ labels: UnsafePointer<Int64>?, _ outLoss: UnsafeMutablePointer<Float>?,
                                       _ outGradFeatures: UnsafeMutablePointer<Float>?,
                                       _ outGradWeight: UnsafeMutablePointer<Float>?,
                                       _ outGradBias: UnsafeMutablePointer<Float>?) -> era_status {
    status { () throws(ERAError) in
        let era = try discreteERA(params, classes: classes)
        let counts = try linearHeadShape(rows, dim, classes, minimumRows: 1, blasRowsAndOutputs: true)
        guard let features, let weight, let labels, let outLoss else { throw .nullPointer }
        try requireDisjoint(outputs: [Span(outLoss, 1), Span(outGradFeatures, counts.input),
                                      Span(outGradWeight, counts.weight), Span(outGradBias, Int(classes))],
                            inputs: [Span(features, counts.input), Span(weight, counts.weight), Span(bias, Int(classes)),
                                     Span(labels, Int(rows))])
        try LinearHeads.discreteCrossEntropy(era: era, rows: Int(rows), dim: Int(dim), features: features,
                                             weight: weight, bias: bias, labels: labels, outLoss: outLoss,
                                             outGradFeatures: outGradFeatures, outGradWeight: outGradWeight,
                                             outGradBias: outGradBias)
    }
}
