// The switch between the vector kernels (module ERASIMD, compiled for AVX2 + FMA on x86-64)
// and the portable scalar kernels of this module (docs/math.md, "Vector kernels").
#if canImport(Glibc)
import Glibc
#endif
import CPUFeatures
import ERASIMD
import Synchronization

public enum VectorKernels {
    /// True when the vector kernels run: the processor supports them (AVX2 and FMA on x86-64),
    /// and the environment variable ERA_SIMD is not "0" when libera first looks (ERA_SIMD=0 makes
    /// the tests cover the portable kernels on any machine). Read once per process.
    public static var enabled: Bool {
        // An atomic rather than a lazy global: the answer is asked from worker threads too, and
        // computing it twice is harmless (the same answer), while the runtime's lazy-global
        // lock is invisible to ThreadSanitizer. -1: not asked yet.
        var answer = state.load(ordering: .acquiring)
        if answer < 0 {
            let disabled = getenv("ERA_SIMD").map { String(cString: $0) == "0" } ?? false
            answer = !disabled && libera_cpu_runs_simd_kernels() != 0 ? 1 : 0
            state.store(answer, ordering: .releasing)
        }
        return answer == 1
    }

    private static let state = Atomic<Int>(-1)

    /// (maximum M of scale*z, count of logits at the maximum, S less those, T) over one row by
    /// the vector kernel, or nil when none applies (disabled, double storage, or a scale the
    /// float32 lanes do not take). M is NaN for a row with NaN or +inf, -inf for a fully masked
    /// row.
    @inline(__always)
    static func logitStatistics<S: LogitStorage>(_ z: UnsafePointer<S>, count: Int,
                                                 scale: Double) -> (Double, Double, Double, Double)? {
        guard enabled else { return nil }
        let raw = UnsafeRawPointer(z)
        let result: LogitRowStatistics?
        if S.self == Float.self {
            result = ERASIMD.logitStatistics(raw.assumingMemoryBound(to: Float.self), count: count, scale: scale)
        } else if S.self == BFloat16.self {
            result = ERASIMD.logitStatistics(bfloat16: raw.assumingMemoryBound(to: UInt16.self), count: count, scale: scale)
        } else {
            return nil
        }
        guard let r = result else { return nil }
        return (r.maximum, r.maximumCount, r.sumExpBelowMaximum, r.sumShiftedTimesExp)
    }

    /// Writes the log-prob gradient row by the vector kernel and returns true, or returns false
    /// when none applies. See LLMERA.logprobBackward.
    @inline(__always)
    static func logprobGradientRow<S: LogitStorage>(_ z: UnsafePointer<S>, count: Int, scale: Double, maximum: Double,
                                                    inverseSum: Double, gradScale: Double, label: Int,
                                                    out: UnsafeMutablePointer<S>) -> Bool {
        // A scale the float32 lanes do not take goes to the portable kernel, as its statistics did.
        guard enabled, float32LanesTake(scale: scale) else { return false }
        let raw = UnsafeRawPointer(z), rawOut = UnsafeMutableRawPointer(out)
        if S.self == Float.self {
            ERASIMD.logprobGradientRow(raw.assumingMemoryBound(to: Float.self), count: count, scale: scale,
                                       maximum: maximum, inverseSum: inverseSum, gradScale: gradScale, label: label,
                                       out: rawOut.assumingMemoryBound(to: Float.self))
            return true
        }
        if S.self == BFloat16.self {
            ERASIMD.logprobGradientRow(bfloat16: raw.assumingMemoryBound(to: UInt16.self), count: count, scale: scale,
                                       maximum: maximum, inverseSum: inverseSum, gradScale: gradScale, label: label,
                                       out: rawOut.assumingMemoryBound(to: UInt16.self))
            return true
        }
        return false
    }

    /// The start of the next block of 64 logits from `from` on that holds a value above
    /// `threshold` (ERASIMD.firstBlockAbove), -1 for a NaN in a block passed over, or nil when
    /// no vector kernel applies (disabled, or double storage). `threshold` is a logit of the
    /// same storage (or -inf), so its float32 value is exact.
    @inline(__always)
    static func firstBlockAbove<S: LogitStorage>(_ z: UnsafePointer<S>, count: Int, from: Int,
                                                 threshold: Double) -> Int? {
        guard enabled else { return nil }
        let raw = UnsafeRawPointer(z)
        if S.self == Float.self {
            return ERASIMD.firstBlockAbove(raw.assumingMemoryBound(to: Float.self), count: count, from: from,
                                           threshold: Float(threshold))
        }
        if S.self == BFloat16.self {
            return ERASIMD.firstBlockAbove(bfloat16: raw.assumingMemoryBound(to: UInt16.self), count: count,
                                           from: from, threshold: Float(threshold))
        }
        return nil
    }
}
