// Independent float64 references for the ERACore tests of math 1, 2 and 4 (continuous and
// discrete ERA, the entropies, the bound checks). Nothing here calls ERACore to compute an
// expected value: every formula is written out again, as plainly as possible, from the math
// (straight loops, bisection instead of Newton/Halley, composite Simpson instead of Gauss
// rules). Every internal name starts with `core` or `Core` so that it cannot clash with the
// helpers of the other test files of this module.
import XCTest
@testable import ERACore
#if canImport(Glibc)
import Glibc
#endif


// MARK: - Constants

/// 0.5*log(2*pi*e), the entropy of N(0, 1) per dimension.
let coreGaussianPerDim = 0.5 * (Glibc.log(2 * Double.pi) + 1)
/// e, as the double nearest to it.
let coreE = Glibc.exp(1.0)

// MARK: - Entropies

/// Entropy of softmax(z): -sum p_i log p_i with log p_i = (z_i - m) - log S, in one place
/// written differently from the kernels' log S - sum (z-m) e^(z-m) / S.
func coreSoftmaxEntropy(_ z: ArraySlice<Double>) -> Double {
    var m = -Double.infinity
    for v in z { m = Swift.max(m, v) }
    var s = CompensatedSum()
    for v in z { s.add(Glibc.exp(v - m)) }
    let logS = Glibc.log(s.value)
    var h = CompensatedSum()
    for v in z {
        let logP = (v - m) - logS
        let p = Glibc.exp(logP)
        if p > 0 { h.add(-p * logP) }
    }
    return h.value
}

func coreSoftmaxEntropy(_ z: [Double]) -> Double { coreSoftmaxEntropy(z[...]) }

/// softmax(z) in double.
func coreSoftmax(_ z: [Double]) -> [Double] {
    var m = -Double.infinity
    for v in z { m = Swift.max(m, v) }
    var s = CompensatedSum()
    for v in z { s.add(Glibc.exp(v - m)) }
    let total = s.value
    return z.map { Glibc.exp($0 - m) / total }
}

/// Entropy of a diagonal Gaussian with these log stds.
func coreGaussianEntropy(_ logStd: ArraySlice<Double>) -> Double {
    var s = CompensatedSum()
    for v in logStd { s.add(v) }
    s.add(Double(logStd.count) * coreGaussianPerDim)
    return s.value
}

// MARK: - Continuous ERA (math 1)

struct CoreContinuousParams {
    var h0: Double
    var delta: Double
    var logStdMin: Double
    var logStdMax: Double
    var dim: Int

    var k: Double { h0 + delta - Double(dim) * coreGaussianPerDim - Double(dim) * logStdMax }
}

/// logstd_i = max(log_std_max + K softmax(s)_i, log_std_min).
func coreContinuousForward(_ s: [Double], _ p: CoreContinuousParams) -> [Double] {
    let w = coreSoftmax(s)
    return w.map { Swift.max(p.logStdMax + p.k * $0, p.logStdMin) }
}

/// The VJP of math 1: dL/ds_j = K w_j (gt_j - sum gt_i w_i) and dL/dH0p = sum gt_i w_i.
func coreContinuousBackward(_ s: [Double], _ g: [Double], _ p: CoreContinuousParams) -> (grad: [Double], residual: Double) {
    let w = coreSoftmax(s)
    var gt = [Double](repeating: 0, count: s.count)
    var weighted = 0.0
    for i in 0..<s.count {
        let y = p.logStdMax + p.k * w[i]
        gt[i] = y > p.logStdMin ? g[i] : 0
        weighted += gt[i] * w[i]
    }
    var grad = [Double](repeating: 0, count: s.count)
    for j in 0..<s.count { grad[j] = p.k * w[j] * (gt[j] - weighted) }
    return (grad, weighted)
}

// MARK: - The inverse of h(p) = -p log p (math 2)

/// t = log h^-1(y), t <= -1, by plain bisection on f(t) = t + log(-t) - log(y), which is
/// increasing on t < -1 (f' = 1 + 1/t > 0); the log form keeps every y down to the smallest
/// subnormal in range. Bisects until the bracket is two adjacent doubles.
func coreLogInverseBisect(_ y: Double) -> Double {
    precondition(y > 0 && y < 1 / coreE)
    let logY = Glibc.log(y)
    var lo = 2 * logY - 20   // f(lo) < 0: lo + log(-lo) < logY for these lo
    var hi = -1.0            // f(-1) = -1 - log y > 0
    while true {
        let mid = 0.5 * (lo + hi)
        if mid <= lo || mid >= hi { break }
        if mid + Glibc.log(-mid) - logY < 0 { lo = mid } else { hi = mid }
    }
    // Of the two neighbours, the one with the smaller residual.
    let rl = Swift.abs(lo + Glibc.log(-lo) - logY), rh = Swift.abs(hi + Glibc.log(-hi) - logY)
    return rl < rh ? lo : hi
}

