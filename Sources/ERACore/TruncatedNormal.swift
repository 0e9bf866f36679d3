// The truncated normal as a policy distribution (math 6.2): sampling from caller-supplied
// uniforms, the reparameterisation gradient of the sample, the log-density and its gradient.
// Location loc and scale exp(log_std) per element, one interval [lo, hi] for the call.
//
// Tail strategy (docs/math.md, "Truncated-normal policy"). Every element is first reflected, if
// needed, so that its location lies at or below the midpoint of the interval (alpha + beta >= 0).
// Then either
//  - alpha >= 0: the interval sits in the upper tail. Everything is written with the survival
//    function Q(x) = 1 - Phi(x) = erfcx(x/sqrt2) exp(-x^2/2)/2 and offsets from the lower bound,
//    s = (x - lo)/sg, so that the exp(-alpha^2/2) common to Z, the density and the ratios
//    phi(.)/phi(xi) cancels exactly before anything is evaluated; or
//  - alpha < 0 < beta: the interval holds the mode, Z = (erf(beta/sqrt2) + erf(-alpha/sqrt2))/2
//    has no cancellation and the direct formulas are used, products of ratios in log space.

public enum TruncatedNormal {
    /// One element standardised, reflected so that alpha + beta >= 0.
    struct Frame {
        let mirrored: Bool
        let loc: Double, lo: Double, hi: Double  // in the reflected frame
        let logStd: Double, scale: Double
        let alpha: Double, beta: Double, width: Double  // (lo-loc)/sg, (hi-loc)/sg, (hi-lo)/sg

        /// nil when the scale or a standardised bound is not a positive finite double.
        init?(loc m: Double, logStd: Double, lo: Double, hi: Double) {
            mirrored = m > 0.5 * lo + 0.5 * hi
            (loc, self.lo, self.hi) = mirrored ? (-m, -hi, -lo) : (m, lo, hi)
            self.logStd = logStd
            scale = Math.exp(logStd)
            alpha = (self.lo - loc) / scale
            beta = (self.hi - loc) / scale
            width = (self.hi - self.lo) / scale
            guard scale > 0, scale.isFinite, alpha.isFinite, beta.isFinite, width > 0, width.isFinite else { return nil }
        }

        /// log Z, Z = Phi(beta) - Phi(alpha).
        var logMass: Double { StandardNormal.logMass(alpha, beta, gap: width) }
    }

    // MARK: one element

    /// The sample x with F(x) = u, F the truncated CDF; `v` is 1 - u, passed separately so
    /// that both tails keep their precision. Always inside [lo, hi].
    static func sample(_ f: Frame, u: Double, v: Double) -> Double {
        let (u, v) = f.mirrored ? (v, u) : (u, v)
        var x: Double
        if f.alpha >= 0 {
            // Q(alpha + s)/Q(alpha) = v + u e^D, D = log Q(beta) - log Q(alpha): solved for the
            // offset s in log space, log of the left side being h(s) below.
            let d = StandardNormal.logTailRatio(f.alpha, f.beta, gap: f.width)
            let target = logAddExp(Math.log(v), Math.log(u) + d)
            x = f.lo + f.scale * tailOffset(alpha: f.alpha, width: f.width, target: target)
        } else {
            let logZ = f.logMass
            let lower = logAddExp(StandardNormal.logCDF(f.alpha), Math.log(u) + logZ)  // log Phi(xi)
            let upper = logAddExp(StandardNormal.logCDF(-f.beta), Math.log(v) + logZ)  // log Q(xi)
            let xi = lower <= upper ? StandardNormal.quantile(logProbability: lower)
                : -StandardNormal.quantile(logProbability: upper)
            x = f.loc + f.scale * xi
        }
        x = min(max(x, f.lo), f.hi)
        return f.mirrored ? -x : x
    }

    /// The s in [0, width] with h(s) = log Q(alpha + s) - log Q(alpha) = target (alpha >= 0,
    /// D <= target <= 0), by Newton's method: h is concave and decreasing, h' = -lambda(alpha + s).
    static func tailOffset(alpha: Double, width: Double, target: Double) -> Double {
        var s: Double
        if alpha < 5 {
            let t = -StandardNormal.quantile(logProbability: StandardNormal.logCDF(-alpha) + target)
            s = t - alpha
        } else {
            s = -target / StandardNormal.hazard(alpha)  // the tangent at 0: to the right of the root
        }
        s = min(max(s, 0), width)
        for _ in 0..<60 {
            let h = StandardNormal.logTailRatio(alpha, alpha + s, gap: s)
            let step = (h - target) / StandardNormal.hazard(alpha + s)
            let next = min(max(s + step, 0), width)
            let moved = abs(next - s)
            s = next
            if !(moved > 2 * Double.ulpOfOne * s) { break }
        }
        return s
    }

