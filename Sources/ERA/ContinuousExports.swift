// Continuous ERA entry points (era.h, "Continuous ERA").
import CEra
import ERACore

/// Fills the defaults: target unset (NaN), residual 0, log std in [-8, 0].
@_cdecl("era_continuous_params_init")
public func era_continuous_params_init(_ params: UnsafeMutablePointer<era_continuous_params>?) {
    params?.pointee = era_continuous_params(target_entropy: .nan, residual: 0, log_std_min: -8, log_std_max: 0)
}

/// Validates the parameters for rows of `dim` values.
func continuousERA(_ params: UnsafePointer<era_continuous_params>?, dim: Int64) throws(ERAError) -> ContinuousERA {
    let p = try required(params)
    return try ContinuousERA(targetEntropy: p.target_entropy, residual: p.residual,
                             logStdMin: p.log_std_min, logStdMax: p.log_std_max, dim: dim)
}

/// Checks parameters, shape, pointers and inputs of a continuous call, then runs `kernel`.
@inline(__always)
func continuousCall<T: ERAReal>(_ params: UnsafePointer<era_continuous_params>?, _ rows: Int64, _ dim: Int64,
                                inputs: [UnsafePointer<T>?], output: UnsafeMutablePointer<T>?,
                                residualOutput: UnsafeMutablePointer<T>? = nil,
                                _ kernel: (ContinuousERA, Int) throws(ERAError) -> Void) -> era_status {
    status { () throws(ERAError) in
        let era = try continuousERA(params, dim: dim)
        let count = try checkedElementCount(rows: rows, cols: dim, minCols: 1, elementSize: MemoryLayout<T>.stride)
        try requirePointer(output, count: count)
        for input in inputs { try requirePointer(input, count: count) }
        // In place: the output may be any of the inputs (era.h); the per-row residual
        // gradient shares memory with nothing.
        try requireDisjoint(outputs: [Span(output, count), Span(residualOutput, Int(rows))],
                            inputs: inputs.map { Span($0, count) }, inPlace: inputs.indices.map { (0, $0) })
        for input in inputs { try requireFinite(input, count: count) }
        guard rows > 0 else { return }
        try kernel(era, Int(rows))
    }
}

@_cdecl("era_continuous_forward_f32")
public func era_continuous_forward_f32(_ params: UnsafePointer<era_continuous_params>?, _ rows: Int64, _ dim: Int64,
                                       _ stdLogits: UnsafePointer<Float>?, _ out: UnsafeMutablePointer<Float>?) -> era_status {
    continuousCall(params, rows, dim, inputs: [stdLogits], output: out) { (era, r) throws(ERAError) in
        try era.forward(rows: r, input: stdLogits!, output: out!)
    }
}

@_cdecl("era_continuous_forward_f64")
public func era_continuous_forward_f64(_ params: UnsafePointer<era_continuous_params>?, _ rows: Int64, _ dim: Int64,
                                       _ stdLogits: UnsafePointer<Double>?, _ out: UnsafeMutablePointer<Double>?) -> era_status {
    continuousCall(params, rows, dim, inputs: [stdLogits], output: out) { (era, r) throws(ERAError) in
        try era.forward(rows: r, input: stdLogits!, output: out!)
    }
}

@_cdecl("era_continuous_backward_f32")
public func era_continuous_backward_f32(_ params: UnsafePointer<era_continuous_params>?, _ rows: Int64, _ dim: Int64,
                                        _ stdLogits: UnsafePointer<Float>?, _ gradLogStd: UnsafePointer<Float>?,
                                        _ out: UnsafeMutablePointer<Float>?,
                                        _ outResidual: UnsafeMutablePointer<Float>?) -> era_status {
    continuousCall(params, rows, dim, inputs: [stdLogits, gradLogStd], output: out,
                   residualOutput: outResidual) { (era, r) throws(ERAError) in
        try era.backward(rows: r, input: stdLogits!, gradOutput: gradLogStd!, gradInput: out!, gradResidual: outResidual)
    }
}

@_cdecl("era_continuous_backward_f64")
public func era_continuous_backward_f64(_ params: UnsafePointer<era_continuous_params>?, _ rows: Int64, _ dim: Int64,
                                        _ stdLogits: UnsafePointer<Double>?, _ gradLogStd: UnsafePointer<Double>?,
                                        _ out: UnsafeMutablePointer<Double>?,
                                        _ outResidual: UnsafeMutablePointer<Double>?) -> era_status {
    continuousCall(params, rows, dim, inputs: [stdLogits, gradLogStd], output: out,
                   residualOutput: outResidual) { (era, r) throws(ERAError) in
        try era.backward(rows: r, input: stdLogits!, gradOutput: gradLogStd!, gradInput: out!, gradResidual: outResidual)
    }
}