#if arch(x86_64) || arch(i386)
typealias CoreWide = Float80
@inline(__always) func coreWideLog(_ x: CoreWide) -> CoreWide { Glibc.logl(x) }
@inline(__always) func coreWideExp(_ x: CoreWide) -> CoreWide { Glibc.expl(x) }
#else
typealias CoreWide = Double
@inline(__always) func coreWideLog(_ x: CoreWide) -> CoreWide { Glibc.log(x) }
@inline(__always) func coreWideExp(_ x: CoreWide) -> CoreWide { Glibc.exp(x) }
#endif

/// The same bisection in extended precision (x87 80-bit, 64-bit significand, where the
/// platform has it): accurate to ~1e-19 relative away from the branch point, far below one
/// double ulp. Used to measure the kernel's inverse in ulps. Near the branch point y -> 1/e
/// the root is ill-conditioned (dt/dy ~ 1/(1+t)); the residual test covers that region.
func coreLogInverseWide(_ y: Double) -> CoreWide {
    let logY = coreWideLog(CoreWide(y))
    var lo = 2 * logY - 20
    var hi: CoreWide = -1
    while true {
        let mid = (lo + hi) / 2
        if mid <= lo || mid >= hi { break }
        if mid + coreWideLog(-mid) - logY < 0 { lo = mid } else { hi = mid }
    }
    return (lo + hi) / 2
}

/// The official closed-form approximation: u = -1 - log y, t = -1 - sqrt(2u) - 0.75u.
func coreReferenceInverse(_ y: Double) -> Double {
    let u = -1 - Glibc.log(y)
    return -1 - Glibc.sqrt(2 * u) - 0.75 * u
}

/// Its derivative dt/dy = (1/sqrt(2u) + 0.75)/y.
func coreReferenceInverseDerivative(_ y: Double) -> Double {
    let u = -1 - Glibc.log(y)
    return (1 / Glibc.sqrt(2 * u) + 0.75) / y
}

/// dt/dy of the exact inverse, in the form of the math: -1/(exp(t)*(1 + t)).
func coreExactInverseDerivative(_ t: Double) -> Double {
    -1 / (Glibc.exp(t) * (1 + t))
}

// MARK: - Discrete ERA (math 2)

enum CoreMode: Int32, CaseIterable {
    case exact = 0, tight = 1, reference = 2

    var name: String {
        switch self {
        case .exact: return "exact"
        case .tight: return "tight"
        case .reference: return "reference"
        }
    }
}

/// Entropy of the distribution proportional to (top, other x others).
func coreOneHotEntropy(top: Double, other: Double, others: Int) -> Double {
    let total = top + Double(others) * other
    var h = 0.0
    let qt = top / total
    h -= qt * Glibc.log(qt)
    if other > 0 {
        let qo = other / total
        h -= Double(others) * qo * Glibc.log(qo)
    }
    return h
}

/// The one-hot infimum of the output entropy for a given C, with the exact inverse by
/// bisection: the top class receives p' = 1/tau (y = up), the others h^-1((C - up)/(D - 1)).
func coreOneHotInfimum(c: Double, tau: Double, classes d: Int) -> Double {
    let up = Glibc.log(tau) / tau
    let b = (c - up) / Double(d - 1)
    let other = b > 0 ? Glibc.exp(coreLogInverseBisect(b)) : 0
    return coreOneHotEntropy(top: 1 / tau, other: other, others: d - 1)
}

/// C of mode tight, solved by bisection on C in (up, D*up) so that the one-hot infimum is H0.
func coreTightConstant(h0: Double, tau: Double, classes d: Int) -> Double {
    let up = Glibc.log(tau) / tau
    var lo = up, hi = Double(d) * up * (1 - 1e-15)
    while true {
        let mid = 0.5 * (lo + hi)
        if mid <= lo || mid >= hi { break }
        if coreOneHotInfimum(c: mid, tau: tau, classes: d) < h0 { lo = mid } else { hi = mid }
    }
    return hi
}