    /// log p(x) and its derivatives with respect to x, loc and log_std; (-inf, 0, 0, 0) outside
    /// [lo, hi].
    static func logDensity(_ f: Frame, x rawX: Double) -> (value: Double, x: Double, loc: Double, logStd: Double) {
        let x = f.mirrored ? -rawX : rawX
        guard x >= f.lo, x <= f.hi else { return (-.infinity, 0, 0, 0) }
        let sg = f.scale, alpha = f.alpha, beta = f.beta, w = f.width
        let halfLog2Pi = StandardNormal.logSqrt2Pi
        var value: Double, dx: Double, dm: Double, dl: Double
        if alpha >= 0 {
            // log p = -s(alpha + s/2) - log sqrt(2 pi) - log sg - log(erfcx(alpha/sqrt2)/2) - log(1 - e^D)
            let s = (x - f.lo) / sg
            let d = StandardNormal.logTailRatio(alpha, beta, gap: w)
            value = -s * (alpha + 0.5 * s) - halfLog2Pi - f.logStd
                - Math.log(0.5 * Entropy.scaledComplementaryError(alpha * StandardNormal.invSqrt2)) - log1mExp(d)
            // phi(alpha)/Z = lambda_a (1 + E), phi(beta)/Z = lambda_b E, E = e^D/(1 - e^D),
            // with lambda = x + hz(x) so that the large parts cancel exactly.
            let e = d == -.infinity ? 0 : 1 / Math.expm1(-d)
            let hzA = StandardNormal.hazardExcess(alpha), hzB = StandardNormal.hazardExcess(beta)
            dx = -(alpha + s) / sg
            dm = (s - hzA + scaled(w - hzA + hzB, by: e)) / sg
            dl = s * (2 * alpha + s) - alpha * hzA - 1 - scaled(-w * (2 * alpha + w) + alpha * hzA - beta * hzB, by: e)
        } else {
            let xi = (x - f.loc) / sg
            let logZ = f.logMass
            value = -0.5 * xi * xi - halfLog2Pi - f.logStd - logZ
            // phi(alpha)/Z, and phi(beta) = phi(alpha) e^-c, c = (beta^2 - alpha^2)/2 >= 0.
            let ratioA = Math.exp(-0.5 * alpha * alpha - halfLog2Pi - logZ)
            let c = 0.5 * w * (alpha + beta)
            dx = -xi / sg
            dm = (xi + ratioA * Math.expm1(-c)) / sg
            dl = xi * xi - 1 + ratioA * (-alpha + beta * Math.exp(-c))  // -(alpha phi(a) - beta phi(b))/Z
        }
        return f.mirrored ? (value, -dx, -dm, dl) : (value, dx, dm, dl)
    }

