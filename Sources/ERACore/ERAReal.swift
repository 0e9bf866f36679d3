// The floating-point types the kernels are written for, with the elementary functions they
// need taken straight from the C library (no Foundation). Kernels are generic over ERAReal
// and are specialised for Float and Double inside this module.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public protocol ERAReal: BinaryFloatingPoint where RawSignificand: FixedWidthInteger {
    static func exp(_ x: Self) -> Self
    static func log(_ x: Self) -> Self
}

extension Float: ERAReal {
    @inlinable @inline(__always) public static func exp(_ x: Float) -> Float { expf(x) }
    @inlinable @inline(__always) public static func log(_ x: Float) -> Float { logf(x) }
}

extension Double: ERAReal {
    @inlinable @inline(__always) public static func exp(_ x: Double) -> Double { Glibc.exp(x) }
    @inlinable @inline(__always) public static func log(_ x: Double) -> Double { Glibc.log(x) }
}

/// Double-precision elementary functions used by the kernels that compute in double whatever
/// the storage type (entropies, per-row statistics, the inverse of h).
@usableFromInline enum Math {
    @inline(__always) static func exp(_ x: Double) -> Double { Glibc.exp(x) }
    @inline(__always) static func expm1(_ x: Double) -> Double { Glibc.expm1(x) }
    @inline(__always) static func log(_ x: Double) -> Double { Glibc.log(x) }
    @inline(__always) static func log1p(_ x: Double) -> Double { Glibc.log1p(x) }
    @inline(__always) static func erf(_ x: Double) -> Double { Glibc.erf(x) }
    @inline(__always) static func erfc(_ x: Double) -> Double { Glibc.erfc(x) }
    @inline(__always) static func cos(_ x: Double) -> Double { Glibc.cos(x) }

    static let pi = Double.pi
    /// 0.5 * log(2*pi*e): the entropy of N(0, 1) in nats (math 1).
    static let gaussianEntropyPerDim = 0.5 * Glibc.log(2 * Double.pi * Glibc.exp(1.0))
    static let e = Glibc.exp(1.0)
}
