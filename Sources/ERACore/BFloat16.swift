// bfloat16 storage: the upper 16 bits of an IEEE float32 (LLM logits, math 3).

/// A bfloat16 value as stored in memory: the upper half of a float32's bits.
@frozen public struct BFloat16: Sendable, Equatable {
    public var bitPattern: UInt16

    @inlinable public init(bitPattern: UInt16) { self.bitPattern = bitPattern }

    /// Rounds to nearest, ties to even; NaN stays a (quiet) NaN.
    @inlinable public init(_ value: Float) {
        let bits = value.bitPattern
        if value.isNaN {
            bitPattern = UInt16(truncatingIfNeeded: bits >> 16) | 0x0040
        } else {
            let rounding = 0x7FFF + ((bits >> 16) & 1)
            bitPattern = UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
        }
    }

    /// The exact float32 value.
    @inlinable public var float: Float { Float(bitPattern: UInt32(bitPattern) << 16) }
}

/// Storage types a logit (or its gradient) can be read from and written to: read exactly as
/// double, written rounded to nearest.
public protocol LogitStorage {
    var doubleValue: Double { get }
    init(rounding value: Double)
}

extension Float: LogitStorage {
    @inlinable public var doubleValue: Double { Double(self) }
    @inlinable public init(rounding value: Double) { self = Float(value) }
}

extension Double: LogitStorage {
    @inlinable public var doubleValue: Double { self }
    @inlinable public init(rounding value: Double) { self = value }
}

extension BFloat16: LogitStorage {
    @inlinable public var doubleValue: Double { Double(float) }
    /// Rounds to nearest, ties to even, directly from double: the double is first rounded to a
    /// float32 with round-to-odd (truncate, then set the last bit when inexact), which keeps
    /// the second rounding to bfloat16 from meeting a false tie.
    @inlinable public init(rounding value: Double) {
        var f = Float(value)
        if f.isFinite && Double(f) != value {
            if abs(Double(f)) > abs(value) { f = Float(bitPattern: f.bitPattern - 1) }
            f = Float(bitPattern: f.bitPattern | 1)
        }
        self.init(f)
    }
}