    /// dx/dloc and dx/dlog_std of the reparameterised sample x = F^-1(u; loc, sg) at x in [lo, hi]
    /// (implicit differentiation of F(x) = u, math 6.2); nil outside [lo, hi].
    static func sampleDerivatives(_ f: Frame, x rawX: Double) -> (loc: Double, logStd: Double)? {
        let x = f.mirrored ? -rawX : rawX
        guard x >= f.lo, x <= f.hi else { return nil }
        let sg = f.scale, alpha = f.alpha, beta = f.beta, w = f.width
        let s = (x - f.lo) / sg, sHi = (f.hi - x) / sg
        var dm: Double, dsg: Double
        if alpha >= 0 {
            let xi = alpha + s
            let d = StandardNormal.logTailRatio(alpha, beta, gap: w)
            let dUpper = StandardNormal.logTailRatio(xi, beta, gap: sHi)  // log Q(beta)/Q(xi)
            let eUpper = Math.exp(dUpper), eAll = Math.exp(d)
            let hzA = StandardNormal.hazardExcess(alpha), hzB = StandardNormal.hazardExcess(beta)
            let hzX = StandardNormal.hazardExcess(xi)
            // 1 - [phi(a)(1-F) + phi(b)F]/phi(xi) = [(l_xi - l_a) + (l_a - l_b) e^Dxb + (l_b - l_xi) e^D] / (l_xi r),
            // and the same with K(x) = x lambda(x) for dx/dsg; l = lambda, r = 1 - e^D.
            let denominator = (xi + hzX) * -Math.expm1(d)
            let numeratorM = (s + hzX - hzA) - scaled(w + hzB - hzA, by: eUpper) + scaled(sHi + hzB - hzX, by: eAll)
            let numeratorS = (s * (2 * alpha + s) + xi * hzX - alpha * hzA)
                + scaled(-w * (2 * alpha + w) + alpha * hzA - beta * hzB, by: eUpper)
                + scaled(sHi * (2 * alpha + w + s) + beta * hzB - xi * hzX, by: eAll)
            dm = numeratorM / denominator
            dsg = numeratorS / denominator
        } else {
            let xi = (x - f.loc) / sg
            let logZ = f.logMass
            // phi(a)(1-F)/phi(xi) and phi(b)F/phi(xi), each as one exponential of a sum of logs.
            let logAbove = StandardNormal.logMass(xi, beta, gap: sHi) - logZ  // log(1 - F)
            let logBelow = StandardNormal.logMass(alpha, xi, gap: s) - logZ  // log F
            let lower = Math.exp(0.5 * s * (xi + alpha) + logAbove)
            let upper = Math.exp(-0.5 * sHi * (xi + beta) + logBelow)
            dm = 1 - lower - upper
            dsg = xi - alpha * lower - beta * upper
        }
        return f.mirrored ? (dm, -dsg * sg) : (dm, dsg * sg)
    }

    // MARK: kernels

    /// x[i] = loc[i] + sg[i] * Phi^-1(Phi(alpha) + u[i] Z) for `count` elements, each inside
    /// [lo, hi] (also after rounding to T). Throws .badParameter, writing nothing, if a uniform
    /// is outside (0, 1), an element's scale or standardised bounds are not finite and positive,
    /// or no T lies in [lo, hi].
    public static func sample<T: ERAReal>(count: Int, loc: UnsafePointer<T>, logStd: UnsafePointer<T>,
                                          lo: Double, hi: Double, uniform: UnsafePointer<T>,
                                          out: UnsafeMutablePointer<T>) throws(ERAError) {
        let (loT, hiT) = try representableInterval(T.self, lo: lo, hi: hi)
        try evaluate(count: count, outputs: [out], work: 200) { i, result in
            let u = Double(uniform[i])
            guard u > 0, u < 1, let f = Frame(loc: Double(loc[i]), logStd: Double(logStd[i]), lo: lo, hi: hi) else {
                return false
            }
            result[0] = sample(f, u: u, v: 1 - u)
            return true
        } store: { value in
            // Rounding to T may leave [lo, hi]: step back to the nearest T inside.
            min(max(T(value), loT), hiT)
        }
    }

    /// grad_loc = g dx/dloc, grad_log_std = g dx/dlog_std at the sample x (math 6.2).
    /// Throws .badParameter, writing nothing, if x is outside [lo, hi], an element's scale or
    /// standardised bounds are not finite and positive, or a gradient overflows T.
    public static func sampleBackward<T: ERAReal>(count: Int, loc: UnsafePointer<T>, logStd: UnsafePointer<T>,
                                                  lo: Double, hi: Double, sample x: UnsafePointer<T>,
                                                  gradSample: UnsafePointer<T>, gradLoc: UnsafeMutablePointer<T>,
                                                  gradLogStd: UnsafeMutablePointer<T>) throws(ERAError) {
        try evaluate(count: count, outputs: [gradLoc, gradLogStd], work: 80) { i, result in
            guard let f = Frame(loc: Double(loc[i]), logStd: Double(logStd[i]), lo: lo, hi: hi),
                  let d = sampleDerivatives(f, x: Double(x[i])) else { return false }
            let g = Double(gradSample[i])
            result[0] = g * d.loc
            result[1] = g * d.logStd
            return true
        } store: { T($0) }
    }