struct CoreDiscreteParams {
    let h0: Double
    let tau: Double
    let mode: CoreMode
    let classes: Int
    let up: Double
    let c: Double
    let a: Double
    let b: Double

    init(h0: Double, tau: Double, mode: CoreMode, classes: Int) {
        self.h0 = h0
        self.tau = tau
        self.mode = mode
        self.classes = classes
        up = Glibc.log(tau) / tau
        let d = Double(classes)
        switch mode {
        case .exact, .reference:
            c = Swift.min(Swift.max(Glibc.exp(h0 - 1), up), d * up)
        case .tight:
            c = coreTightConstant(h0: h0, tau: tau, classes: classes)
        }
        a = Swift.max(0, (d * up - c) / (d - 1))
        b = Swift.max(0, (c - up) / (d - 1))
    }

    /// The feasible target range of the mode (math 2).
    static func feasibleRange(mode: CoreMode, tau: Double, classes: Int) -> (Double, Double) {
        let up = Glibc.log(tau) / tau
        switch mode {
        case .exact, .reference: return (1 + Glibc.log(up), 1 + Glibc.log(Double(classes) * up))
        case .tight: return (0, Glibc.log(Double(classes)))
        }
    }
}

/// y values at or below the smallest normal double are treated as 0 ("clamped"): the output
/// is the (finite) inverse at that value and the derivative 0. This mirrors the library's
/// documented "finite output logits" convention for y = max(a p + b, 0) = 0.
let coreSmallestY = Double.leastNormalMagnitude

/// Output logits z'_i = log h^-1(max(a p_i + b, 0)) of one row.
func coreDiscreteForward(_ z: [Double], _ p: CoreDiscreteParams) -> [Double] {
    let probs = coreSoftmax(z)
    return probs.map { pi in
        let y = Swift.max(Swift.max(p.a * pi + p.b, 0), coreSmallestY)
        return p.mode == .reference ? coreReferenceInverse(y) : coreLogInverseBisect(y)
    }
}

/// The VJP of math 2: r_i = g_i dt/dy_i a, dL/dz_j = p_j (r_j - sum r_i p_i), evaluated as
/// p_j sum_{i != j} p_i (r_j - r_i) in Float80 (O(D^2), plainly): the same value without the
/// cancellation of r_j - sum r_i p_i when p_j is near 1.
func coreDiscreteBackward(_ z: [Double], _ g: [Double], _ p: CoreDiscreteParams) -> [Double] {
    let probs = coreSoftmax(z)
    let m = z.max()!
    let e = z.map { Float80(Glibc.expl(Float80($0 - m))) }
    let total = e.reduce(0, +)
    var r = [Float80](repeating: 0, count: z.count)
    for i in 0..<z.count {
        let y = p.a * probs[i] + p.b
        if y > coreSmallestY {
            let dtdy = p.mode == .reference ? coreReferenceInverseDerivative(y)
                                            : coreExactInverseDerivative(coreLogInverseBisect(y))
            r[i] = Float80(g[i]) * Float80(dtdy) * Float80(p.a)
        }
    }
    return (0..<z.count).map { j in
        var sum: Float80 = 0
        for i in 0..<z.count where i != j { sum += e[i] / total * (r[j] - r[i]) }
        return Double(e[j] / total * sum)
    }
}

// MARK: - Squashing (math 1)

/// log(1 - tanh^2(x)) in the stable form 2*(log 2 - |x| - log1p(exp(-2|x|))).
@inline(__always)
func coreLogSech2(_ x: Double) -> Double {
    let ax = Swift.abs(x)
    return 2 * (Glibc.log(2.0) - ax - Glibc.log1p(Glibc.exp(-2 * ax)))
}

/// E_{e~N(0,1)} log(1 - tanh^2(mu + std*e)) by composite Simpson on e in [-12, 12] with
/// `intervals` (even) subintervals. The integrand is analytic (log sech^2), so Simpson
/// converges like h^4; the truncated tails weigh < 1e-31.
func coreTanhPenaltySimpson(mu: Double, std: Double, intervals n: Int = 120_000) -> Double {
    let a = -12.0, b = 12.0
    let h = (b - a) / Double(n)
    let norm = 1 / Glibc.sqrt(2 * Double.pi)
    var sum = CompensatedSum()
    for i in 0...n {
        let e = a + Double(i) * h
        let f = norm * Glibc.exp(-0.5 * e * e) * coreLogSech2(mu + std * e)
        let weight: Double = (i == 0 || i == n) ? 1 : (i % 2 == 1 ? 4 : 2)
        sum.add(weight * f)
    }
    return sum.value * h / 3
}

