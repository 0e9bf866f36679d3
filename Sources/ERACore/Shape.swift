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
    // x - x is 0 for a finite x and NaN for NaN or an infinity; the probes are summed in vector
    // lanes (a scalar sum is one dependent add per element: floating-point addition is not
    // reassociated, so the compiler cannot vectorise it).
    let raw = UnsafeRawPointer(values)
    if T.self == Float.self { return allFiniteLanes(raw, count: count, as: SIMD16<Float>.self) }
    if T.self == Double.self { return allFiniteLanes(raw, count: count, as: SIMD8<Double>.self) }
    var probe: T = 0
    for i in 0..<count { probe += values[i] - values[i] }
    return probe == 0
}

/// allFinite over `count` scalars of V's scalar type, V.scalarCount at a time.
@inlinable
func allFiniteLanes<V: SIMD>(_ values: UnsafeRawPointer, count: Int, as _: V.Type) -> Bool where V.Scalar: BinaryFloatingPoint {
    let width = V.scalarCount, stride = MemoryLayout<V.Scalar>.stride
    var probe0 = V(), probe1 = V()
    var i = 0
    while i + 2 * width <= count {
        let a = values.loadUnaligned(fromByteOffset: i * stride, as: V.self)
        let b = values.loadUnaligned(fromByteOffset: (i + width) * stride, as: V.self)
        probe0 += a - a
        probe1 += b - b
        i += 2 * width
    }
    var probe = (probe0 + probe1).sum()
    while i < count {
        let v = values.loadUnaligned(fromByteOffset: i * stride, as: V.Scalar.self)
        probe += v - v
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
