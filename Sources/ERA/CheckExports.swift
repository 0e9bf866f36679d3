// Bound verification entry points (era.h, "Bound verification").
import CEra
import ERACore

extension era_bound_report {
    init(_ report: BoundReport) {
        self.init(rows: Int64(report.rows), violations: Int64(report.violations), min_entropy: report.minEntropy,
                  mean_entropy: report.meanEntropy, max_deficit: report.maxDeficit, floor: report.floor,
                  target: report.target, worst_row: Int64(report.worstRow))
    }
}

/// Checks the report pointer, runs the check, and writes the report only on success.
@inline(__always)
func boundCheck(_ report: UnsafeMutablePointer<era_bound_report>?,
                _ check: () throws(ERAError) -> BoundReport) -> era_status {
    status { () throws(ERAError) in
        guard let report else { throw .nullPointer }
        report.pointee = era_bound_report(try check())
    }
}

/// Validates a discrete check's arguments and returns the rows and parameters.
func discreteCheckArguments<T: ERAReal>(_ params: UnsafePointer<era_discrete_params>?, _ rows: Int64, _ classes: Int64,
                                        _ logits: UnsafePointer<T>?, _ tol: Double) throws(ERAError) -> DiscreteERA {
    let era = try discreteERA(params, classes: classes)
    let count = try checkedElementCount(rows: rows, cols: classes, minCols: 2, elementSize: MemoryLayout<T>.stride)
    try BoundCheck.validate(tolerance: tol)
    try requireFinite(logits, count: count)
    return era
}

@_cdecl("era_check_discrete_f32")
public func era_check_discrete_f32(_ params: UnsafePointer<era_discrete_params>?, _ rows: Int64, _ classes: Int64,
                                   _ logits: UnsafePointer<Float>?, _ tol: Double,
                                   _ report: UnsafeMutablePointer<era_bound_report>?) -> era_status {
    boundCheck(report) { () throws(ERAError) in
        let era = try discreteCheckArguments(params, rows, classes, logits, tol)
        return try BoundCheck.discrete(era, rows: Int(rows), outputLogits: logits, tolerance: tol)
    }
}

@_cdecl("era_check_discrete_f64")
public func era_check_discrete_f64(_ params: UnsafePointer<era_discrete_params>?, _ rows: Int64, _ classes: Int64,
                                   _ logits: UnsafePointer<Double>?, _ tol: Double,
                                   _ report: UnsafeMutablePointer<era_bound_report>?) -> era_status {
    boundCheck(report) { () throws(ERAError) in
        let era = try discreteCheckArguments(params, rows, classes, logits, tol)
        return try BoundCheck.discrete(era, rows: Int(rows), outputLogits: logits, tolerance: tol)
    }
}

/// Validates a continuous check's arguments and returns the parameters.
func continuousCheckArguments<T: ERAReal>(_ params: UnsafePointer<era_continuous_params>?, _ rows: Int64, _ dim: Int64,
                                          _ mean: UnsafePointer<T>?, _ logStd: UnsafePointer<T>?,
                                          _ tol: Double) throws(ERAError) -> ContinuousERA {
    let era = try continuousERA(params, dim: dim)
    let count = try checkedElementCount(rows: rows, cols: dim, minCols: 1, elementSize: MemoryLayout<T>.stride)
    try BoundCheck.validate(tolerance: tol)
    try requireFinite(logStd, count: count)
    if mean != nil { try requireFinite(mean, count: count) }
    return era
}

@_cdecl("era_check_continuous_f32")
public func era_check_continuous_f32(_ params: UnsafePointer<era_continuous_params>?, _ rows: Int64, _ dim: Int64,
                                     _ mean: UnsafePointer<Float>?, _ logStd: UnsafePointer<Float>?, _ tol: Double,
                                     _ report: UnsafeMutablePointer<era_bound_report>?) -> era_status {
    boundCheck(report) { () throws(ERAError) in
        let era = try continuousCheckArguments(params, rows, dim, mean, logStd, tol)
        return try BoundCheck.continuous(era, rows: Int(rows), mean: mean, logStd: logStd, tolerance: tol)
    }
}

@_cdecl("era_check_continuous_f64")
public func era_check_continuous_f64(_ params: UnsafePointer<era_continuous_params>?, _ rows: Int64, _ dim: Int64,
                                     _ mean: UnsafePointer<Double>?, _ logStd: UnsafePointer<Double>?, _ tol: Double,
                                     _ report: UnsafeMutablePointer<era_bound_report>?) -> era_status {
    boundCheck(report) { () throws(ERAError) in
        let era = try continuousCheckArguments(params, rows, dim, mean, logStd, tol)
        return try BoundCheck.continuous(era, rows: Int(rows), mean: mean, logStd: logStd, tolerance: tol)
    }
}