    /// log p(x) per element; -inf where x is outside [lo, hi]. Throws .badParameter, writing
    /// nothing, if an element's scale or standardised bounds are not finite and positive or a
    /// value is NaN or +inf.
    public static func logProb<T: ERAReal>(count: Int, loc: UnsafePointer<T>, logStd: UnsafePointer<T>,
                                           lo: Double, hi: Double, x: UnsafePointer<T>,
                                           out: UnsafeMutablePointer<T>) throws(ERAError) {
        try evaluate(count: count, outputs: [out], work: 40, allowNegativeInfinity: true) { i, result in
            guard let f = Frame(loc: Double(loc[i]), logStd: Double(logStd[i]), lo: lo, hi: hi) else { return false }
            result[0] = logDensity(f, x: Double(x[i])).value
            return true
        } store: { T($0) }
    }

    /// g times the derivatives of log p(x) with respect to x, loc and log_std; 0 where x is
    /// outside [lo, hi]. Errors as logProb, and .badParameter when a gradient overflows T.
    public static func logProbBackward<T: ERAReal>(count: Int, loc: UnsafePointer<T>, logStd: UnsafePointer<T>,
                                                   lo: Double, hi: Double, x: UnsafePointer<T>,
                                                   gradLogProb: UnsafePointer<T>, gradX: UnsafeMutablePointer<T>,
                                                   gradLoc: UnsafeMutablePointer<T>,
                                                   gradLogStd: UnsafeMutablePointer<T>) throws(ERAError) {
        try evaluate(count: count, outputs: [gradX, gradLoc, gradLogStd], work: 60) { i, result in
            guard let f = Frame(loc: Double(loc[i]), logStd: Double(logStd[i]), lo: lo, hi: hi) else { return false }
            let d = logDensity(f, x: Double(x[i]))
            let g = Double(gradLogProb[i])
            result[0] = g * d.x
            result[1] = g * d.loc
            result[2] = g * d.logStd
            return true
        } store: { T($0) }
    }

    /// The smallest and largest T in [lo, hi]; .badParameter when there is none.
    static func representableInterval<T: ERAReal>(_: T.Type, lo: Double, hi: Double) throws(ERAError) -> (T, T) {
        var loT = T(lo), hiT = T(hi)
        if Double(loT) < lo { loT = loT.nextUp }
        if Double(hiT) > hi { hiT = hiT.nextDown }
        guard loT <= hiT, loT.isFinite, hiT.isFinite else { throw .badParameter }
        return (loT, hiT)
    }

    /// Runs `element(i, result)` for every element into double scratch (outputs.count values
    /// each), then, if every element succeeded and every value is finite in T (or -inf where
    /// allowed), stores all of them; otherwise throws .badParameter having written nothing.
    static func evaluate<T: ERAReal>(count: Int, outputs: [UnsafeMutablePointer<T>], work: Int,
                                     allowNegativeInfinity: Bool = false,
                                     _ element: (Int, UnsafeMutablePointer<Double>) -> Bool,
                                     store: (Double) -> T) throws(ERAError) {
        let k = outputs.count
        let scratch = try Scratch(blocks: 1, perBlock: count * k)
        guard let values = scratch.base else { return }
        try forEachRowBlock(rows: count, workPerRow: work) { range, _ in
            for i in range where !element(i, values + i * k) {
                for j in 0..<k { values[i * k + j] = .nan }
            }
        }
        for i in 0..<count * k {
            let v = store(values[i])
            guard v.isFinite || (allowNegativeInfinity && v == -.infinity && !values[i].isNaN) else { throw .badParameter }
        }
        for i in 0..<count {
            for j in 0..<k { outputs[j][i] = store(values[i * k + j]) }
        }
    }
}

/// c * e, 0 when e is 0 (an underflowed tail weight) even if c overflowed.
@inline(__always)
func scaled(_ c: Double, by e: Double) -> Double {
    e == 0 ? 0 : c * e
}

/// log(e^a + e^b) without overflow; -inf when both are -inf.
@inline(__always)
func logAddExp(_ a: Double, _ b: Double) -> Double {
    let high = max(a, b), low = min(a, b)
    guard high > -.infinity else { return -.infinity }
    return high + Math.log1p(Math.exp(low - high))
}

/// log(1 - e^x) for x <= 0 (-inf at x = 0), accurate on both sides of -log 2.
@inline(__always)
func log1mExp(_ x: Double) -> Double {
    x > -0.6931471805599453 ? Math.log(-Math.expm1(x)) : Math.log1p(-Math.exp(x))
}

/// The standard normal in log space: log Phi, log Q = log(1 - Phi), log masses of intervals,
/// the hazard phi/Q, and the inverse of log Phi (math 6.2).
enum StandardNormal {
    static let logSqrt2Pi = 0.5 * Math.log(2 * Double.pi)
    static let invSqrt2 = 1 / 2.0.squareRoot()

