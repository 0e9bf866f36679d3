// bfloat16 storage of LLM logits and gradients: round to nearest even from float32 and from
// float64, against bit patterns constructed by hand and an independent rounding reference.
import XCTest
@testable import ERACore

private func llmFromFloatBits(_ bits: UInt32) -> UInt16 {
    BFloat16(Float(bitPattern: bits)).bitPattern
}

final class LLMBFloat16Tests: XCTestCase {
    func testFromFloatConstructedCases() {
        let cases: [(UInt32, UInt16, String)] = [
            (0x3F80_0000, 0x3F80, "1 exact"),
            (0xC040_0000, 0xC040, "-3 exact"),
            (0x3F80_7FFF, 0x3F80, "just below half: down"),
            (0x3F80_8000, 0x3F80, "half, even below: down"),
            (0x3F80_8001, 0x3F81, "just above half: up"),
            (0x3F81_8000, 0x3F82, "half, odd below: up to even"),
            (0x3F81_7FFF, 0x3F81, "odd, just below half: down"),
            (0xBF80_8000, 0xBF80, "negative half, even: toward zero"),
            (0xBF81_8000, 0xBF82, "negative half, odd: away from zero"),
            (0xBF80_C000, 0xBF81, "negative above half"),
            (0x3FFF_8000, 0x4000, "half carries into the exponent"),
            (0x3FFF_FFFF, 0x4000, "rounds up into the next binade"),
            (0x7F7F_0000, 0x7F7F, "largest finite bfloat16, exact"),
            (0x7F7F_7FFF, 0x7F7F, "just below the overflow threshold"),
            (0x7F7F_8000, 0x7F80, "the overflow threshold (tie, odd below): +inf"),
            (0x7F7F_FFFF, 0x7F80, "largest float32: +inf"),
            (0xFF7F_FFFF, 0xFF80, "most negative float32: -inf"),
            (0x7F80_0000, 0x7F80, "+inf"),
            (0xFF80_0000, 0xFF80, "-inf"),
            (0x0000_0000, 0x0000, "+0"),
            (0x8000_0000, 0x8000, "-0"),
            (0x0000_0001, 0x0000, "smallest subnormal float32: +0"),
            (0x8000_0001, 0x8000, "negative smallest subnormal: -0"),
            (0x0000_8000, 0x0000, "half the smallest bfloat16 subnormal: tie to 0"),
            (0x0000_8001, 0x0001, "just above: smallest subnormal"),
            (0x0001_8000, 0x0002, "subnormal tie, odd below: up"),
            (0x0001_0000, 0x0001, "smallest bfloat16 subnormal, exact"),
            (0x007F_0000, 0x007F, "largest bfloat16 subnormal, exact"),
            (0x007F_FFFF, 0x0080, "largest float32 subnormal: up to the smallest normal"),
            (0x0080_0000, 0x0080, "smallest normal"),
        ]
        for (input, expected, name) in cases {
            XCTAssertEqual(llmFromFloatBits(input), expected, name)
            // The same answer from the independent reference (decoded exactly).
            XCTAssertEqual(llmRoundToBF16(Double(Float(bitPattern: input))), expected, "reference: \(name)")
        }
    }

    func testNaNStaysNaN() {
        for bits: UInt32 in [0x7FC0_0000, 0xFFC0_0000, 0x7F80_0001, 0xFF80_0001, 0x7FFF_FFFF, 0x7F80_8000, 0x7FA0_0000] {
            let result = BFloat16(Float(bitPattern: bits))
            XCTAssertTrue(result.float.isNaN, String(bits, radix: 16))
            XCTAssertEqual(result.bitPattern & 0x7F80, 0x7F80)
        }
        XCTAssertTrue(BFloat16(rounding: Double.nan).float.isNaN)
        XCTAssertTrue(BFloat16(rounding: -Double.nan).float.isNaN)
        XCTAssertTrue(BFloat16(rounding: Double.signalingNaN).float.isNaN)
    }

    /// Every bfloat16 pattern survives the trip through float32: the decode is exact and the
    /// rounding leaves representable values alone.
    func testAllPatternsRoundTrip() {
        for raw in 0...0xFFFF {
            let bits = UInt16(raw)
            let value = BFloat16(bitPattern: bits).float
            XCTAssertEqual(value.bitPattern, UInt32(bits) << 16)
            if value.isNaN { continue }
            XCTAssertEqual(BFloat16(value).bitPattern, bits)
            XCTAssertEqual(BFloat16(rounding: Double(value)).bitPattern, bits)
        }
    }

    func testFromFloatRandomAgainstReference() {
        var rng = TestRandom(seed: 20)
        for _ in 0..<100_000 {
            let bits = UInt32(truncatingIfNeeded: rng.next())
            let value = Float(bitPattern: bits)
            if value.isNaN { continue }
            XCTAssertEqual(BFloat16(value).bitPattern, llmRoundToBF16(Double(value)), String(bits, radix: 16))
        }
    }

