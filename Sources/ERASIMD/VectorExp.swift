// exp for four doubles at once (docs/math.md, "Vector kernels"). Range reduction
// x = n*ln2 + r, |r| <= ln2/2, with n = round(x/ln2) by the 1.5*2^52 shift and ln2 split
// Cody-Waite style (n*ln2Hi exact for |n| < 2^11); exp(r) = 1 + r*P(r) with P of degree 7,
// fitted for relative error (8.2e-13 on |r| <= 0.347, measured against 40-digit exp); 2^n
// built in the exponent bits. Accurate to about 1e-12 relative, far below the float32 and
// bfloat16 rounding of the kernels that use it (Tests/ERACoreTests: SIMD tests).

/// The 1.5*2^52 shift: adding it rounds to an integer and leaves the integer in the low bits.
@usableFromInline let roundingShift = 6_755_399_441_055_744.0
@usableFromInline let log2e = 1.442_695_040_888_963_4
@usableFromInline let ln2Hi = 6.931_471_803_691_238_164_90e-01  // 0x3FE62E42FEE00000: 32 bits
@usableFromInline let ln2Lo = 1.908_214_929_270_587_700_02e-10

/// The smallest argument whose exp is a normal double; below it the kernels take exp as 0.
public let smallestExpArgument = -708.0

/// exp(x) for x in [smallestExpArgument, 0] (slightly above 0 is fine, up to 700); lanes below
/// smallestExpArgument (also -inf) give 0. NaN lanes give NaN or 0; callers filter NaN first.
@inline(__always)
func exp4(_ x: SIMD4<Double>) -> SIMD4<Double> {
    let low = x .< SIMD4(repeating: smallestExpArgument)
    let x = x.replacing(with: smallestExpArgument, where: low)
    let shifted = SIMD4(repeating: roundingShift).addingProduct(x, SIMD4(repeating: log2e))
    let n = shifted - roundingShift
    var r = x.addingProduct(-n, SIMD4(repeating: ln2Hi))
    r = r.addingProduct(-n, SIMD4(repeating: ln2Lo))
    // Horner on 1 + r*(c1 + r*(c2 + ... + r*c8)).
    var p = SIMD4<Double>(repeating: 2.473_283_696_805_342_3e-05)
    p = SIMD4(repeating: 1.991_481_165_150_152e-04).addingProduct(p, r)
    p = SIMD4(repeating: 1.388_915_603_556_879e-03).addingProduct(p, r)
    p = SIMD4(repeating: 8.333_268_524_849_929e-03).addingProduct(p, r)
    p = SIMD4(repeating: 4.166_666_452_446_958_5e-02).addingProduct(p, r)
    p = SIMD4(repeating: 1.666_666_687_443_537_4e-01).addingProduct(p, r)
    p = SIMD4(repeating: 5.000_000_000_461_704e-01).addingProduct(p, r)
    p = SIMD4(repeating: 9.999_999_999_829_398e-01).addingProduct(p, r)
    p = SIMD4(repeating: 1.0).addingProduct(p, r)
    // 2^n: n sits in the low bits of `shifted`; the exponent field of 2^n is n + 1023.
    let nBits = unsafeBitCast(shifted, to: SIMD4<Int64>.self) &- unsafeBitCast(SIMD4(repeating: roundingShift), to: SIMD4<Int64>.self)
    let scale = unsafeBitCast((nBits &+ 1023) &<< 52, to: SIMD4<Double>.self)
    return (p * scale).replacing(with: 0, where: low)
}

/// exp4 for an array, for the accuracy tests.
public func vectorExp(_ x: UnsafePointer<Double>, count: Int, out: UnsafeMutablePointer<Double>) {
    var i = 0
    while i + 4 <= count {
        let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD4<Double>.self)
        UnsafeMutableRawPointer(out + i).storeBytes(of: exp4(v), as: SIMD4<Double>.self)
        i += 4
    }
    if i < count {
        var v = SIMD4<Double>(repeating: 0)
        for k in 0..<(count - i) { v[k] = x[i + k] }
        let e = exp4(v)
        for k in 0..<(count - i) { out[i + k] = e[k] }
    }
}

/// log(x) for four positive normal doubles: x = 2^k m, m in [sqrt(1/2), sqrt(2)), and
/// log m = 2 atanh(s), s = (m - 1)/(m + 1), |s| <= 0.1716, by its series to s^15 (truncation
/// below 3.4e-14 relative to log m; measured against glibc: see the SIMD tests).
@inline(__always)
func log4(_ x: SIMD4<Double>) -> SIMD4<Double> {
    let bits = unsafeBitCast(x, to: SIMD4<Int64>.self)
    // The biased exponent E as a double: the bits of 2^52 + E, minus 2^52.
    let biased = unsafeBitCast((bits &>> 52) | 0x4330_0000_0000_0000, to: SIMD4<Double>.self)
    var k = biased - (4_503_599_627_370_496.0 + 1023)
    var m = unsafeBitCast((bits & 0x000F_FFFF_FFFF_FFFF) | 0x3FF0_0000_0000_0000, to: SIMD4<Double>.self)  // [1, 2)
    let big = m .> SIMD4(repeating: 1.414_213_562_373_095_1)
    m.replace(with: m * 0.5, where: big)
    k.replace(with: k + 1, where: big)
    let s = (m - 1) / (m + 1)
    let s2 = s * s
    var p = SIMD4<Double>(repeating: 1.0 / 15)
    p = SIMD4(repeating: 1.0 / 13).addingProduct(p, s2)
    p = SIMD4(repeating: 1.0 / 11).addingProduct(p, s2)
    p = SIMD4(repeating: 1.0 / 9).addingProduct(p, s2)
    p = SIMD4(repeating: 1.0 / 7).addingProduct(p, s2)
    p = SIMD4(repeating: 1.0 / 5).addingProduct(p, s2)
    p = SIMD4(repeating: 1.0 / 3).addingProduct(p, s2)
    let logM = 2 * s.addingProduct(s * s2, p)  // 2(s + s^3 p)
    return logM.addingProduct(k, SIMD4(repeating: ln2Hi)).addingProduct(k, SIMD4(repeating: ln2Lo))
}

/// log4 for an array, for the accuracy tests.
public func vectorLog(_ x: UnsafePointer<Double>, count: Int, out: UnsafeMutablePointer<Double>) {
    var i = 0
    while i < count {
        var v = SIMD4<Double>(repeating: 1)
        for k in 0..<min(4, count - i) { v[k] = x[i + k] }
        let r = log4(v)
        for k in 0..<min(4, count - i) { out[i + k] = r[k] }
        i += 4
    }
}
