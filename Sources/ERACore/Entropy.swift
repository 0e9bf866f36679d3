// Entropies of the distributions ERA works with (math 1, 2 and 4). Each function reads rows of
// `dim` values and writes one entropy per row, in nats, computed in double precision.

public enum Entropy {
    /// Entropy of softmax(logits[r, :]) for each row.
    public static func softmax<T: ERAReal>(rows: Int, cols: Int, logits: UnsafePointer<T>,
                                           out: UnsafeMutablePointer<T>) throws(ERAError) {
        try forEachRowBlock(rows: rows, workPerRow: cols * 4) { range, _ in
            for row in range {
                out[row] = T(SoftmaxStatistics.entropy(logits + row * cols, count: cols))
            }
        }
    }

    /// Entropy of N(mu, diag(exp(log_std)^2)): sum_i log_std_i + dim*0.5*log(2*pi*e).
    public static func gaussian<T: ERAReal>(rows: Int, dim: Int, logStd: UnsafePointer<T>,
                                            out: UnsafeMutablePointer<T>) throws(ERAError) {
        try representableRows(rows: rows, workPerRow: dim, out: out) { row in
            gaussianRow(logStd + row * dim, dim: dim)
        }
    }

    @inline(__always)
    static func gaussianRow<T: ERAReal>(_ logStd: UnsafePointer<T>, dim: Int) -> Double {
        gaussianRowParts(logStd, dim: dim).value
    }

    /// The Gaussian entropy of a row, summed compensated: with log stds up to 1e4 in thousands
    /// of dimensions a plain sum loses up to about 1e-7 nats, far more than the float64 bound
    /// tolerance (1e-10); compensated, the error stays near one rounding of the result, and
    /// the unevaluated pair keeps what that rounding drops.
    @inline(__always)
    static func gaussianRowParts<T: ERAReal>(_ logStd: UnsafePointer<T>, dim: Int) -> CompensatedSum {
        var total = CompensatedSum()
        for i in 0..<dim { total.add(Double(logStd[i])) }
        total.add(Double(dim) * Math.gaussianEntropyPerDim)
        return total
    }

    /// Entropy of tanh(x), x ~ N(mean, diag(exp(log_std)^2)) (math 1, "Squashing"):
    /// the Gaussian entropy plus E log(1 - tanh^2(x)) per dimension by Gauss-Hermite quadrature.
    public static func tanhGaussian<T: ERAReal>(rows: Int, dim: Int, mean: UnsafePointer<T>,
                                                logStd: UnsafePointer<T>,
                                                out: UnsafeMutablePointer<T>) throws(ERAError) {
        let rule = GaussHermiteRule.standard
        try representableRows(rows: rows, workPerRow: dim * rule.nodes.count * 4, out: out) { row in
            tanhGaussianRow(mean: mean + row * dim, logStd: logStd + row * dim, dim: dim, rule: rule)
        }
    }

    static func tanhGaussianRow<T: ERAReal>(mean: UnsafePointer<T>, logStd: UnsafePointer<T>, dim: Int,
                                            rule: GaussHermiteRule) -> Double {
        var sum = gaussianRow(logStd, dim: dim)
        for i in 0..<dim {
            sum += tanhLogJacobianExpectation(mean: Double(mean[i]), std: Math.exp(Double(logStd[i])), rule: rule)
        }
        return sum
    }

