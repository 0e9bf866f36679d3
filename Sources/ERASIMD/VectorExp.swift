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

/// The 1.5*2^23 shift of float32, plus the exponent bias 127: adding it to x rounds x to the
/// integer n and leaves n + 127 in the low bits, so that shifting the bits left by 23 gives 2^n.
@usableFromInline let floatRoundingShift: Float = 12_582_912 + 127

/// exp2Float8's clamp: n = -127 gives the exponent field 0, so 2^n and the result are +0
/// (2^-127 = 5.9e-39 is below the smallest normal float32, 1.2e-38).
@usableFromInline let floatExp2Floor: Float = -127

/// max(x, floatExp2Floor): exp2Float8's argument, which is also the value to weight its result
/// by (finite, so that the weight times 0 is 0 even for a masked -inf logit).
@inline(__always)
func clampedExp2Argument(_ x: SIMD8<Float>) -> SIMD8<Float> {
    // A vector operand, not a scalar one: SIMD8<Float>.replacing(with: scalar, ...) is not
    // compiled to a vector instruction (one branch per lane), the vector form is (vmaxps).
    let floor = SIMD8<Float>(repeating: floatExp2Floor)
    return x.replacing(with: floor, where: x .< floor)
}

/// 2^x for eight float32 lanes with floatExp2Floor <= x <= 127 (clamp with
/// clampedExp2Argument): x = n + f, n = round(x) by the shift, f = x - n in [-1/2, 1/2] exactly
/// (no reduction error), 2^f = 1 + f P(f) with P of degree 5 fitted for relative error
/// (2.0e-9 before rounding), times 2^n from the exponent bits (+0 for n = -127). Within 1.4
/// float32 ulp of 2^x for normal results (measured: Tests/ERACoreTests, SIMD); arguments from
/// -127 to -126 give 0 or a subnormal.
@inline(__always)
func exp2Float8(clamped x: SIMD8<Float>) -> SIMD8<Float> {
    let shifted = x + SIMD8(repeating: floatRoundingShift)
    let f = x - (shifted - SIMD8(repeating: floatRoundingShift))
    var p = SIMD8<Float>(repeating: 1.326_465_862_803_161_1e-03)
    p = SIMD8(repeating: 9.671_566_076_576_71e-03).addingProduct(p, f)
    p = SIMD8(repeating: 5.550_734_326_243_400_6e-02).addingProduct(p, f)
    p = SIMD8(repeating: 2.402_224_093_675_613_4e-01).addingProduct(p, f)
    p = SIMD8(repeating: 6.931_470_036_506_653e-01).addingProduct(p, f)
    p = SIMD8(repeating: 1).addingProduct(p, f)
    let scale = unsafeBitCast(unsafeBitCast(shifted, to: SIMD8<UInt32>.self) &<< 23, to: SIMD8<Float>.self)
    return p * scale
}

/// exp2Float8 for an array (arguments clamped first), for the accuracy tests.
public func vectorExp2Float(_ x: UnsafePointer<Float>, count: Int, out: UnsafeMutablePointer<Float>) {
    lanewise(x, count: count, out: out, padding: 0) { (v: SIMD8<Float>) in exp2Float8(clamped: clampedExp2Argument(v)) }
}

/// exp4 for an array, for the accuracy tests.
public func vectorExp(_ x: UnsafePointer<Double>, count: Int, out: UnsafeMutablePointer<Double>) {
    lanewise(x, count: count, out: out, padding: 0) { (v: SIMD4<Double>) in exp4(v) }
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

/// log(x) for eight positive normal float32 lanes, to about 3e-7 absolute: x = 2^k m,
/// m in [sqrt(1/2), sqrt(2)), log m by a polynomial of degree 7 in m - 1 fitted for absolute
/// error (2.1e-7 before rounding; no division), plus k ln 2. Measured against glibc: see the
/// SIMD tests. For the discrete inverse's start and first Halley step, which a double step
/// corrects (it needs their result within about 1e-4).
@inline(__always)
func logFloat8(_ x: SIMD8<Float>) -> SIMD8<Float> {
    let bits = unsafeBitCast(x, to: SIMD8<Int32>.self)
    // The biased exponent E as a float: the bits of 2^23 + E, minus 2^23.
    let biased = unsafeBitCast((bits &>> SIMD8(repeating: 23)) | SIMD8(repeating: 0x4B00_0000), to: SIMD8<Float>.self)
    var k = biased - SIMD8<Float>(repeating: 8_388_608 + 127)
    var m = unsafeBitCast((bits & SIMD8(repeating: 0x007F_FFFF)) | SIMD8(repeating: 0x3F80_0000), to: SIMD8<Float>.self)
    let big = m .> SIMD8<Float>(repeating: 1.414_213_5)
    m.replace(with: m * SIMD8(repeating: 0.5), where: big)
    k.replace(with: k + SIMD8(repeating: 1), where: big)
    let r = m - SIMD8<Float>(repeating: 1)  // in [-0.293, 0.415)
    var p = SIMD8<Float>(repeating: 0.118_274_807_929_992_68)
    p = SIMD8(repeating: -0.189_019_843_935_966_5).addingProduct(p, r)
    p = SIMD8(repeating: 0.206_046_745_181_083_68).addingProduct(p, r)
    p = SIMD8(repeating: -0.248_813_390_731_811_52).addingProduct(p, r)
    p = SIMD8(repeating: 0.333_032_995_462_417_6).addingProduct(p, r)
    p = SIMD8(repeating: -0.500_019_669_532_775_9).addingProduct(p, r)
    p = SIMD8(repeating: 1.000_003_218_650_817_9).addingProduct(p, r)
    // ln 2 in two parts: 0.693145751953125 has 16 bits, so k times it is exact for |k| < 2^8.
    return (p * r).addingProduct(k, SIMD8(repeating: 0.693_145_751_953_125)).addingProduct(k, SIMD8(repeating: 1.428_606_765_330_187e-06))
}

/// logFloat8 for an array, for the accuracy tests.
public func vectorLogFloat(_ x: UnsafePointer<Float>, count: Int, out: UnsafeMutablePointer<Float>) {
    lanewise(x, count: count, out: out, padding: 1) { (v: SIMD8<Float>) in logFloat8(v) }
}

/// log4 for an array, for the accuracy tests.
public func vectorLog(_ x: UnsafePointer<Double>, count: Int, out: UnsafeMutablePointer<Double>) {
    lanewise(x, count: count, out: out, padding: 1) { (v: SIMD4<Double>) in log4(v) }
}

/// out[i] = f(x)[i] for an array, V.scalarCount lanes at a time (the last step padded with
/// `padding`): the test hooks above.
func lanewise<V: SIMD>(_ x: UnsafePointer<V.Scalar>, count: Int, out: UnsafeMutablePointer<V.Scalar>,
                       padding: V.Scalar, _ f: (V) -> V) {
    var i = 0
    while i < count {
        var v = V(repeating: padding)
        for k in 0..<min(V.scalarCount, count - i) { v[k] = x[i + k] }
        let r = f(v)
        for k in 0..<min(V.scalarCount, count - i) { out[i + k] = r[k] }
        i += V.scalarCount
    }
}
