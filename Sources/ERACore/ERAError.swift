/// Why a call was refused. Every kernel of ERACore checks its arguments and scans its inputs
/// before it writes anything, so a thrown ERAError means no output was touched.
public enum ERAError: Error, Equatable, Sendable {
    /// A required pointer was missing.
    case nullPointer
    /// A size is negative, too small for the math, or its element count overflows.
    case badShape
    /// A parameter is NaN, infinite where it must be finite, out of its domain, or unknown.
    case badParameter
    /// The target entropy cannot be met with these settings (math 1 and 2, "feasible").
    case infeasibleTarget
    /// An input array holds NaN or an infinity.
    case nonFinite
    /// Scratch memory could not be allocated.
    case allocation
    /// A label or response id is out of range, or a label points at a masked (-inf) logit.
    case badIndex
    /// An output shares memory with an input or another output beyond the exact in-place use
    /// the function allows.
    case overlap
}
