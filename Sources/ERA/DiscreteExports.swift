// Discrete ERA entry points (era.h, "Discrete ERA").
import CEra
import ERACore

/// Fills the defaults: target unset (NaN), tau 4, mode exact.
@_cdecl("era_discrete_params_init")
public func era_discrete_params_init(_ params: UnsafeMutablePointer<era_discrete_params>?) {
    params?.pointee = era_discrete_params(target_entropy: .nan, tau: 4, mode: Int32(ERA_DISCRETE_EXACT.rawValue))
}

/// Validates the parameters for rows of `classes` logits.
func discreteERA(_ params: UnsafePointer<era_discrete_params>?, classes: Int64) throws(ERAError) -> DiscreteERA {
    let p = try required(params)
    return try DiscreteERA(targetEntropy: p.target_entropy, tau: p.tau, mode: p.mode, classes: classes)
}

/// Runs a query of the resolved parameters and writes its one result.
@inline(__always)
func discreteQuery(_ params: UnsafePointer<era_discrete_params>?, _ classes: Int64, _ out: UnsafeMutablePointer<Double>?,
                   _ value: (DiscreteERA) -> Double) -> era_status {
    status { () throws(ERAError) in
        let era = try discreteERA(params, classes: classes)
        guard let out else { throw .nullPointer }
        out.pointee = value(era)
    }
}

@_cdecl("era_discrete_floor")
public func era_discrete_floor(_ params: UnsafePointer<era_discrete_params>?, _ classes: Int64,
                               _ out: UnsafeMutablePointer<Double>?) -> era_status {
    discreteQuery(params, classes, out) { $0.guaranteedFloor }
}

@_cdecl("era_discrete_infimum")
public func era_discrete_infimum(_ params: UnsafePointer<era_discrete_params>?, _ classes: Int64,
                                 _ out: UnsafeMutablePointer<Double>?) -> era_status {
    discreteQuery(params, classes, out) { $0.infimum }
}

@_cdecl("era_discrete_constant")
public func era_discrete_constant(_ params: UnsafePointer<era_discrete_params>?, _ classes: Int64,
                                  _ out: UnsafeMutablePointer<Double>?) -> era_status {
    discreteQuery(params, classes, out) { $0.c }
}

/// Checks parameters, shape, pointers and inputs of a discrete call, then runs `kernel`.
@inline(__always)
func discreteCall<T: ERAReal>(_ params: UnsafePointer<era_discrete_params>?, _ rows: Int64, _ classes: Int64,
                              inputs: [UnsafePointer<T>?], output: UnsafeMutablePointer<T>?,
                              _ kernel: (DiscreteERA, Int) throws(ERAError) -> Void) -> era_status {
    status { () throws(ERAError) in
        let era = try discreteERA(params, classes: classes)
        let count = try checkedElementCount(rows: rows, cols: classes, minCols: 2, elementSize: MemoryLayout<T>.stride)
        try requirePointer(output, count: count)
        for input in inputs { try requirePointer(input, count: count) }
        // In place: the output may be any of the inputs (era.h).
        try requireDisjoint(outputs: [Span(output, count)], inputs: inputs.map { Span($0, count) },
                            inPlace: inputs.indices.map { (0, $0) })
        for input in inputs { try requireFinite(input, count: count) }
        guard rows > 0 else { return }
        try kernel(era, Int(rows))
    }
}

@_cdecl("era_discrete_forward_f32")
public func era_discrete_forward_f32(_ params: UnsafePointer<era_discrete_params>?, _ rows: Int64, _ classes: Int64,
                                     _ logits: UnsafePointer<Float>?, _ out: UnsafeMutablePointer<Float>?) -> era_status {
    discreteCall(params, rows, classes, inputs: [logits], output: out) { (era, r) throws(ERAError) in
        try era.forward(rows: r, input: logits!, output: out!)
    }
}

@_cdecl("era_discrete_forward_f64")
public func era_discrete_forward_f64(_ params: UnsafePointer<era_discrete_params>?, _ rows: Int64, _ classes: Int64,
                                     _ logits: UnsafePointer<Double>?, _ out: UnsafeMutablePointer<Double>?) -> era_status {
    discreteCall(params, rows, classes, inputs: [logits], output: out) { (era, r) throws(ERAError) in
        try era.forward(rows: r, input: logits!, output: out!)
    }
}

@_cdecl("era_discrete_backward_f32")
public func era_discrete_backward_f32(_ params: UnsafePointer<era_discrete_params>?, _ rows: Int64, _ classes: Int64,
                                      _ logits: UnsafePointer<Float>?, _ gradOut: UnsafePointer<Float>?,
                                      _ out: UnsafeMutablePointer<Float>?) -> era_status {
    discreteCall(params, rows, classes, inputs: [logits, gradOut], output: out) { (era, r) throws(ERAError) in
        try era.backward(rows: r, input: logits!, gradOutput: gradOut!, gradInput: out!)
    }
}

@_cdecl("era_discrete_backward_f64")
public func era_discrete_backward_f64(_ params: UnsafePointer<era_discrete_params>?, _ rows: Int64, _ classes: Int64,
                                      _ logits: UnsafePointer<Double>?, _ gradOut: UnsafePointer<Double>?,
                                      _ out: UnsafeMutablePointer<Double>?) -> era_status {
    discreteCall(params, rows, classes, inputs: [logits, gradOut], output: out) { (era, r) throws(ERAError) in
        try era.backward(rows: r, input: logits!, gradOutput: gradOut!, gradInput: out!)
    }
}