// MARK: - Truncated normal (math 1)

/// Entropy of N(0,1) truncated to [alpha, beta] by direct integration of -g log g.
/// With u0 the point of [alpha, beta] nearest 0 and w(u) = exp(-(u^2 - u0^2)/2) <= 1,
/// g = w / Z' with Z' = integral of w, so -log g = (u^2 - u0^2)/2 + log Z' exactly, and
/// H = log Z' + E_g[(u^2 - u0^2)/2]. This keeps far-tail intervals (alpha = 1e3, where Z
/// underflows) in range. The integration variable is the offset v = u - u0 (so that a tail at
/// u0 = 1e9, where neighbouring doubles are 1e-7 apart, is still resolved), with
/// (u^2 - u0^2)/2 = v (v + 2 u0)/2, and composite Simpson on [alpha, beta] - u0 cut to where
/// w > e^-60 (w decays at least like exp(-|u0| |v|) and like exp(-v^2/2)).
func coreTruncatedStandardEntropy(alpha: Double, beta: Double, intervals n: Int = 40_000) -> Double {
    precondition(alpha < beta)
    let u0 = Swift.min(Swift.max(0, alpha), beta)
    let reach = Swift.min(12.0, 60 / Swift.max(Swift.abs(u0), 1e-300))
    let lo = Swift.max(alpha - u0, -reach)
    let hi = Swift.min(beta - u0, reach)
    let h = (hi - lo) / Double(n)
    var z = CompensatedSum(), m = CompensatedSum()
    for i in 0...n {
        let v = lo + Double(i) * h
        let q = 0.5 * v * (v + 2 * u0)
        let w = Glibc.exp(-q)
        let weight: Double = (i == 0 || i == n) ? 1 : (i % 2 == 1 ? 4 : 2)
        z.add(weight * w)
        m.add(weight * w * q)
    }
    let zPrime = z.value * h / 3
    let meanQ = (m.value * h / 3) / zPrime
    return Glibc.log(zPrime) + meanQ
}

/// The closed form of math 1 (H = log(sqrt(2 pi e) Z) + (alpha phi(alpha) - beta phi(beta))/(2Z)),
/// with Z = Phi(beta) - Phi(alpha) from erfc; only for intervals where that is well conditioned
/// (|alpha|, |beta| <= 6, Z not tiny).
func coreTruncatedStandardEntropyClosed(alpha: Double, beta: Double) -> Double {
    func phi(_ x: Double) -> Double { Glibc.exp(-0.5 * x * x) / Glibc.sqrt(2 * Double.pi) }
    func cdf(_ x: Double) -> Double { 0.5 * Glibc.erfc(-x / Glibc.sqrt(2.0)) }
    let z = cdf(beta) - cdf(alpha)
    return Glibc.log(Glibc.sqrt(2 * Double.pi * coreE) * z) + (alpha * phi(alpha) - beta * phi(beta)) / (2 * z)
}

// MARK: - Calling the kernels on arrays

/// Runs a throwing call and returns its error (nil on success).
func coreCapture(_ body: () throws(ERAError) -> Void) -> ERAError? {
    do {
        try body()
        return nil
    } catch {
        return error
    }
}

/// Float or Double, for writing each test once.
protocol CoreKernelReal: ERAReal {
    static var label: String { get }
    /// The bound tolerance of math 5.
    static var boundTolerance: Double { get }
}

extension Float: CoreKernelReal {
    static var label: String { "Float" }
    static var boundTolerance: Double { 1e-5 }
}

extension Double: CoreKernelReal {
    static var label: String { "Double" }
    static var boundTolerance: Double { 1e-10 }
}

func coreDiscreteForward<T: CoreKernelReal>(_ era: DiscreteERA, rows: Int, _ input: [T]) throws -> [T] {
    var out = [T](repeating: .nan, count: input.count)
    try input.withUnsafeBufferPointer { ip in
        try out.withUnsafeMutableBufferPointer { op in
            if T.self == Float.self {
                try era.forward(rows: rows, input: UnsafeRawPointer(ip.baseAddress!).assumingMemoryBound(to: Float.self),
                                output: UnsafeMutableRawPointer(op.baseAddress!).assumingMemoryBound(to: Float.self))
            } else {
                try era.forward(rows: rows, input: UnsafeRawPointer(ip.baseAddress!).assumingMemoryBound(to: Double.self),
                                output: UnsafeMutableRawPointer(op.baseAddress!).assumingMemoryBound(to: Double.self))
            }
        }
    }
    return out
}

