// Entry points of the truncated-normal entropy gradient (era.h, "Entropy math") and of the
// sampled floor (era.h, "Continuous ERA", "Bound verification").
import CEra
import ERACore

/// Checks the arguments of a truncated-normal entropy backward call, scans its inputs, and
/// runs the kernel. In place: out_grad_loc may be loc, out_grad_log_std may be log_std.
@inline(__always)
func truncatedNormalBackwardCall<T: ERAReal>(_ rows: Int64, _ dim: Int64, _ loc: UnsafePointer<T>?,
                                             _ logStd: UnsafePointer<T>?, _ lo: Double, _ hi: Double,
                                             _ gradEntropy: UnsafePointer<T>?, _ gradLoc: UnsafeMutablePointer<T>?,
                                             _ gradLogStd: UnsafeMutablePointer<T>?) -> era_status {
    status { () throws(ERAError) in
        try checkInterval(lo, hi)
        let count = try checkedElementCount(rows: rows, cols: dim, minCols: 1, elementSize: MemoryLayout<T>.stride)
        for pointer in [loc, logStd] { try requirePointer(pointer, count: count) }
        try requirePointer(gradEntropy, count: Int(rows))
        try requirePointer(gradLoc, count: count)
        try requirePointer(gradLogStd, count: count)
        try requireDisjoint(outputs: [Span(gradLoc, count), Span(gradLogStd, count)],
                            inputs: [Span(loc, count), Span(logStd, count), Span(gradEntropy, Int(rows))],
                            inPlace: [(0, 0), (1, 1)])
        try requireFinite(loc, count: count)
        try requireFinite(logStd, count: count)
        try requireFinite(gradEntropy, count: Int(rows))
        guard rows > 0 else { return }
        try Entropy.truncatedNormalBackward(rows: Int(rows), dim: Int(dim), loc: loc!, logStd: logStd!, lo: lo, hi: hi,
                                            gradEntropy: gradEntropy!, gradLoc: gradLoc!, gradLogStd: gradLogStd!)
    }
}

@_cdecl("era_truncated_normal_entropy_backward_f32")
public func era_truncated_normal_entropy_backward_f32(_ rows: Int64, _ dim: Int64, _ loc: UnsafePointer<Float>?,
                                                      _ logStd: UnsafePointer<Float>?, _ lo: Double, _ hi: Double,
                                                      _ gradEntropy: UnsafePointer<Float>?,
                                                      _ gradLoc: UnsafeMutablePointer<Float>?,
                                                      _ gradLogStd: UnsafeMutablePointer<Float>?) -> era_status {
    truncatedNormalBackwardCall(rows, dim, loc, logStd, lo, hi, gradEntropy, gradLoc, gradLogStd)
}

@_cdecl("era_truncated_normal_entropy_backward_f64")
public func era_truncated_normal_entropy_backward_f64(_ rows: Int64, _ dim: Int64, _ loc: UnsafePointer<Double>?,
                                                      _ logStd: UnsafePointer<Double>?, _ lo: Double, _ hi: Double,
                                                      _ gradEntropy: UnsafePointer<Double>?,
                                                      _ gradLoc: UnsafeMutablePointer<Double>?,
                                                      _ gradLogStd: UnsafeMutablePointer<Double>?) -> era_status {
    truncatedNormalBackwardCall(rows, dim, loc, logStd, lo, hi, gradEntropy, gradLoc, gradLogStd)
}

/// Validates the parameters and the interval of a sampled-floor call.
func sampledFloorERA(_ params: UnsafePointer<era_continuous_params>?, dim: Int64, lo: Double,
                     hi: Double) throws(ERAError) -> SampledFloorERA {
    try SampledFloorERA(gaussian: continuousERA(params, dim: dim), lo: lo, hi: hi)
}