    /// E_{e ~ N(0,1)} log(1 - tanh^2(x)), x = mean + std*e (math 1, "Squashing").
    ///
    /// For std <= 0.5 the integrand is smooth on the scale of the Gaussian and the 64-node
    /// Gauss-Hermite rule is accurate to rounding (about 1e-15). A wider Gaussian sees the corner of
    /// log(1 - tanh^2(x)) = 2*log 2 - 2|x| - 2*log1p(exp(-2|x|)) at x = 0 as sharp, so there the
    /// expectation is split: E|x| in closed form, and the term log1p(exp(-2|x|)), which decays
    /// like exp(-2|x|), integrated over x in [0, 20] against the folded density
    /// n(x) + n(-x) with Gauss-Legendre panels of width 1/2.
    public static func tanhLogJacobianExpectation(mean: Double, std: Double, rule: GaussHermiteRule = .standard) -> Double {
        let log2 = Math.log(2.0)
        if std <= 0.5 {
            var sum = 0.0
            for k in 0..<rule.nodes.count {
                let x = abs(mean + std * rule.nodes[k])
                sum += rule.weights[k] * 2 * (log2 - x - Math.log1p(Math.exp(-2 * x)))
            }
            return sum
        }
        let standardized = mean / std
        let meanAbs = std * (2 / Double.pi).squareRoot() * Math.exp(-0.5 * standardized * standardized)
            + mean * Math.erf(standardized / 2.0.squareRoot())
        let panel = GaussLegendreRule.standard
        let width = 0.5
        let norm = 1 / (std * (2 * Double.pi).squareRoot())
        var corner = 0.0
        for p in 0..<40 {
            for k in 0..<panel.nodes.count {
                let x = (Double(p) + panel.nodes[k]) * width
                let up = (x - mean) / std, down = (x + mean) / std
                let folded = norm * (Math.exp(-0.5 * up * up) + Math.exp(-0.5 * down * down))
                corner += panel.weights[k] * width * Math.log1p(Math.exp(-2 * x)) * folded
            }
        }
        return 2 * log2 - 2 * meanAbs - 2 * corner
    }

    /// Entropy of the normal with location loc and scale exp(log_std) truncated to [lo, hi],
    /// summed over the dimensions of each row (math 1, "Truncated normal"). Requires lo < hi.
    public static func truncatedNormal<T: ERAReal>(rows: Int, dim: Int, loc: UnsafePointer<T>,
                                                   logStd: UnsafePointer<T>, lo: Double, hi: Double,
                                                   out: UnsafeMutablePointer<T>) throws(ERAError) {
        try representableRows(rows: rows, workPerRow: dim * 20, out: out) { row in
            var sum = 0.0
            for i in 0..<dim {
                sum += truncatedNormalEntropy(loc: Double(loc[row * dim + i]), logStd: Double(logStd[row * dim + i]),
                                              lo: lo, hi: hi)
            }
            return sum
        }
    }

    /// Computes `entropy(row)` for every row into scratch, then writes all rows to `out`, or
    /// throws .badParameter and writes nothing when an entropy is not representable in T:
    /// inputs so extreme that it overflows (log_std = 1e308 gives a Gaussian entropy beyond
    /// the double range and a tanh-Gaussian one of -inf) or that no formula can evaluate.
    static func representableRows<T: ERAReal>(rows: Int, workPerRow: Int, out: UnsafeMutablePointer<T>,
                                              _ entropy: (Int) -> Double) throws(ERAError) {
        let scratch = try Scratch(blocks: 1, perBlock: rows)
        guard let entropies = scratch.base else { return }
        try forEachRowBlock(rows: rows, workPerRow: workPerRow) { range, _ in
            for row in range { entropies[row] = entropy(row) }
        }
        for row in 0..<rows { guard T(entropies[row]).isFinite else { throw .badParameter } }
        for row in 0..<rows { out[row] = T(entropies[row]) }
    }