    func testFromDoubleSpecialValues() {
        let bf16Max = llmBF16Value(0x7F7F)
        let overflowThreshold = bf16Max + 0x1p119  // halfway to 2^128
        let cases: [(Double, UInt16, String)] = [
            (0, 0x0000, "+0"),
            (-0.0, 0x8000, "-0"),
            (.infinity, 0x7F80, "+inf"),
            (-.infinity, 0xFF80, "-inf"),
            (Double.greatestFiniteMagnitude, 0x7F80, "huge: +inf"),
            (-1e300, 0xFF80, "-huge: -inf"),
            (Double(Float.greatestFiniteMagnitude), 0x7F80, "largest float32: +inf"),
            (Double(Float.greatestFiniteMagnitude) * (1 + 0x1p-30), 0x7F80, "beyond float32 max: +inf"),
            (bf16Max, 0x7F7F, "largest bfloat16"),
            (overflowThreshold, 0x7F80, "overflow threshold: +inf"),
            (overflowThreshold.nextDown, 0x7F7F, "just below the overflow threshold"),
            (-overflowThreshold.nextDown, 0xFF7F, "negative, just below the overflow threshold"),
            (1e-300, 0x0000, "tiny: +0"),
            (-1e-300, 0x8000, "-tiny: -0"),
            (Double.leastNonzeroMagnitude, 0x0000, "least double: +0"),
            (0x1p-134, 0x0000, "half the least bfloat16 subnormal: tie to even 0"),
            ((0x1p-134).nextUp, 0x0001, "just above: least subnormal"),
            (0x1p-133, 0x0001, "least bfloat16 subnormal"),
            (3 * 0x1p-134, 0x0002, "subnormal tie, odd below: up"),
            ((3 * 0x1p-134).nextDown, 0x0001, "just below a subnormal tie"),
            (1 + 0x1p-8, 0x3F80, "1 + half ulp: tie to even 1"),
            ((1 + 0x1p-8).nextUp, 0x3F81, "1 + just over half ulp: up"),
            (1 + 3 * 0x1p-8, 0x3F82, "tie, odd below: up"),
            ((1 + 3 * 0x1p-8).nextDown, 0x3F81, "just below a tie: down"),
        ]
        for (value, expected, name) in cases {
            XCTAssertEqual(llmRoundToBF16(value), expected, "reference: \(name)")
            XCTAssertEqual(BFloat16(rounding: value).bitPattern, expected, name)
        }
    }

    /// Random doubles across the whole bfloat16 range (normal and subnormal), both signs.
    func testFromDoubleRandomAgainstReference() {
        var rng = TestRandom(seed: 21)
        var mismatches = 0
        for _ in 0..<100_000 {
            let exponent = UInt64(1023 - 140 + rng.int(140 + 130))  // 2^-140 ... 2^129
            let bits = (rng.next() & 0x8000_0000_0000_0000) | (exponent << 52) | (rng.next() & 0x000F_FFFF_FFFF_FFFF)
            let value = Double(bitPattern: bits)
            if BFloat16(rounding: value).bitPattern != llmRoundToBF16(value) {
                mismatches += 1
                if mismatches < 5 { XCTFail("\(value): \(BFloat16(rounding: value).bitPattern) vs \(llmRoundToBF16(value))") }
            }
        }
        XCTAssertEqual(mismatches, 0)
    }

    /// Doubles within a float32 rounding of a bfloat16 midpoint: rounding first to float32 (to
    /// nearest) lands exactly on the midpoint and then breaks the tie the wrong way. The direct
    /// rounding must not.
    func testFromDoubleAvoidsDoubleRounding() {
        var rng = TestRandom(seed: 22)
        var naiveWrong = 0, checked = 0
        for _ in 0..<20_000 {
            // A random finite bfloat16 below the largest, normal or subnormal, and its upper neighbour.
            let low = UInt16(rng.int(0x7F7F))
            let midpoint = (llmBF16Value(low) + llmBF16Value(low + 1)) / 2
            let sign: Double = rng.int(2) == 0 ? 1 : -1
            let ulp = llmBF16Value(low + 1) - llmBF16Value(low)
            let offsets: [Double] = [0, 0x1p-30, -0x1p-30, 0x1p-40, -0x1p-40, 0x1p-27, -0x1p-27]
            for offset in offsets {
                let value = sign * (midpoint + offset * ulp)
                let expected = llmRoundToBF16(value)
                XCTAssertEqual(BFloat16(rounding: value).bitPattern, expected, "\(value)")
                checked += 1
                if BFloat16(Float(value)).bitPattern != expected { naiveWrong += 1 }
            }
            for value in [sign * midpoint.nextUp, sign * midpoint.nextDown] {
                XCTAssertEqual(BFloat16(rounding: value).bitPattern, llmRoundToBF16(value), "\(value)")
                checked += 1
            }
        }
        // The cases are the hard ones: the naive route through Float(value) gets many of them wrong.
        XCTAssertGreaterThan(naiveWrong, checked / 10, "the test cases do not exercise double rounding")
    }

    func testDecodeIsExact() {
        XCTAssertEqual(BFloat16(bitPattern: 0x3F80).float, 1)
        XCTAssertEqual(BFloat16(bitPattern: 0xC0A0).float, -5)
        XCTAssertEqual(BFloat16(bitPattern: 0x0001).float, Float(bitPattern: 0x0001_0000))
        XCTAssertEqual(BFloat16(bitPattern: 0x7F80).float, .infinity)
        XCTAssertEqual(BFloat16(bitPattern: 0xFF80).float, -.infinity)
        XCTAssertEqual(BFloat16(bitPattern: 0x4049).doubleValue, llmBF16Value(0x4049))
    }
}