/// Forward: out_log_std may be std_logits; out_offset (per row, may be NULL) shares nothing.
/// `make` validates the parameters and builds the activation (its errors come first).
@inline(__always)
func sampledFloorForward<T: ERAReal, A: SampledFloorActivation>(_ make: () throws(ERAError) -> A, _ rows: Int64,
                                                       _ dim: Int64, _ stdLogits: UnsafePointer<T>?,
                                                       _ loc: UnsafePointer<T>?, _ out: UnsafeMutablePointer<T>?,
                                                       _ offset: UnsafeMutablePointer<T>?) -> era_status {
    status { () throws(ERAError) in
        let era = try make()
        let count = try checkedElementCount(rows: rows, cols: dim, minCols: 1, elementSize: MemoryLayout<T>.stride)
        try requirePointer(out, count: count)
        for input in [stdLogits, loc] { try requirePointer(input, count: count) }
        try requireDisjoint(outputs: [Span(out, count), Span(offset, Int(rows))],
                            inputs: [Span(stdLogits, count), Span(loc, count)], inPlace: [(0, 0)])
        try requireFinite(stdLogits, count: count)
        try requireFinite(loc, count: count)
        guard rows > 0 else { return }
        try era.forward(rows: Int(rows), stdLogits: stdLogits!, loc: loc!, output: out!, offset: offset)
    }
}

@_cdecl("era_continuous_truncated_forward_f32")
public func era_continuous_truncated_forward_f32(_ params: UnsafePointer<era_continuous_params>?, _ rows: Int64,
                                                 _ dim: Int64, _ stdLogits: UnsafePointer<Float>?,
                                                 _ loc: UnsafePointer<Float>?, _ lo: Double, _ hi: Double,
                                                 _ out: UnsafeMutablePointer<Float>?,
                                                 _ offset: UnsafeMutablePointer<Float>?) -> era_status {
    sampledFloorForward({ () throws(ERAError) in try sampledFloorERA(params, dim: dim, lo: lo, hi: hi) }, rows, dim,
                        stdLogits, loc, out, offset)
}

@_cdecl("era_continuous_truncated_forward_f64")
public func era_continuous_truncated_forward_f64(_ params: UnsafePointer<era_continuous_params>?, _ rows: Int64,
                                                 _ dim: Int64, _ stdLogits: UnsafePointer<Double>?,
                                                 _ loc: UnsafePointer<Double>?, _ lo: Double, _ hi: Double,
                                                 _ out: UnsafeMutablePointer<Double>?,
                                                 _ offset: UnsafeMutablePointer<Double>?) -> era_status {
    sampledFloorForward({ () throws(ERAError) in try sampledFloorERA(params, dim: dim, lo: lo, hi: hi) }, rows, dim,
                        stdLogits, loc, out, offset)
}

/// Backward: out_grad_std_logits may be std_logits or grad_log_std, out_grad_loc may be loc;
/// out_grad_residual (per row, may be NULL) shares nothing.
@inline(__always)
func sampledFloorBackward<T: ERAReal, A: SampledFloorActivation>(_ make: () throws(ERAError) -> A, _ rows: Int64,
                                                        _ dim: Int64, _ stdLogits: UnsafePointer<T>?,
                                                        _ loc: UnsafePointer<T>?, _ gradLogStd: UnsafePointer<T>?,
                                                        _ gradStdLogits: UnsafeMutablePointer<T>?,
                                                        _ gradLoc: UnsafeMutablePointer<T>?,
                                                        _ gradResidual: UnsafeMutablePointer<T>?) -> era_status {
    status { () throws(ERAError) in
        let era = try make()
        let count = try checkedElementCount(rows: rows, cols: dim, minCols: 1, elementSize: MemoryLayout<T>.stride)
        try requirePointer(gradStdLogits, count: count)
        try requirePointer(gradLoc, count: count)
        for input in [stdLogits, loc, gradLogStd] { try requirePointer(input, count: count) }
        try requireDisjoint(outputs: [Span(gradStdLogits, count), Span(gradLoc, count), Span(gradResidual, Int(rows))],
                            inputs: [Span(stdLogits, count), Span(loc, count), Span(gradLogStd, count)],
                            inPlace: [(0, 0), (0, 2), (1, 1)])
        for input in [stdLogits, loc, gradLogStd] { try requireFinite(input, count: count) }
        guard rows > 0 else { return }
        try era.backward(rows: Int(rows), stdLogits: stdLogits!, loc: loc!, gradOutput: gradLogStd!,
                         gradStdLogits: gradStdLogits!, gradLoc: gradLoc!, gradResidual: gradResidual)
    }
}

