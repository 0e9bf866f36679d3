// LLM ERA entry points (era.h, "LLM ERA").
import CEra
import ERACore

/// Fills the defaults: omega 0.45 / 3.0, k 2, top fraction 0.2, advantages scaled.
@_cdecl("era_llm_params_init")
public func era_llm_params_init(_ params: UnsafeMutablePointer<era_llm_params>?) {
    params?.pointee = era_llm_params(omega_low: 0.45, omega_high: 3.0, k: 2.0, top_fraction: 0.2, scale_advantages: 1)
}

/// Validates the parameters.
func llmParameters(_ params: UnsafePointer<era_llm_params>?) throws(ERAError) -> LLMParameters {
    let p = try required(params)
    return try LLMParameters(omegaLow: p.omega_low, omegaHigh: p.omega_high, k: p.k, topFraction: p.top_fraction,
                             scaleAdvantages: p.scale_advantages != 0)
}

/// Checks a tokens x vocab shape and the pointers an LLM pass needs (each array's length:
/// the element count, or the token count), then `disjoint(count)` with the logits' element
/// count (the call's overlap check), then runs `kernel` when there is a token.
@inline(__always)
func llmCall<S>(_ tokens: Int64, _ vocab: Int64, logits: UnsafePointer<S>?, perToken: [UnsafeRawPointer?],
                outputs: [UnsafeMutableRawPointer?], outputPerElement: Bool = false,
                disjoint: (Int) throws(ERAError) -> Void,
                _ kernel: (Int, Int) throws(ERAError) -> Void) -> era_status {
    status { () throws(ERAError) in
        let count = try checkedElementCount(rows: tokens, cols: vocab, minCols: 1, elementSize: MemoryLayout<S>.stride)
        // The per-token arrays (int64 labels at most) must be addressable too.
        _ = try checkedElementCount(rows: tokens, cols: 1, minCols: 1, elementSize: MemoryLayout<Int64>.stride)
        try requirePointer(logits, count: count)
        for pointer in perToken { try requirePointer(pointer, count: Int(tokens)) }
        for pointer in outputs { try requirePointer(pointer, count: outputPerElement ? count : Int(tokens)) }
        try disjoint(count)
        guard tokens > 0 else { return }
        try kernel(Int(tokens), Int(vocab))
    }
}

@_cdecl("era_token_entropy_f32")
public func era_token_entropy_f32(_ tokens: Int64, _ vocab: Int64, _ logits: UnsafePointer<Float>?,
                                  _ out: UnsafeMutablePointer<Float>?) -> era_status {
    llmCall(tokens, vocab, logits: logits, perToken: [], outputs: [UnsafeMutableRawPointer(out)],
            disjoint: { (count) throws(ERAError) in
                try requireDisjoint(outputs: [Span(out, Int(tokens))], inputs: [Span(logits, count)])
            }) { (t, v) throws(ERAError) in
        try LLMERA.tokenEntropy(tokens: t, vocab: v, logits: logits!, out: out!)
    }
}

@_cdecl("era_token_entropy_f64")
public func era_token_entropy_f64(_ tokens: Int64, _ vocab: Int64, _ logits: UnsafePointer<Double>?,
                                  _ out: UnsafeMutablePointer<Double>?) -> era_status {
    llmCall(tokens, vocab, logits: logits, perToken: [], outputs: [UnsafeMutableRawPointer(out)],
            disjoint: { (count) throws(ERAError) in
                try requireDisjoint(outputs: [Span(out, Int(tokens))], inputs: [Span(logits, count)])
            }) { (t, v) throws(ERAError) in
        try LLMERA.tokenEntropy(tokens: t, vocab: v, logits: logits!, out: out!)
    }
}

@_cdecl("era_token_entropy_bf16")
public func era_token_entropy_bf16(_ tokens: Int64, _ vocab: Int64, _ logits: UnsafePointer<UInt16>?,
                                   _ out: UnsafeMutablePointer<Float>?) -> era_status {
    let bf16 = UnsafeRawPointer(logits)?.assumingMemoryBound(to: BFloat16.self)
    return llmCall(tokens, vocab, logits: bf16, perToken: [], outputs: [UnsafeMutableRawPointer(out)],
                   disjoint: { (count) throws(ERAError) in
                       try requireDisjoint(outputs: [Span(out, Int(tokens))], inputs: [Span(bf16, count)])
                   }) { (t, v) throws(ERAError) in
        try LLMERA.tokenEntropy(tokens: t, vocab: v, logits: bf16!, out: out!)
    }
}

