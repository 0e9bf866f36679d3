// Top-k LLM-ERA log-probability entry points (era.h, "LLM ERA" and "Fused linear heads").
import CEra
import ERACore

/// Throws .badParameter unless top_k >= 1 (checked before everything else).
func topKCount(_ topK: Int64) throws(ERAError) -> Int {
    guard topK >= 1 else { throw .badParameter }
    return topK > Int64(Int.max) ? Int.max : Int(topK)
}

/// The forward entry points: as era_llm_logprob_forward_* with top_k.
@inline(__always)
func topKForward<S: LogitStorage>(_ tokens: Int64, _ vocab: Int64, _ logits: UnsafePointer<S>?,
                                  _ labels: UnsafePointer<Int64>?, _ scales: UnsafePointer<Float>?, _ topK: Int64,
                                  _ outLogprob: UnsafeMutablePointer<Float>?,
                                  _ outEntropy: UnsafeMutablePointer<Float>?) -> era_status {
    let k: Int
    do { k = try topKCount(topK) } catch { return ERA_ERR_BAD_PARAMETER }
    return llmCall(tokens, vocab, logits: logits, perToken: [UnsafeRawPointer(labels)],
                   outputs: [UnsafeMutableRawPointer(outLogprob)],
                   disjoint: { (count) throws(ERAError) in
                       try requireDisjoint(outputs: [Span(outLogprob, Int(tokens)), Span(outEntropy, Int(tokens))],
                                           inputs: [Span(logits, count), Span(labels, Int(tokens)),
                                                    Span(scales, Int(tokens))])
                   }) { (t, v) throws(ERAError) in
        try TopKLogprob.forward(tokens: t, vocab: v, logits: logits!, labels: labels!, scales: scales, topK: k,
                                outLogprob: outLogprob!, outEntropy: outEntropy)
    }
}

/// The backward entry points: as era_llm_logprob_backward_* with top_k.
@inline(__always)
func topKBackward<S: LogitStorage>(_ tokens: Int64, _ vocab: Int64, _ logits: UnsafePointer<S>?,
                                   _ labels: UnsafePointer<Int64>?, _ scales: UnsafePointer<Float>?, _ topK: Int64,
                                   _ gradLogprob: UnsafePointer<Float>?,
                                   _ outGrad: UnsafeMutablePointer<S>?) -> era_status {
    let k: Int
    do { k = try topKCount(topK) } catch { return ERA_ERR_BAD_PARAMETER }
    return llmCall(tokens, vocab, logits: logits, perToken: [UnsafeRawPointer(labels), UnsafeRawPointer(gradLogprob)],
                   outputs: [UnsafeMutableRawPointer(outGrad)], outputPerElement: true,
                   disjoint: { (count) throws(ERAError) in
                       // In place: the gradient may be the logits (era.h).
                       try requireDisjoint(outputs: [Span(outGrad, count)],
                                           inputs: [Span(logits, count), Span(labels, Int(tokens)),
                                                    Span(scales, Int(tokens)), Span(gradLogprob, Int(tokens))],
                                           inPlace: [(0, 0)])
                   }) { (t, v) throws(ERAError) in
        try TopKLogprob.backward(tokens: t, vocab: v, logits: logits!, labels: labels!, scales: scales, topK: k,
                                 gradLogprob: gradLogprob!, outGrad: outGrad!)
    }
}

@_cdecl("era_llm_topk_logprob_forward_f32")
public func era_llm_topk_logprob_forward_f32(_ tokens: Int64, _ vocab: Int64, _ logits: UnsafePointer<Float>?,
                                             _ labels: UnsafePointer<Int64>?, _ scales: UnsafePointer<Float>?,
                                             _ topK: Int64, _ outLogprob: UnsafeMutablePointer<Float>?,
                                             _ outEntropy: UnsafeMutablePointer<Float>?) -> era_status {
    topKForward(tokens, vocab, logits, labels, scales, topK, outLogprob, outEntropy)
}

@_cdecl("era_llm_topk_logprob_forward_bf16")
public func era_llm_topk_logprob_forward_bf16(_ tokens: Int64, _ vocab: Int64, _ logits: UnsafePointer<UInt16>?,
                                              _ labels: UnsafePointer<Int64>?, _ scales: UnsafePointer<Float>?,
                                              _ topK: Int64, _ outLogprob: UnsafeMutablePointer<Float>?,
                                              _ outEntropy: UnsafeMutablePointer<Float>?) -> era_status {
    let bf16 = UnsafeRawPointer(logits)?.assumingMemoryBound(to: BFloat16.self)
    return topKForward(tokens, vocab, bf16, labels, scales, topK, outLogprob, outEntropy)
}

