// Entropy math entry points (era.h, "Entropy math").
import CEra
import ERACore

/// Checks a rows x cols input and its per-row output, scans the inputs, and runs `kernel`.
@inline(__always)
func rowEntropy<T: ERAReal>(_ rows: Int64, _ cols: Int64, inputs: [UnsafePointer<T>?], _ out: UnsafeMutablePointer<T>?,
                            parameters: () throws(ERAError) -> Void = {},
                            _ kernel: (Int, Int, UnsafeMutablePointer<T>) throws(ERAError) -> Void) -> era_status {
    status { () throws(ERAError) in
        try parameters()
        let count = try checkedElementCount(rows: rows, cols: cols, minCols: 1, elementSize: MemoryLayout<T>.stride)
        try requirePointer(out, count: Int(rows))
        for input in inputs { try requirePointer(input, count: count) }
        try requireDisjoint(outputs: [Span(out, Int(rows))], inputs: inputs.map { Span($0, count) })
        for input in inputs { try requireFinite(input, count: count) }
        guard rows > 0 else { return }
        try kernel(Int(rows), Int(cols), out!)
    }
}

@_cdecl("era_softmax_entropy_f32")
public func era_softmax_entropy_f32(_ rows: Int64, _ cols: Int64, _ logits: UnsafePointer<Float>?,
                                    _ out: UnsafeMutablePointer<Float>?) -> era_status {
    rowEntropy(rows, cols, inputs: [logits], out) { (r, c, o) throws(ERAError) in
        try Entropy.softmax(rows: r, cols: c, logits: logits!, out: o)
    }
}

@_cdecl("era_softmax_entropy_f64")
public func era_softmax_entropy_f64(_ rows: Int64, _ cols: Int64, _ logits: UnsafePointer<Double>?,
                                    _ out: UnsafeMutablePointer<Double>?) -> era_status {
    rowEntropy(rows, cols, inputs: [logits], out) { (r, c, o) throws(ERAError) in
        try Entropy.softmax(rows: r, cols: c, logits: logits!, out: o)
    }
}

@_cdecl("era_gaussian_entropy_f32")
public func era_gaussian_entropy_f32(_ rows: Int64, _ dim: Int64, _ logStd: UnsafePointer<Float>?,
                                     _ out: UnsafeMutablePointer<Float>?) -> era_status {
    rowEntropy(rows, dim, inputs: [logStd], out) { (r, d, o) throws(ERAError) in
        try Entropy.gaussian(rows: r, dim: d, logStd: logStd!, out: o)
    }
}

@_cdecl("era_gaussian_entropy_f64")
public func era_gaussian_entropy_f64(_ rows: Int64, _ dim: Int64, _ logStd: UnsafePointer<Double>?,
                                     _ out: UnsafeMutablePointer<Double>?) -> era_status {
    rowEntropy(rows, dim, inputs: [logStd], out) { (r, d, o) throws(ERAError) in
        try Entropy.gaussian(rows: r, dim: d, logStd: logStd!, out: o)
    }
}

@_cdecl("era_tanh_gaussian_entropy_f32")
public func era_tanh_gaussian_entropy_f32(_ rows: Int64, _ dim: Int64, _ mean: UnsafePointer<Float>?,
                                          _ logStd: UnsafePointer<Float>?, _ out: UnsafeMutablePointer<Float>?) -> era_status {
    rowEntropy(rows, dim, inputs: [mean, logStd], out) { (r, d, o) throws(ERAError) in
        try Entropy.tanhGaussian(rows: r, dim: d, mean: mean!, logStd: logStd!, out: o)
    }
}

@_cdecl("era_tanh_gaussian_entropy_f64")
public func era_tanh_gaussian_entropy_f64(_ rows: Int64, _ dim: Int64, _ mean: UnsafePointer<Double>?,
                                          _ logStd: UnsafePointer<Double>?, _ out: UnsafeMutablePointer<Double>?) -> era_status {
    rowEntropy(rows, dim, inputs: [mean, logStd], out) { (r, d, o) throws(ERAError) in
        try Entropy.tanhGaussian(rows: r, dim: d, mean: mean!, logStd: logStd!, out: o)
    }
}

/// Throws .badParameter unless lo < hi, both finite.
@inline(__always)
func checkInterval(_ lo: Double, _ hi: Double) throws(ERAError) {
    guard lo.isFinite, hi.isFinite, lo < hi else { throw .badParameter }
}

@_cdecl("era_truncated_normal_entropy_f32")
public func era_truncated_normal_entropy_f32(_ rows: Int64, _ dim: Int64, _ loc: UnsafePointer<Float>?,
                                             _ logStd: UnsafePointer<Float>?, _ lo: Double, _ hi: Double,
                                             _ out: UnsafeMutablePointer<Float>?) -> era_status {
    rowEntropy(rows, dim, inputs: [loc, logStd], out, parameters: { () throws(ERAError) in try checkInterval(lo, hi) }) {
        (r, d, o) throws(ERAError) in
        try Entropy.truncatedNormal(rows: r, dim: d, loc: loc!, logStd: logStd!, lo: lo, hi: hi, out: o)
    }
}

@_cdecl("era_truncated_normal_entropy_f64")
public func era_truncated_normal_entropy_f64(_ rows: Int64, _ dim: Int64, _ loc: UnsafePointer<Double>?,
                                             _ logStd: UnsafePointer<Double>?, _ lo: Double, _ hi: Double,
                                             _ out: UnsafeMutablePointer<Double>?) -> era_status {
    rowEntropy(rows, dim, inputs: [loc, logStd], out, parameters: { () throws(ERAError) in try checkInterval(lo, hi) }) {
        (r, d, o) throws(ERAError) in
        try Entropy.truncatedNormal(rows: r, dim: d, loc: loc!, logStd: logStd!, lo: lo, hi: hi, out: o)
    }
}