@_cdecl("era_llm_response_entropy_f32")
public func era_llm_response_entropy_f32(_ params: UnsafePointer<era_llm_params>?, _ tokens: Int64,
                                         _ tokenEntropy: UnsafePointer<Float>?, _ responseId: UnsafePointer<Int64>?,
                                         _ responses: Int64, _ out: UnsafeMutablePointer<Float>?) -> era_status {
    status { () throws(ERAError) in
        let parameters = try llmParameters(params)
        try checkCounts(tokens, responses)
        try requirePointer(tokenEntropy, count: Int(tokens))
        try requirePointer(responseId, count: Int(tokens))
        try requirePointer(out, count: Int(responses))
        try requireDisjoint(outputs: [Span(out, Int(responses))],
                            inputs: [Span(tokenEntropy, Int(tokens)), Span(responseId, Int(tokens))])
        try LLMERA.responseEntropy(parameters: parameters, tokens: Int(tokens), tokenEntropy: tokenEntropy,
                                   responseId: responseId, responses: Int(responses), out: out)
    }
}

/// Throws .badShape unless the token and response counts are >= 0 and small enough to index.
func checkCounts(_ tokens: Int64, _ responses: Int64) throws(ERAError) {
    _ = try checkedElementCount(rows: tokens, cols: 1, minCols: 1, elementSize: 16)
    _ = try checkedElementCount(rows: responses, cols: 1, minCols: 1, elementSize: 16)
}

@_cdecl("era_llm_scales_f32")
public func era_llm_scales_f32(_ params: UnsafePointer<era_llm_params>?, _ tokens: Int64,
                               _ responseEntropy: UnsafePointer<Float>?, _ responses: Int64,
                               _ responseId: UnsafePointer<Int64>?, _ advantages: UnsafePointer<Float>?,
                               _ outScale: UnsafeMutablePointer<Float>?, _ outAdvantages: UnsafeMutablePointer<Float>?) -> era_status {
    status { () throws(ERAError) in
        let parameters = try llmParameters(params)
        try checkCounts(tokens, responses)
        try requirePointer(responseEntropy, count: Int(responses))
        for pointer in [UnsafeRawPointer(responseId), UnsafeRawPointer(advantages), UnsafeRawPointer(outScale),
                        UnsafeRawPointer(outAdvantages)] {
            try requirePointer(pointer, count: Int(tokens))
        }
        // In place: out_advantages may be advantages (era.h).
        try requireDisjoint(outputs: [Span(outScale, Int(tokens)), Span(outAdvantages, Int(tokens))],
                            inputs: [Span(responseEntropy, Int(responses)), Span(responseId, Int(tokens)),
                                     Span(advantages, Int(tokens))], inPlace: [(1, 2)])
        guard tokens > 0 else { return }
        try LLMERA.scales(parameters: parameters, tokens: Int(tokens), responseEntropy: responseEntropy,
                          responses: Int(responses), responseId: responseId!, advantages: advantages!,
                          outScale: outScale!, outAdvantages: outAdvantages!)
    }
}

@_cdecl("era_llm_logprob_forward_f32")
public func era_llm_logprob_forward_f32(_ tokens: Int64, _ vocab: Int64, _ logits: UnsafePointer<Float>?,
                                        _ labels: UnsafePointer<Int64>?, _ scales: UnsafePointer<Float>?,
                                        _ outLogprob: UnsafeMutablePointer<Float>?,
                                        _ outEntropy: UnsafeMutablePointer<Float>?) -> era_status {
    llmCall(tokens, vocab, logits: logits, perToken: [UnsafeRawPointer(labels)],
            outputs: [UnsafeMutableRawPointer(outLogprob)],
            disjoint: { (count) throws(ERAError) in
                try requireDisjoint(outputs: [Span(outLogprob, Int(tokens)), Span(outEntropy, Int(tokens))],
                                    inputs: [Span(logits, count), Span(labels, Int(tokens)), Span(scales, Int(tokens))])
            }) { (t, v) throws(ERAError) in
        try LLMERA.logprobForward(tokens: t, vocab: v, logits: logits!, labels: labels!, scales: scales,
                                  outLogprob: outLogprob!, outEntropy: outEntropy)
    }
}