@_cdecl("era_llm_topk_logprob_backward_f32")
public func era_llm_topk_logprob_backward_f32(_ tokens: Int64, _ vocab: Int64, _ logits: UnsafePointer<Float>?,
                                              _ labels: UnsafePointer<Int64>?, _ scales: UnsafePointer<Float>?,
                                              _ topK: Int64, _ gradLogprob: UnsafePointer<Float>?,
                                              _ outGrad: UnsafeMutablePointer<Float>?) -> era_status {
    topKBackward(tokens, vocab, logits, labels, scales, topK, gradLogprob, outGrad)
}

@_cdecl("era_llm_topk_logprob_backward_bf16")
public func era_llm_topk_logprob_backward_bf16(_ tokens: Int64, _ vocab: Int64, _ logits: UnsafePointer<UInt16>?,
                                               _ labels: UnsafePointer<Int64>?, _ scales: UnsafePointer<Float>?,
                                               _ topK: Int64, _ gradLogprob: UnsafePointer<Float>?,
                                               _ outGrad: UnsafeMutablePointer<UInt16>?) -> era_status {
    let bf16 = UnsafeRawPointer(logits)?.assumingMemoryBound(to: BFloat16.self)
    let out = UnsafeMutableRawPointer(outGrad)?.assumingMemoryBound(to: BFloat16.self)
    return topKBackward(tokens, vocab, bf16, labels, scales, topK, gradLogprob, out)
}

@_cdecl("era_llm_linear_topk_logprob_forward_f32")
public func era_llm_linear_topk_logprob_forward_f32(_ tokens: Int64, _ dim: Int64, _ vocab: Int64,
                                                    _ hidden: UnsafePointer<Float>?, _ weight: UnsafePointer<Float>?,
                                                    _ labels: UnsafePointer<Int64>?, _ scales: UnsafePointer<Float>?,
                                                    _ topK: Int64, _ outLogprob: UnsafeMutablePointer<Float>?,
                                                    _ outEntropy: UnsafeMutablePointer<Float>?) -> era_status {
    status { () throws(ERAError) in
        let k = try topKCount(topK)
        let counts = try linearHeadShape(tokens, dim, vocab, minimumRows: 0, blasRowsAndOutputs: false)
        try requirePointer(hidden, count: counts.input)
        guard let weight else { throw .nullPointer }  // never empty: vocab, dim >= 1
        try requirePointer(labels, count: Int(tokens))
        try requirePointer(outLogprob, count: Int(tokens))
        try requireDisjoint(outputs: [Span(outLogprob, Int(tokens)), Span(outEntropy, Int(tokens))],
                            inputs: [Span(hidden, counts.input), Span(weight, counts.weight), Span(labels, Int(tokens)),
                                     Span(scales, Int(tokens))])
        try LinearHeads.topKLogprobForward(tokens: Int(tokens), vocab: Int(vocab), dim: Int(dim), hidden: hidden,
                                           weight: weight, labels: labels, scales: scales, topK: k,
                                           outLogprob: outLogprob, outEntropy: outEntropy)
    }
}

@_cdecl("era_llm_linear_topk_logprob_backward_f32")
public func era_llm_linear_topk_logprob_backward_f32(_ tokens: Int64, _ dim: Int64, _ vocab: Int64,
                                                     _ hidden: UnsafePointer<Float>?, _ weight: UnsafePointer<Float>?,
                                                     _ labels: UnsafePointer<Int64>?, _ scales: UnsafePointer<Float>?,
                                                     _ topK: Int64, _ gradLogprob: UnsafePointer<Float>?,
                                                     _ outGradHidden: UnsafeMutablePointer<Float>?,
                                                     _ outGradWeight: UnsafeMutablePointer<Float>?) -> era_status {
    status { () throws(ERAError) in
        let k = try topKCount(topK)
        let counts = try linearHeadShape(tokens, dim, vocab, minimumRows: 0, blasRowsAndOutputs: false)
        try requirePointer(hidden, count: counts.input)
        guard let weight else { throw .nullPointer }
        try requirePointer(labels, count: Int(tokens))
        try requirePointer(gradLogprob, count: Int(tokens))
        try requireDisjoint(outputs: [Span(outGradHidden, counts.input), Span(outGradWeight, counts.weight)],
                            inputs: [Span(hidden, counts.input), Span(weight, counts.weight), Span(labels, Int(tokens)),
                                     Span(scales, Int(tokens)), Span(gradLogprob, Int(tokens))])
        try LinearHeads.topKLogprobBackward(tokens: Int(tokens), vocab: Int(vocab), dim: Int(dim), hidden: hidden,
                                            weight: weight, labels: labels, scales: scales, topK: k,
                                            gradLogprob: gradLogprob,
                                            outGradHidden: counts.input > 0 ? outGradHidden : nil,
                                            outGradWeight: outGradWeight)
    }
}
