/// Checks a rows x cols array shape: rows >= 0, cols >= minCols, and rows*cols*elementSize
/// fits in an Int. Returns the element count.
public func checkedElementCount(rows: Int64, cols: Int64, minCols: Int64, elementSize: Int) throws(ERAError) -> Int {
    guard rows >= 0, cols >= minCols, cols >= 0 else { throw .badShape }
    let (count, overflow) = rows.multipliedReportingOverflow(by: cols)
    guard !overflow else { throw .badShape }
    let (bytes, overflowBytes) = count.multipliedReportingOverflow(by: Int64(elementSize))
    guard !overflowBytes, bytes <= Int64(Int.max) else { throw .badShape }
    return Int(count)
}

/// True when every value is finite (no NaN, no infinity).
@inlinable
public func allFinite<T: BinaryFloatingPoint>(_ values: UnsafePointer<T>, count: Int) -> Bool {
    // Accumulate instead of branching per element so the loop vectorises: x - x is 0 for a
    // finite x and NaN for NaN or an infinity.
    var probe: T = 0
    var i = 0
    while i < count {
        probe += values[i] - values[i]
        i += 1
    }
    return probe == 0
}

/// Throws .nonFinite unless every value is finite (.nullPointer if values are missing).
@inlinable
public func requireFinite<T: BinaryFloatingPoint>(_ values: UnsafePointer<T>?, count: Int) throws(ERAError) {
    guard count > 0 else { return }
    guard let values else { throw .nullPointer }
    guard allFinite(values, count: count) else { throw .nonFinite }
}

/// Throws .nullPointer when a pointer to `count` > 0 elements is missing.
@inlinable
public func requirePointer<P>(_ pointer: P?, count: Int) throws(ERAError) {
    if count > 0 && pointer == nil { throw .nullPointer }
}