@_cdecl("era_continuous_truncated_backward_f32")
public func era_continuous_truncated_backward_f32(_ params: UnsafePointer<era_continuous_params>?, _ rows: Int64,
                                                  _ dim: Int64, _ stdLogits: UnsafePointer<Float>?,
                                                  _ loc: UnsafePointer<Float>?, _ lo: Double, _ hi: Double,
                                                  _ gradLogStd: UnsafePointer<Float>?,
                                                  _ gradStdLogits: UnsafeMutablePointer<Float>?,
                                                  _ gradLoc: UnsafeMutablePointer<Float>?,
                                                  _ gradResidual: UnsafeMutablePointer<Float>?) -> era_status {
    sampledFloorBackward({ () throws(ERAError) in try sampledFloorERA(params, dim: dim, lo: lo, hi: hi) }, rows, dim,
                         stdLogits, loc, gradLogStd, gradStdLogits, gradLoc, gradResidual)
}

@_cdecl("era_continuous_truncated_backward_f64")
public func era_continuous_truncated_backward_f64(_ params: UnsafePointer<era_continuous_params>?, _ rows: Int64,
                                                  _ dim: Int64, _ stdLogits: UnsafePointer<Double>?,
                                                  _ loc: UnsafePointer<Double>?, _ lo: Double, _ hi: Double,
                                                  _ gradLogStd: UnsafePointer<Double>?,
                                                  _ gradStdLogits: UnsafeMutablePointer<Double>?,
                                                  _ gradLoc: UnsafeMutablePointer<Double>?,
                                                  _ gradResidual: UnsafeMutablePointer<Double>?) -> era_status {
    sampledFloorBackward({ () throws(ERAError) in try sampledFloorERA(params, dim: dim, lo: lo, hi: hi) }, rows, dim,
                         stdLogits, loc, gradLogStd, gradStdLogits, gradLoc, gradResidual)
}

/// The sampled-floor checks (era_check_continuous_truncated_*, era_check_continuous_tanh_*):
/// `make` validates the parameters and builds the activation.
@inline(__always)
func sampledFloorCheck<T: ERAReal, A: SampledFloorActivation>(_ make: () throws(ERAError) -> A, _ rows: Int64,
                                                     _ dim: Int64, _ loc: UnsafePointer<T>?,
                                                     _ logStd: UnsafePointer<T>?, _ tol: Double,
                                                     _ report: UnsafeMutablePointer<era_bound_report>?) -> era_status {
    boundCheck(report) { () throws(ERAError) in
        let era = try make()
        let count = try checkedElementCount(rows: rows, cols: dim, minCols: 1, elementSize: MemoryLayout<T>.stride)
        try BoundCheck.validate(tolerance: tol)
        try requireFinite(loc, count: count)
        try requireFinite(logStd, count: count)
        return try era.check(rows: Int(rows), loc: loc, logStd: logStd, tolerance: tol)
    }
}

@_cdecl("era_check_continuous_truncated_f32")
public func era_check_continuous_truncated_f32(_ params: UnsafePointer<era_continuous_params>?, _ rows: Int64,
                                               _ dim: Int64, _ loc: UnsafePointer<Float>?,
                                               _ logStd: UnsafePointer<Float>?, _ lo: Double, _ hi: Double,
                                               _ tol: Double,
                                               _ report: UnsafeMutablePointer<era_bound_report>?) -> era_status {
    sampledFloorCheck({ () throws(ERAError) in try sampledFloorERA(params, dim: dim, lo: lo, hi: hi) }, rows, dim, loc,
                      logStd, tol, report)
}

@_cdecl("era_check_continuous_truncated_f64")
public func era_check_continuous_truncated_f64(_ params: UnsafePointer<era_continuous_params>?, _ rows: Int64,
                                               _ dim: Int64, _ loc: UnsafePointer<Double>?,
                                               _ logStd: UnsafePointer<Double>?, _ lo: Double, _ hi: Double,
                                               _ tol: Double,
                                               _ report: UnsafeMutablePointer<era_bound_report>?) -> era_status {
    sampledFloorCheck({ () throws(ERAError) in try sampledFloorERA(params, dim: dim, lo: lo, hi: hi) }, rows, dim, loc,
                      logStd, tol, report)
}
