// Entry points of the tanh-Gaussian entropy gradient (era.h, "Entropy math") and of the sampled
// floor of a tanh-squashed policy (era.h, "Continuous ERA", "Bound verification").
import CEra
import ERACore

/// Checks the arguments of a tanh-Gaussian entropy backward call, scans its inputs, and runs the
/// kernel. In place: out_grad_mean may be mean, out_grad_log_std may be log_std.
@inline(__always)
func tanhGaussianBackwardCall<T: ERAReal>(_ rows: Int64, _ dim: Int64, _ mean: UnsafePointer<T>?,
                                          _ logStd: UnsafePointer<T>?, _ gradEntropy: UnsafePointer<T>?,
                                          _ gradMean: UnsafeMutablePointer<T>?,
                                          _ gradLogStd: UnsafeMutablePointer<T>?) -> era_status {
    status { () throws(ERAError) in
        let count = try checkedElementCount(rows: rows, cols: dim, minCols: 1, elementSize: MemoryLayout<T>.stride)
        for pointer in [mean, logStd] { try requirePointer(pointer, count: count) }
        try requirePointer(gradEntropy, count: Int(rows))
        try requirePointer(gradMean, count: count)
        try requirePointer(gradLogStd, count: count)
        try requireDisjoint(outputs: [Span(gradMean, count), Span(gradLogStd, count)],
                            inputs: [Span(mean, count), Span(logStd, count), Span(gradEntropy, Int(rows))],
                            inPlace: [(0, 0), (1, 1)])
        try requireFinite(mean, count: count)
        try requireFinite(logStd, count: count)
        try requireFinite(gradEntropy, count: Int(rows))
        guard rows > 0 else { return }
        try Entropy.tanhGaussianBackward(rows: Int(rows), dim: Int(dim), mean: mean!, logStd: logStd!,
                                         gradEntropy: gradEntropy!, gradMean: gradMean!, gradLogStd: gradLogStd!)
    }
}

@_cdecl("era_tanh_gaussian_entropy_backward_f32")
public func era_tanh_gaussian_entropy_backward_f32(_ rows: Int64, _ dim: Int64, _ mean: UnsafePointer<Float>?,
                                                   _ logStd: UnsafePointer<Float>?, _ gradEntropy: UnsafePointer<Float>?,
                                                   _ gradMean: UnsafeMutablePointer<Float>?,
                                                   _ gradLogStd: UnsafeMutablePointer<Float>?) -> era_status {
    tanhGaussianBackwardCall(rows, dim, mean, logStd, gradEntropy, gradMean, gradLogStd)
}

@_cdecl("era_tanh_gaussian_entropy_backward_f64")
public func era_tanh_gaussian_entropy_backward_f64(_ rows: Int64, _ dim: Int64, _ mean: UnsafePointer<Double>?,
                                                   _ logStd: UnsafePointer<Double>?, _ gradEntropy: UnsafePointer<Double>?,
                                                   _ gradMean: UnsafeMutablePointer<Double>?,
                                                   _ gradLogStd: UnsafeMutablePointer<Double>?) -> era_status {
    tanhGaussianBackwardCall(rows, dim, mean, logStd, gradEntropy, gradMean, gradLogStd)
}

/// Validates the parameters of a tanh sampled-floor call.
func tanhFloorERA(_ params: UnsafePointer<era_continuous_params>?,
                  dim: Int64) throws(ERAError) -> TanhFloorERA {
    try TanhFloorERA(gaussian: continuousERA(params, dim: dim))
}

@_cdecl("era_continuous_tanh_forward_f32")
public func era_continuous_tanh_forward_f32(_ params: UnsafePointer<era_continuous_params>?, _ rows: Int64,
                                            _ dim: Int64, _ stdLogits: UnsafePointer<Float>?,
                                            _ mean: UnsafePointer<Float>?, _ out: UnsafeMutablePointer<Float>?,
                                            _ offset: UnsafeMutablePointer<Float>?) -> era_status {
    sampledFloorForward({ () throws(ERAError) in try tanhFloorERA(params, dim: dim) }, rows, dim, stdLogits, mean, out,
                        offset)
}

@_cdecl("era_continuous_tanh_forward_f64")
public func era_continuous_tanh_forward_f64(_ params: UnsafePointer<era_continuous_params>?, _ rows: Int64,
                                            _ dim: Int64, _ stdLogits: UnsafePointer<Double>?,
                                            _ mean: UnsafePointer<Double>?, _ out: UnsafeMutablePointer<Double>?,
                                            _ offset: UnsafeMutablePointer<Double>?) -> era_status {
    sampledFloorForward({ () throws(ERAError) in try tanhFloorERA(params, dim: dim) }, rows, dim, stdLogits, mean, out,
                        offset)
}

@_cdecl("era_continuous_tanh_backward_f32")
public func era_continuous_tanh_backward_f32(_ params: UnsafePointer<era_continuous_params>?, _ rows: Int64,
                                             _ dim: Int64, _ stdLogits: UnsafePointer<Float>?,
                                             _ mean: UnsafePointer<Float>?, _ gradLogStd: UnsafePointer<Float>?,
                                             _ gradStdLogits: UnsafeMutablePointer<Float>?,
                                             _ gradMean: UnsafeMutablePointer<Float>?,
                                             _ gradResidual: UnsafeMutablePointer<Float>?) -> era_status {
    sampledFloorBackward({ () throws(ERAError) in try tanhFloorERA(params, dim: dim) }, rows, dim, stdLogits, mean,
                         gradLogStd, gradStdLogits, gradMean, gradResidual)
}

@_cdecl("era_continuous_tanh_backward_f64")
public func era_continuous_tanh_backward_f64(_ params: UnsafePointer<era_continuous_params>?, _ rows: Int64,
                                             _ dim: Int64, _ stdLogits: UnsafePointer<Double>?,
                                             _ mean: UnsafePointer<Double>?, _ gradLogStd: UnsafePointer<Double>?,
                                             _ gradStdLogits: UnsafeMutablePointer<Double>?,
                                             _ gradMean: UnsafeMutablePointer<Double>?,
                                             _ gradResidual: UnsafeMutablePointer<Double>?) -> era_status {
    sampledFloorBackward({ () throws(ERAError) in try tanhFloorERA(params, dim: dim) }, rows, dim, stdLogits, mean,
                         gradLogStd, gradStdLogits, gradMean, gradResidual)
}

@_cdecl("era_check_continuous_tanh_f32")
public func era_check_continuous_tanh_f32(_ params: UnsafePointer<era_continuous_params>?, _ rows: Int64,
                                          _ dim: Int64, _ mean: UnsafePointer<Float>?, _ logStd: UnsafePointer<Float>?,
                                          _ tol: Double, _ report: UnsafeMutablePointer<era_bound_report>?) -> era_status {
    sampledFloorCheck({ () throws(ERAError) in try tanhFloorERA(params, dim: dim) }, rows, dim, mean, logStd, tol, report)
}

@_cdecl("era_check_continuous_tanh_f64")
public func era_check_continuous_tanh_f64(_ params: UnsafePointer<era_continuous_params>?, _ rows: Int64,
                                          _ dim: Int64, _ mean: UnsafePointer<Double>?, _ logStd: UnsafePointer<Double>?,
                                          _ tol: Double, _ report: UnsafeMutablePointer<era_bound_report>?) -> era_status {
    sampledFloorCheck({ () throws(ERAError) in try tanhFloorERA(params, dim: dim) }, rows, dim, mean, logStd, tol, report)
}