func coreDiscreteBackward<T: CoreKernelReal>(_ era: DiscreteERA, rows: Int, _ input: [T], _ grad: [T]) throws -> [T] {
    var out = [T](repeating: .nan, count: input.count)
    try input.withUnsafeBufferPointer { ip in
        try grad.withUnsafeBufferPointer { gp in
            try out.withUnsafeMutableBufferPointer { op in
                if T.self == Float.self {
                    try era.backward(rows: rows, input: UnsafeRawPointer(ip.baseAddress!).assumingMemoryBound(to: Float.self),
                                     gradOutput: UnsafeRawPointer(gp.baseAddress!).assumingMemoryBound(to: Float.self),
                                     gradInput: UnsafeMutableRawPointer(op.baseAddress!).assumingMemoryBound(to: Float.self))
                } else {
                    try era.backward(rows: rows, input: UnsafeRawPointer(ip.baseAddress!).assumingMemoryBound(to: Double.self),
                                     gradOutput: UnsafeRawPointer(gp.baseAddress!).assumingMemoryBound(to: Double.self),
                                     gradInput: UnsafeMutableRawPointer(op.baseAddress!).assumingMemoryBound(to: Double.self))
                }
            }
        }
    }
    return out
}

func coreContinuousForward<T: CoreKernelReal>(_ era: ContinuousERA, rows: Int, _ input: [T]) throws -> [T] {
    var out = [T](repeating: .nan, count: input.count)
    try input.withUnsafeBufferPointer { ip in
        try out.withUnsafeMutableBufferPointer { op in
            if T.self == Float.self {
                try era.forward(rows: rows, input: UnsafeRawPointer(ip.baseAddress!).assumingMemoryBound(to: Float.self),
                                output: UnsafeMutableRawPointer(op.baseAddress!).assumingMemoryBound(to: Float.self))
            } else {
                try era.forward(rows: rows, input: UnsafeRawPointer(ip.baseAddress!).assumingMemoryBound(to: Double.self),
                                output: UnsafeMutableRawPointer(op.baseAddress!).assumingMemoryBound(to: Double.self))
            }
        }
    }
    return out
}

func coreContinuousBackward<T: CoreKernelReal>(_ era: ContinuousERA, rows: Int, _ input: [T], _ grad: [T],
                                               withResidual: Bool = true) throws -> (grad: [T], residual: [T]) {
    var out = [T](repeating: .nan, count: input.count)
    var residual = [T](repeating: .nan, count: rows)
    try input.withUnsafeBufferPointer { ip in
        try grad.withUnsafeBufferPointer { gp in
            try out.withUnsafeMutableBufferPointer { op in
                try residual.withUnsafeMutableBufferPointer { rp in
                    if T.self == Float.self {
                        try era.backward(rows: rows, input: UnsafeRawPointer(ip.baseAddress!).assumingMemoryBound(to: Float.self),
                                         gradOutput: UnsafeRawPointer(gp.baseAddress!).assumingMemoryBound(to: Float.self),
                                         gradInput: UnsafeMutableRawPointer(op.baseAddress!).assumingMemoryBound(to: Float.self),
                                         gradResidual: withResidual
                                            ? UnsafeMutableRawPointer(rp.baseAddress!).assumingMemoryBound(to: Float.self) : nil)
                    } else {
                        try era.backward(rows: rows, input: UnsafeRawPointer(ip.baseAddress!).assumingMemoryBound(to: Double.self),
                                         gradOutput: UnsafeRawPointer(gp.baseAddress!).assumingMemoryBound(to: Double.self),
                                         gradInput: UnsafeMutableRawPointer(op.baseAddress!).assumingMemoryBound(to: Double.self),
                                         gradResidual: withResidual
                                            ? UnsafeMutableRawPointer(rp.baseAddress!).assumingMemoryBound(to: Double.self) : nil)
                    }
                }
            }
        }
    }
    return (out, residual)
}

/// Row r of a rows x cols array, in double.
func coreRow<T: BinaryFloatingPoint>(_ values: [T], _ r: Int, _ cols: Int) -> [Double] {
    values[(r * cols)..<((r + 1) * cols)].map { Double($0) }
}

/// |a - b| / max(|b|, floor): a relative error that does not explode at 0.
func coreRelativeError(_ a: Double, _ b: Double, floor: Double = 1e-300) -> Double {
    if a == b { return 0 }
    return Swift.abs(a - b) / Swift.max(Swift.abs(b), floor)
}
