// Truncated-normal policy entry points (era.h, "Truncated-normal policy").
import CEra
import ERACore

/// Checks the interval, the shape, the pointers and overlaps of an element-wise truncated-normal
/// call, scans its inputs, and runs `kernel` on the element count.
@inline(__always)
func truncatedNormalCall<T: ERAReal>(_ rows: Int64, _ dim: Int64, lo: Double, hi: Double,
                                     inputs: [UnsafePointer<T>?], outputs: [UnsafeMutablePointer<T>?],
                                     _ kernel: (Int) throws(ERAError) -> Void) -> era_status {
    status { () throws(ERAError) in
        guard lo.isFinite, hi.isFinite, lo < hi, (hi - lo).isFinite else { throw .badParameter }
        let count = try checkedElementCount(rows: rows, cols: dim, minCols: 1, elementSize: MemoryLayout<T>.stride)
        for output in outputs { try requirePointer(output, count: count) }
        for input in inputs { try requirePointer(input, count: count) }
        try requireDisjoint(outputs: outputs.map { Span($0, count) }, inputs: inputs.map { Span($0, count) })
        for input in inputs { try requireFinite(input, count: count) }
        guard count > 0 else { return }
        try kernel(count)
    }
}

/// Sampling by the inverse CDF of `uniform` (era_truncated_normal_sample_*).
@inline(__always)
func truncatedNormalSample<T: ERAReal>(_ rows: Int64, _ dim: Int64, _ loc: UnsafePointer<T>?,
                                       _ logStd: UnsafePointer<T>?, _ lo: Double, _ hi: Double,
                                       _ uniform: UnsafePointer<T>?,
                                       _ out: UnsafeMutablePointer<T>?) -> era_status {
    truncatedNormalCall(rows, dim, lo: lo, hi: hi, inputs: [loc, logStd, uniform], outputs: [out]) { n throws(ERAError) in
        try TruncatedNormal.sample(count: n, loc: loc!, logStd: logStd!, lo: lo, hi: hi, uniform: uniform!, out: out!)
    }
}

@_cdecl("era_truncated_normal_sample_f32")
public func era_truncated_normal_sample_f32(_ rows: Int64, _ dim: Int64, _ loc: UnsafePointer<Float>?,
                                            _ logStd: UnsafePointer<Float>?, _ lo: Double, _ hi: Double,
                                            _ uniform: UnsafePointer<Float>?,
                                            _ out: UnsafeMutablePointer<Float>?) -> era_status {
    truncatedNormalSample(rows, dim, loc, logStd, lo, hi, uniform, out)
}

@_cdecl("era_truncated_normal_sample_f64")
public func era_truncated_normal_sample_f64(_ rows: Int64, _ dim: Int64, _ loc: UnsafePointer<Double>?,
                                            _ logStd: UnsafePointer<Double>?, _ lo: Double, _ hi: Double,
                                            _ uniform: UnsafePointer<Double>?,
                                            _ out: UnsafeMutablePointer<Double>?) -> era_status {
    truncatedNormalSample(rows, dim, loc, logStd, lo, hi, uniform, out)
}

/// The sample's gradient to loc and log_std (era_truncated_normal_sample_backward_*).
@inline(__always)
func truncatedNormalSampleBackward<T: ERAReal>(_ rows: Int64, _ dim: Int64, _ loc: UnsafePointer<T>?,
                                               _ logStd: UnsafePointer<T>?, _ lo: Double, _ hi: Double,
                                               _ sample: UnsafePointer<T>?, _ gradSample: UnsafePointer<T>?,
                                               _ outGradLoc: UnsafeMutablePointer<T>?,
                                               _ outGradLogStd: UnsafeMutablePointer<T>?) -> era_status {
    truncatedNormalCall(rows, dim, lo: lo, hi: hi, inputs: [loc, logStd, sample, gradSample],
                        outputs: [outGradLoc, outGradLogStd]) { n throws(ERAError) in
        try TruncatedNormal.sampleBackward(count: n, loc: loc!, logStd: logStd!, lo: lo, hi: hi, sample: sample!,
                                           gradSample: gradSample!, gradLoc: outGradLoc!, gradLogStd: outGradLogStd!)
    }
}

@_cdecl("era_truncated_normal_sample_backward_f32")
public func era_truncated_normal_sample_backward_f32(_ rows: Int64, _ dim: Int64, _ loc: UnsafePointer<Float>?,
                                                     _ logStd: UnsafePointer<Float>?, _ lo: Double, _ hi: Double,
                                                     _ sample: UnsafePointer<Float>?, _ gradSample: UnsafePointer<Float>?,
                                                     _ outGradLoc: UnsafeMutablePointer<Float>?,
                                                     _ outGradLogStd: UnsafeMutablePointer<Float>?) -> era_status {
    truncatedNormalSampleBackward(rows, dim, loc, logStd, lo, hi, sample, gradSample, outGradLoc, outGradLogStd)
}