    /// Entropy of N(loc, exp(logStd)^2) truncated to [lo, hi], lo < hi.
    ///
    /// An interval narrower than 1e-5 standard deviations (including a std so large that the
    /// standardised bounds coincide) sees the density as exp(-lambda*u), lambda the standardised
    /// distance of its midpoint, to within (width/sd)^2: the truncated exponential, whose
    /// entropy is log(hi - lo) + g(lambda*w), w = (hi - lo)/sd, with
    /// g(x) = 1 - log x + log(1 - e^-x) - x e^-x/(1 - e^-x) (-> -x^2/24 as x -> 0).
    static func truncatedNormalEntropy(loc m: Double, logStd: Double, lo: Double, hi: Double) -> Double {
        // Differences or the std that overflow (hi - lo = 2*DBL_MAX, std = e^710) are brought into
        // range by a power of two, which shifts the entropy by exactly its logarithm.
        if !(hi - lo).isFinite || !(lo - m).isFinite || !(hi - m).isFinite || logStd > 700 {
            let shrink = 0x1p-64, log2 = Math.log(2.0)
            if lo * shrink != lo || hi * shrink != hi || m * shrink != m {
                return 64 * log2 + truncatedNormalEntropy(loc: m * shrink, logStd: logStd - 64 * log2,
                                                          lo: lo * shrink, hi: hi * shrink)
            }
        }
        let logSpan = Math.log(0.5 * hi - 0.5 * lo) + Math.log(2.0)  // log(hi - lo), overflow-free
        let logWidth = logSpan - logStd  // log of the standardised width
        if logWidth < 0.5 * Math.log(2 * energyRange) && (m <= lo || m >= hi) {
            // A location outside the interval (one tail cut), where the log-density changes by at
            // most energyRange over it: the energy's quadrature (energyEntropy), as the gradient
            // does; the closed form below cancels there (5e-11 at alpha = 28, width = 0.0056).
            // Inside the interval the closed form is exact to a few ulps and cheaper.
            let sd = Math.exp(logStd)
            let alpha = (lo - m) / sd, width = (hi - lo) / sd
            if energyRangeOf(alpha: alpha, width: width) <= energyRange {
                return logSpan + energyEntropy(alpha: alpha, width: width)
            }
        }
        if logWidth < Math.log(1e-5) {
            let sd = Math.exp(logStd)
            let rate = abs((0.5 * (lo + hi) - m) / sd)
            let x = rate * Math.exp(logWidth)
            let g: Double
            if x < 1e-3 {
                g = -x * x / 24
            } else {
                let d = -Math.expm1(-x)
                g = 1 - Math.log(x) + Math.log(d) - (x > 700 ? 0 : x * (1 - d) / d)
            }
            return logSpan + g
        }
        let sd = Math.exp(logStd)
        return logStd + truncatedStandardNormalEntropy(alpha: (lo - m) / sd, beta: (hi - m) / sd, width: (hi - lo) / sd)
    }

    /// Entropy of N(0,1) truncated to [alpha, beta]; the entropy of the unstandardised variable
    /// adds log(scale). `width` is beta - alpha computed from the unstandardised bounds: far from
    /// the location, alpha and beta themselves can round to the same number (location 1e16,
    /// interval [-1, 1]), so every difference of the two is taken from `width`.
    ///   H = log(sqrt(2*pi*e) * Z) + (alpha*phi(alpha) - beta*phi(beta)) / (2Z)
    /// with Z and the ratios phi/Z computed from the scaled complementary error function, so that
    /// intervals far in a tail neither underflow nor cancel.
    static func truncatedStandardNormalEntropy(alpha: Double, beta: Double, width: Double) -> Double {
        if beta <= 0, alpha < 0 {
            // The distribution is the mirror image of the one on [-beta, -alpha].
            return truncatedStandardNormalEntropy(alpha: -beta, beta: -alpha, width: width)
        }
        let halfLog2PiE = Math.gaussianEntropyPerDim
        let invSqrt2 = 1 / 2.0.squareRoot()
        if alpha < 0 {
            // Both tails cut: Z = (erf(beta/sqrt2) + erf(-alpha/sqrt2)) / 2, no cancellation.
            let z = 0.5 * (Math.erf(beta * invSqrt2) + Math.erf(-alpha * invSqrt2))
            return halfLog2PiE + Math.log(z) + (timesDensity(alpha) - timesDensity(beta)) / (2 * z)
        }
        if alpha > 1e8 {
            // Far in the tail the density on [alpha, beta] is exp(-alpha*u) to within 1/alpha^2:
            // the truncated exponential of rate alpha on [0, beta - alpha].
            let x = alpha * width
            let d = -Math.expm1(-x)
            let edge = x > 700 ? 0 : x * (1 - d) / d
            return 1 - Math.log(alpha) + Math.log(d) - edge
        }
        // 0 <= alpha < beta: Z = Phic(alpha) * (1 - ratio), ratio = Phic(beta)/Phic(alpha),
        // Phic(x) = erfcx(x/sqrt2) * exp(-x^2/2) / 2, and with the hazard
        // lambda = phi(alpha)/Phic(alpha) = 2 / (sqrt(2*pi) * erfcx(alpha/sqrt2)):
        //   log Z = log(erfcx/2) - alpha^2/2 + log(1 - ratio)
        //   alpha*phi(alpha)/(2Z) = alpha*lambda / (2(1 - ratio))
        // Far out lambda ~ alpha, and the two alpha^2/2 cancel; they are combined exactly first:
        //   H = c + log(erfcx/2) + log(1 - ratio)
        //       + [alpha*(lambda - alpha) + alpha^2*ratio - beta*lambda*decay] / (2(1 - ratio))
        // with lambda - alpha from its own continued fraction beyond alpha = 10.
        let scaledAlpha = scaledComplementaryError(alpha * invSqrt2)
        let scaledBeta = scaledComplementaryError(beta * invSqrt2)
        let exponent = -0.5 * width * (2 * alpha + width)  // (alpha^2 - beta^2)/2
        let decay = Math.exp(exponent)
        let ratio = scaledBeta / scaledAlpha * decay
        let oneMinusRatio = -Math.expm1(Math.log(scaledBeta / scaledAlpha) + exponent)
        let hazard = 2 / ((2 * Double.pi).squareRoot() * scaledAlpha)
        let hazardExcess = alpha > 10 ? hazardMinusArgument(alpha) : hazard - alpha
        let betaTerm = ratio > 0 ? beta * hazard * decay : 0
        let bracket = alpha * hazardExcess + alpha * alpha * ratio - betaTerm
        return halfLog2PiE + Math.log(0.5 * scaledAlpha) + Math.log(oneMinusRatio) + 0.5 * bracket / oneMinusRatio
    }