@_cdecl("era_llm_logprob_forward_bf16")
public func era_llm_logprob_forward_bf16(_ tokens: Int64, _ vocab: Int64, _ logits: UnsafePointer<UInt16>?,
                                         _ labels: UnsafePointer<Int64>?, _ scales: UnsafePointer<Float>?,
                                         _ outLogprob: UnsafeMutablePointer<Float>?,
                                         _ outEntropy: UnsafeMutablePointer<Float>?) -> era_status {
    let bf16 = UnsafeRawPointer(logits)?.assumingMemoryBound(to: BFloat16.self)
    return llmCall(tokens, vocab, logits: bf16, perToken: [UnsafeRawPointer(labels)],
                   outputs: [UnsafeMutableRawPointer(outLogprob)],
                   disjoint: { (count) throws(ERAError) in
                       try requireDisjoint(outputs: [Span(outLogprob, Int(tokens)), Span(outEntropy, Int(tokens))],
                                           inputs: [Span(bf16, count), Span(labels, Int(tokens)), Span(scales, Int(tokens))])
                   }) { (t, v) throws(ERAError) in
        try LLMERA.logprobForward(tokens: t, vocab: v, logits: bf16!, labels: labels!, scales: scales,
                                  outLogprob: outLogprob!, outEntropy: outEntropy)
    }
}

@_cdecl("era_llm_logprob_backward_f32")
public func era_llm_logprob_backward_f32(_ tokens: Int64, _ vocab: Int64, _ logits: UnsafePointer<Float>?,
                                         _ labels: UnsafePointer<Int64>?, _ scales: UnsafePointer<Float>?,
                                         _ gradLogprob: UnsafePointer<Float>?,
                                         _ outGrad: UnsafeMutablePointer<Float>?) -> era_status {
    llmCall(tokens, vocab, logits: logits, perToken: [UnsafeRawPointer(labels), UnsafeRawPointer(gradLogprob)],
            outputs: [UnsafeMutableRawPointer(outGrad)], outputPerElement: true,
            disjoint: { (count) throws(ERAError) in
                // In place: the gradient may be the logits (era.h).
                try requireDisjoint(outputs: [Span(outGrad, count)],
                                    inputs: [Span(logits, count), Span(labels, Int(tokens)), Span(scales, Int(tokens)),
                                             Span(gradLogprob, Int(tokens))], inPlace: [(0, 0)])
            }) { (t, v) throws(ERAError) in
        try LLMERA.logprobBackward(tokens: t, vocab: v, logits: logits!, labels: labels!, scales: scales,
                                   gradLogprob: gradLogprob!, outGrad: outGrad!)
    }
}

@_cdecl("era_llm_logprob_backward_bf16")
public func era_llm_logprob_backward_bf16(_ tokens: Int64, _ vocab: Int64, _ logits: UnsafePointer<UInt16>?,
                                          _ labels: UnsafePointer<Int64>?, _ scales: UnsafePointer<Float>?,
                                          _ gradLogprob: UnsafePointer<Float>?,
                                          _ outGrad: UnsafeMutablePointer<UInt16>?) -> era_status {
    let bf16 = UnsafeRawPointer(logits)?.assumingMemoryBound(to: BFloat16.self)
    let out = UnsafeMutableRawPointer(outGrad)?.assumingMemoryBound(to: BFloat16.self)
    return llmCall(tokens, vocab, logits: bf16, perToken: [UnsafeRawPointer(labels), UnsafeRawPointer(gradLogprob)],
                   outputs: [UnsafeMutableRawPointer(out)], outputPerElement: true,
                   disjoint: { (count) throws(ERAError) in
                       // In place: the gradient may be the logits (era.h).
                       try requireDisjoint(outputs: [Span(out, count)],
                                           inputs: [Span(bf16, count), Span(labels, Int(tokens)), Span(scales, Int(tokens)),
                                                    Span(gradLogprob, Int(tokens))], inPlace: [(0, 0)])
                   }) { (t, v) throws(ERAError) in
        try LLMERA.logprobBackward(tokens: t, vocab: v, logits: bf16!, labels: labels!, scales: scales,
                                   gradLogprob: gradLogprob!, outGrad: out!)
    }
}