    /// log Phi(t), accurate to a few ulp relative for every t (far lower tail from the continued
    /// fraction of erfc, upper half as log1p(-Q)).
    static func logCDF(_ t: Double) -> Double {
        if t > 0 { return Math.log1p(-0.5 * Math.erfc(t * invSqrt2)) }
        let y = -t * invSqrt2
        if y < 26 { return Math.log(0.5 * Math.erfc(y)) }
        return Math.log(0.5 * Entropy.scaledComplementaryError(y)) - 0.5 * t * t
    }

    /// The hazard lambda(x) = phi(x)/Q(x) = sqrt(2/pi)/erfcx(x/sqrt2), x >= 0.
    @inline(__always)
    static func hazard(_ x: Double) -> Double {
        (2 / Double.pi).squareRoot() / Entropy.scaledComplementaryError(x * invSqrt2)
    }

    /// lambda(x) - x, x >= 0, without cancellation (about 1/x far out).
    @inline(__always)
    static func hazardExcess(_ x: Double) -> Double {
        x > 10 ? Entropy.hazardMinusArgument(x) : hazard(x) - x
    }

    /// log Q(x2) - log Q(x1) for 0 <= x1 <= x2 = x1 + gap, gap given separately (it is computed
    /// from unstandardised values): log(erfcx(x2/sqrt2)/erfcx(x1/sqrt2)) - gap (2 x1 + gap)/2,
    /// the exp(-x^2/2) factors combined exactly.
    @inline(__always)
    static func logTailRatio(_ x1: Double, _ x2: Double, gap: Double) -> Double {
        guard gap > 0 else { return 0 }
        let ratio = Entropy.scaledComplementaryError(x2 * invSqrt2) / Entropy.scaledComplementaryError(x1 * invSqrt2)
        return Math.log(ratio) - 0.5 * gap * (2 * x1 + gap)
    }

    /// log(Phi(x2) - Phi(x1)) for x1 <= x2 = x1 + gap: a tail difference on the side away from
    /// the mass when the interval lies in one half, the sum of two erf otherwise.
    static func logMass(_ x1: Double, _ x2: Double, gap: Double) -> Double {
        if x1 >= 0 { return logCDF(-x1) + log1mExp(logTailRatio(x1, x2, gap: gap)) }
        if x2 <= 0 { return logCDF(x2) + log1mExp(logTailRatio(-x2, -x1, gap: gap)) }
        return Math.log(0.5 * (Math.erf(x2 * invSqrt2) + Math.erf(-x1 * invSqrt2)))
    }

    /// The t <= 0 with log Phi(t) = logProbability (<= log 1/2): Acklam's rational start
    /// (relative error about 1e-9; its tail branch takes log p, so p may underflow), then
    /// Newton's method on log Phi(t) - log p, whose derivative is the hazard lambda(-t).
    static func quantile(logProbability logP: Double) -> Double {
        var t: Double
        if logP < Math.log(0.02425) {
            let q = (-2 * logP).squareRoot()
            t = (((((-7.784894002430293e-03 * q - 3.223964580411365e-01) * q - 2.400758277161838e+00) * q
                - 2.549732539343734e+00) * q + 4.374664141464968e+00) * q + 2.938163982698783e+00)
                / ((((7.784695709041462e-03 * q + 3.224671290700398e-01) * q + 2.445134137142996e+00) * q
                    + 3.754408661907416e+00) * q + 1)
        } else {
            let q = Math.exp(logP) - 0.5, r = q * q
            t = (((((-3.969683028665376e+01 * r + 2.209460984245205e+02) * r - 2.759285104469687e+02) * r
                + 1.383577518672690e+02) * r - 3.066479806614716e+01) * r + 2.506628277459239e+00) * q
                / (((((-5.447609879822406e+01 * r + 1.615858368580409e+02) * r - 1.556989798598866e+02) * r
                    + 6.680131188771972e+01) * r - 1.328068155288572e+01) * r + 1)
        }
        t = min(t, 0)
        for _ in 0..<50 {
            let step = (logCDF(t) - logP) / hazard(-t)
            t = min(t - step, 0)
            if !(abs(step) > 2 * Double.ulpOfOne * abs(t)) { break }
        }
        return t
    }
}