@_cdecl("era_truncated_normal_sample_backward_f64")
public func era_truncated_normal_sample_backward_f64(_ rows: Int64, _ dim: Int64, _ loc: UnsafePointer<Double>?,
                                                     _ logStd: UnsafePointer<Double>?, _ lo: Double, _ hi: Double,
                                                     _ sample: UnsafePointer<Double>?, _ gradSample: UnsafePointer<Double>?,
                                                     _ outGradLoc: UnsafeMutablePointer<Double>?,
                                                     _ outGradLogStd: UnsafeMutablePointer<Double>?) -> era_status {
    truncatedNormalSampleBackward(rows, dim, loc, logStd, lo, hi, sample, gradSample, outGradLoc, outGradLogStd)
}

/// The log-density at `x` (era_truncated_normal_log_prob_*).
@inline(__always)
func truncatedNormalLogProb<T: ERAReal>(_ rows: Int64, _ dim: Int64, _ loc: UnsafePointer<T>?,
                                        _ logStd: UnsafePointer<T>?, _ lo: Double, _ hi: Double,
                                        _ x: UnsafePointer<T>?,
                                        _ out: UnsafeMutablePointer<T>?) -> era_status {
    truncatedNormalCall(rows, dim, lo: lo, hi: hi, inputs: [loc, logStd, x], outputs: [out]) { n throws(ERAError) in
        try TruncatedNormal.logProb(count: n, loc: loc!, logStd: logStd!, lo: lo, hi: hi, x: x!, out: out!)
    }
}

@_cdecl("era_truncated_normal_log_prob_f32")
public func era_truncated_normal_log_prob_f32(_ rows: Int64, _ dim: Int64, _ loc: UnsafePointer<Float>?,
                                              _ logStd: UnsafePointer<Float>?, _ lo: Double, _ hi: Double,
                                              _ x: UnsafePointer<Float>?,
                                              _ out: UnsafeMutablePointer<Float>?) -> era_status {
    truncatedNormalLogProb(rows, dim, loc, logStd, lo, hi, x, out)
}

@_cdecl("era_truncated_normal_log_prob_f64")
public func era_truncated_normal_log_prob_f64(_ rows: Int64, _ dim: Int64, _ loc: UnsafePointer<Double>?,
                                              _ logStd: UnsafePointer<Double>?, _ lo: Double, _ hi: Double,
                                              _ x: UnsafePointer<Double>?,
                                              _ out: UnsafeMutablePointer<Double>?) -> era_status {
    truncatedNormalLogProb(rows, dim, loc, logStd, lo, hi, x, out)
}

/// The log-density's gradient (era_truncated_normal_log_prob_backward_*).
@inline(__always)
func truncatedNormalLogProbBackward<T: ERAReal>(_ rows: Int64, _ dim: Int64, _ loc: UnsafePointer<T>?,
                                                _ logStd: UnsafePointer<T>?, _ lo: Double, _ hi: Double,
                                                _ x: UnsafePointer<T>?, _ gradLogProb: UnsafePointer<T>?,
                                                _ outGradX: UnsafeMutablePointer<T>?,
                                                _ outGradLoc: UnsafeMutablePointer<T>?,
                                                _ outGradLogStd: UnsafeMutablePointer<T>?) -> era_status {
    truncatedNormalCall(rows, dim, lo: lo, hi: hi, inputs: [loc, logStd, x, gradLogProb],
                        outputs: [outGradX, outGradLoc, outGradLogStd]) { n throws(ERAError) in
        try TruncatedNormal.logProbBackward(count: n, loc: loc!, logStd: logStd!, lo: lo, hi: hi, x: x!,
                                            gradLogProb: gradLogProb!, gradX: outGradX!, gradLoc: outGradLoc!,
                                            gradLogStd: outGradLogStd!)
    }
}

@_cdecl("era_truncated_normal_log_prob_backward_f32")
public func era_truncated_normal_log_prob_backward_f32(_ rows: Int64, _ dim: Int64, _ loc: UnsafePointer<Float>?,
                                                       _ logStd: UnsafePointer<Float>?, _ lo: Double, _ hi: Double,
                                                       _ x: UnsafePointer<Float>?, _ gradLogProb: UnsafePointer<Float>?,
                                                       _ outGradX: UnsafeMutablePointer<Float>?,
                                                       _ outGradLoc: UnsafeMutablePointer<Float>?,
                                                       _ outGradLogStd: UnsafeMutablePointer<Float>?) -> era_status {
    truncatedNormalLogProbBackward(rows, dim, loc, logStd, lo, hi, x, gradLogProb, outGradX, outGradLoc, outGradLogStd)
}

@_cdecl("era_truncated_normal_log_prob_backward_f64")
public func era_truncated_normal_log_prob_backward_f64(_ rows: Int64, _ dim: Int64, _ loc: UnsafePointer<Double>?,
                                                       _ logStd: UnsafePointer<Double>?, _ lo: Double, _ hi: Double,
                                                       _ x: UnsafePointer<Double>?, _ gradLogProb: UnsafePointer<Double>?,
                                                       _ outGradX: UnsafeMutablePointer<Double>?,
                                                       _ outGradLoc: UnsafeMutablePointer<Double>?,
                                                       _ outGradLogStd: UnsafeMutablePointer<Double>?) -> era_status {
    truncatedNormalLogProbBackward(rows, dim, loc, logStd, lo, hi, x, gradLogProb, outGradX, outGradLoc, outGradLogStd)
}