    /// lambda(x) - x for the normal hazard lambda(x) = phi(x)/Phic(x), x >= 10, from the
    /// continued fraction Phic(x)/phi(x) = 1/(x + 1/(x + 2/(x + 3/(x + ...)))), which gives
    /// lambda(x) - x = 1/(x + 2/(x + 3/(x + ...))) without cancellation.
    static func hazardMinusArgument(_ x: Double) -> Double {
        var fraction = x
        for k in stride(from: 80, through: 2, by: -1) {
            fraction = x + Double(k) / fraction
        }
        return 1 / fraction
    }

    /// x * phi(x) for the standard normal density phi; 0 where it underflows (|x| > 40), so
    /// that an infinite x gives 0 rather than inf * 0.
    @inline(__always)
    static func timesDensity(_ x: Double) -> Double {
        abs(x) > 40 ? 0 : x * Math.exp(-0.5 * x * x) / (2 * Double.pi).squareRoot()
    }

    /// erfcx(x) = exp(x^2) * erfc(x) for x >= 0: directly below 26, where both factors are
    /// representable, and by its continued fraction above, where 40 terms are exact to rounding.
    /// x^2 is split exactly (x^2 = square + tail by a fused multiply-add) before the exponential:
    /// the rounding of x^2 alone would cost x^2 * 2^-53 relative (4e-14 at x = 20), which the
    /// truncated-normal entropy multiplies by alpha^2 far in a tail.
    static func scaledComplementaryError(_ x: Double) -> Double {
        if x < 26 {
            let square = x * x
            let tail = (-square).addingProduct(x, x)
            return Math.exp(square) * (1 + tail) * Math.erfc(x)
        }
        // erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))).
        var fraction = x
        for k in stride(from: 40, through: 1, by: -1) {
            fraction = x + (Double(k) / 2) / fraction
        }
        return 1 / (Double.pi.squareRoot() * fraction)
    }
}

/// A sum of doubles kept as an unevaluated pair `sum + compensation` (Neumaier's
/// compensated summation): `compensation` collects what each addition rounds away.
struct CompensatedSum {
    var sum = 0.0
    var compensation = 0.0

    @inline(__always)
    mutating func add(_ value: Double) {
        let next = sum + value
        compensation += abs(sum) >= abs(value) ? (sum - next) + value : (value - next) + sum
        sum = next
    }

    /// The sum, rounded once.
    var value: Double { sum + compensation }
}
