// Derivatives of the truncated-normal entropy (docs/math.md, "Truncated-normal entropy
// gradient") with respect to the location m and the log scale L = log(sd), built on the
// tail-stable pieces of Entropy.swift.
//
// With alpha = (lo - m)/sd, beta = (hi - m)/sd, Z = Phi(beta) - Phi(alpha), H = L + h(alpha, beta),
// a = phi(alpha)/Z, b = phi(beta)/Z and M = alpha*a - beta*b:
//   dh/dalpha = (a/2) * (M - 1 - alpha^2),   dh/dbeta = (b/2) * (1 + beta^2 - M)
//   dH/dm = -(dh/dalpha + dh/dbeta) / sd,    dH/dL = 1 - alpha*dh/dalpha - beta*dh/dbeta

/// dH/dm and dH/dL of one dimension of a sampled distribution (truncated normal, tanh-Gaussian):
/// the derivatives of its entropy with respect to the location (or mean) and the log scale.
public struct EntropyDerivative: Equatable, Sendable {
    public var loc: Double
    public var logStd: Double
}

extension Entropy {
    /// Gradient of the summed truncated-normal entropies: for each row r and dimension i,
    ///   gradLoc[r, i] = gradEntropy[r] * dH/dm,  gradLogStd[r, i] = gradEntropy[r] * dH/dL,
    /// computed in double. Throws .badParameter, writing nothing, when a value is not
    /// representable in T (dH/dm grows like 1/sd at a location on a bound). `gradLoc` may be
    /// `loc` and `gradLogStd` may be `logStd` (each value is read before it is overwritten).
    public static func truncatedNormalBackward<T: ERAReal>(rows: Int, dim: Int, loc: UnsafePointer<T>,
                                                           logStd: UnsafePointer<T>, lo: Double, hi: Double,
                                                           gradEntropy: UnsafePointer<T>,
                                                           gradLoc: UnsafeMutablePointer<T>,
                                                           gradLogStd: UnsafeMutablePointer<T>) throws(ERAError) {
        try entropyBackward(rows: rows, dim: dim, location: loc, logStd: logStd, gradEntropy: gradEntropy,
                            gradLocation: gradLoc, gradLogStd: gradLogStd, workPerDimension: 30) { m, l in
            truncatedNormalEntropyDerivative(loc: m, logStd: l, lo: lo, hi: hi)
        }
    }

    /// The gradient of a sum of per-dimension entropies H(m, L) (the truncated normal, the
    /// tanh-Gaussian): gradLocation[r, i] = gradEntropy[r] * dH/dm, gradLogStd[r, i] =
    /// gradEntropy[r] * dH/dL, computed in double into scratch; .badParameter, writing nothing,
    /// when a value is not representable in T. The outputs may be their inputs.
    static func entropyBackward<T: ERAReal>(rows: Int, dim: Int, location: UnsafePointer<T>, logStd: UnsafePointer<T>,
                                            gradEntropy: UnsafePointer<T>, gradLocation: UnsafeMutablePointer<T>,
                                            gradLogStd: UnsafeMutablePointer<T>, workPerDimension: Int,
                                            _ derivative: (Double, Double) -> EntropyDerivative) throws(ERAError) {
        let count = rows * dim
        let scratch = try Scratch(blocks: 2, perBlock: count)
        guard let values = scratch.base else { return }
        try forEachRowBlock(rows: rows, workPerRow: dim * workPerDimension) { range, _ in
            for row in range {
                let g = Double(gradEntropy[row])
                for i in row * dim..<(row + 1) * dim {
                    let d = derivative(Double(location[i]), Double(logStd[i]))
                    values[i] = g * d.loc
                    values[count + i] = g * d.logStd
                }
            }
        }
        for i in 0..<2 * count { guard T(values[i]).isFinite else { throw .badParameter } }
        for i in 0..<count {
            gradLocation[i] = T(values[i])
            gradLogStd[i] = T(values[count + i])
        }
    }

    /// dH/dm and dH/dL for N(m, exp(logStd)^2) truncated to [lo, hi], lo < hi; the regimes follow
    /// truncatedNormalEntropy's, each differentiated as that function evaluates it.
    public static func truncatedNormalEntropyDerivative(loc m: Double, logStd: Double, lo: Double,
                                                        hi: Double) -> EntropyDerivative {
        // Rescaling by a power of two (as the entropy does) leaves dH/dL and scales dH/dm.
        if !(hi - lo).isFinite || !(lo - m).isFinite || !(hi - m).isFinite || logStd > 700 {
            let shrink = 0x1p-64, log2 = Math.log(2.0)
            if lo * shrink != lo || hi * shrink != hi || m * shrink != m {
                var d = truncatedNormalEntropyDerivative(loc: m * shrink, logStd: logStd - 64 * log2,
                                                         lo: lo * shrink, hi: hi * shrink)
                d.loc *= shrink
                return d
            }
        }
        let logSpan = Math.log(0.5 * hi - 0.5 * lo) + Math.log(2.0)
        let logWidth = logSpan - logStd
        if logWidth < 0.5 * Math.log(2 * energyRange) {
            // A narrow interval (width^2/2 < energyRange): the moments of the energy, wherever
            // the location is, when the log-density changes by at most energyRange over it.
            let sd = Math.exp(logStd)
            let alpha = (lo - m) / sd, width = (hi - lo) / sd
            if energyRangeOf(alpha: alpha, width: width) <= energyRange {
                var d = energyDerivative(alpha: alpha, width: width)
                d.loc /= sd
                return d
            }
        }
        if logWidth < Math.log(1e-5) {
            // H = log(hi - lo) + g(x), x = |mid - m| * (hi - lo) / sd^2 (the truncated exponential).
            let sd = Math.exp(logStd)
            let offset = 0.5 * (lo + hi) - m
            let x = abs(offset / sd) * Math.exp(logWidth)
            let slope = exponentialEntropySlope(x)  // g'(x)
            let dxdm = (offset > 0 ? -1.0 : 1.0) * Math.exp(logSpan - 2 * logStd)
            return EntropyDerivative(loc: x == 0 ? 0 : slope * dxdm, logStd: -2 * x * slope)
        }
        let sd = Math.exp(logStd)
        let alpha = (lo - m) / sd, beta = (hi - m) / sd, width = (hi - lo) / sd
        if beta <= 0, alpha < 0 {
            // Mirror: h(alpha, beta) = h(-beta, -alpha).
            let s = standardPartials(alpha: -beta, beta: -alpha, width: width)
            return combine(dAlpha: -s.dBeta, dBeta: -s.dAlpha, alpha: alpha, beta: beta, sd: sd, twoLogStd: s.twoLogStd)
        }
        let s = standardPartials(alpha: alpha, beta: beta, width: width)
        return combine(dAlpha: s.dAlpha, dBeta: s.dBeta, alpha: alpha, beta: beta, sd: sd, twoLogStd: s.twoLogStd)
    }

    /// Partial derivatives of h(alpha, beta), the entropy of N(0,1) truncated to [alpha, beta],
    /// for alpha < 0 or 0 <= alpha < beta. Far in the tail (alpha > 1e8) h is the truncated
    /// exponential 1 - log(alpha) + q(alpha*width); there `twoLogStd` carries dH/dL and dH/dm
    /// directly (the partials would cancel), else it is nil.
    static func standardPartials(alpha: Double, beta: Double, width: Double)
        -> (dAlpha: Double, dBeta: Double, twoLogStd: EntropyDerivative?) {
        let invSqrt2 = 1 / 2.0.squareRoot()
        let invSqrt2Pi = 1 / (2 * Double.pi).squareRoot()
        if alpha < 0 {
            let z = 0.5 * (Math.erf(beta * invSqrt2) + Math.erf(-alpha * invSqrt2))
            let a = abs(alpha) > 40 ? 0 : Math.exp(-0.5 * alpha * alpha) * invSqrt2Pi / z
            let b = abs(beta) > 40 ? 0 : Math.exp(-0.5 * beta * beta) * invSqrt2Pi / z
            let moment = timesDensity(alpha) / z - timesDensity(beta) / z  // M
            let dAlpha = a == 0 ? 0 : 0.5 * a * (moment - 1 - alpha * alpha)
            let dBeta = b == 0 ? 0 : 0.5 * b * (1 + beta * beta - moment)
            return (dAlpha, dBeta, nil)
        }
        if alpha > 1e8 {
            // h = 1 - log(alpha) + q(x), x = alpha*width: dH/dL = 2 - 2x q'(x),
            // dH/dm = (1/alpha - width q'(x))/sd; returned with sd folded in by combine.
            let x = alpha * width
            let xq = exponentialEntropyTimesSlope(x)  // x q'(x)
            let logStdTerm = x < 1e-3 ? x * x / 6 - x * x * x * x / 120 : 2 - 2 * xq
            return (0, 0, EntropyDerivative(loc: 1 / alpha - xq / alpha, logStd: logStdTerm))
        }
        // 0 <= alpha < beta, as in truncatedStandardNormalEntropy: with the hazard
        // lambda = phi(alpha)/Phic(alpha), ratio = Phic(beta)/Phic(alpha), decay = phi(beta)/phi(alpha):
        //   a = lambda/(1 - ratio),  b = lambda*decay/(1 - ratio)
        //   M - 1 - alpha^2 = [(alpha*(lambda - alpha) - 1) + (1 + alpha^2)*ratio - beta*lambda*decay]/(1 - ratio)
        //   1 + beta^2 - M  = [width*(2 alpha + width) - (alpha*(lambda - alpha) - 1) - (1 + beta^2)*ratio
        //                      + beta*lambda*decay]/(1 - ratio)
        let scaledAlpha = scaledComplementaryError(alpha * invSqrt2)
        let scaledBeta = scaledComplementaryError(beta * invSqrt2)
        let exponent = -0.5 * width * (2 * alpha + width)
        let decay = Math.exp(exponent)
        let ratio = scaledBeta / scaledAlpha * decay
        let oneMinusRatio = -Math.expm1(Math.log(scaledBeta / scaledAlpha) + exponent)
        let hazard = 2 / ((2 * Double.pi).squareRoot() * scaledAlpha)
        let excess = alpha > 10 ? hazardExcessTimesArgumentMinusOne(alpha) : alpha * (hazard - alpha) - 1
        let betaTerm = ratio > 0 ? beta * hazard * decay : 0
        let betaSquaredRatio = ratio > 0 ? (1 + beta * beta) * ratio : 0
        let a = hazard / oneMinusRatio
        let b = hazard * decay / oneMinusRatio
        let dAlpha = 0.5 * a * (excess + (1 + alpha * alpha) * ratio - betaTerm) / oneMinusRatio
        let dBeta = b == 0 ? 0 : 0.5 * b * (width * (2 * alpha + width) - excess - betaSquaredRatio + betaTerm) / oneMinusRatio
        return (dAlpha, dBeta, nil)
    }

    /// dH/dm and dH/dL from the partials of h (or from the tail's direct values, divided by sd).
    @inline(__always)
    static func combine(dAlpha: Double, dBeta: Double, alpha: Double, beta: Double, sd: Double,
                        twoLogStd: EntropyDerivative?) -> EntropyDerivative {
        if var direct = twoLogStd {
            // Mirrored rows arrive here with alpha, beta of the original: the tail lies below
            // the location, and dH/dm changes sign.
            direct.loc = (beta <= 0 ? -direct.loc : direct.loc) / sd
            return direct
        }
        let alphaTerm = dAlpha == 0 ? 0 : alpha * dAlpha
        let betaTerm = dBeta == 0 ? 0 : beta * dBeta
        return EntropyDerivative(loc: -(dAlpha + dBeta) / sd, logStd: 1 - alphaTerm - betaTerm)
    }

    /// Where the log-density changes by at most this much over the interval (one tail cut,
    /// alpha > 1), the derivatives come from the moments of the energy (energyDerivative).
    static let energyRange = 40.0

    /// 64 Gauss-Legendre nodes: exact to double rounding for exp(-E) on [0, 1] with E's range
    /// up to energyRange.
    static let energyRule = GaussLegendreRule(count: 64)
    static let energyRule16 = GaussLegendreRule(count: 16)
    static let energyRule32 = GaussLegendreRule(count: 32)

    /// The range of E(u) = x u + y u^2/2 over [0, 1] (x = alpha*width, y = width^2): how much
    /// the log-density changes over the interval.
    static func energyRangeOf(alpha: Double, width: Double) -> Double {
        let x = alpha * width, y = width * width
        let end = x + 0.5 * y
        let inner = -x / y  // E's minimum, where it lies inside [0, 1]
        let lowest = inner > 0 && inner < 1 ? -0.5 * x * inner : min(0, end)
        return max(0, end) - lowest
    }

    /// dH/dL and sd * dH/dm without the cancellation of the partials of h (which cancel like
    /// 1/width^2 for narrow intervals and like alpha^2 far in a tail). On [alpha, beta] the
    /// standardised density is proportional to exp(-E(u)), u = (t - alpha)/width in [0, 1],
    /// E(u) = x u + y u^2/2 with x = alpha*width and y = width^2, and H = log(hi - lo) + g(x, y),
    /// g the entropy of u. Both x and y scale with sd^-2, and x moves with m alone, so
    ///   dH/dL = 2 Var(E)   and   dH/dm = (width/sd) Cov(u, E),
    /// moments of E computed by quadrature about their means. docs/math.md, "Truncated-normal
    /// entropy gradient".
    static func energyDerivative(alpha: Double, width: Double) -> EntropyDerivative {
        let x = alpha * width, y = width * width
        let rule = energyRule
        var lowest = Double.infinity
        for u in rule.nodes { lowest = min(lowest, x * u + 0.5 * y * u * u) }
        // The weights exp(lowest - E) once, then the central moments about their means.
        return withUnsafeTemporaryAllocation(of: Double.self, capacity: rule.nodes.count) { weights in
            var mass = 0.0, meanU = 0.0, meanE = 0.0
            for k in 0..<rule.nodes.count {
                let u = rule.nodes[k], e = x * u + 0.5 * y * u * u
                let p = rule.weights[k] * Math.exp(lowest - e)
                weights[k] = p
                mass += p
                meanU += p * u
                meanE += p * e
            }
            meanU /= mass
            meanE /= mass
            var varianceE = 0.0, covariance = 0.0
            for k in 0..<rule.nodes.count {
                let u = rule.nodes[k], e = x * u + 0.5 * y * u * u
                varianceE += weights[k] * (e - meanE) * (e - meanE)
                covariance += weights[k] * (u - meanU) * (e - meanE)
            }
            return EntropyDerivative(loc: width * covariance / mass, logStd: 2 * varianceE / mass)
        }
    }

    /// g(x, y), the entropy of u in [0, 1] with density proportional to exp(-E(u)),
    /// E(u) = x u + y u^2/2 (x = alpha*width, y = width^2): log of its normaliser plus the mean
    /// energy, log(integral exp(-E)) + E[E], by the energy's quadrature about its lowest node.
    /// The truncated-normal entropy is log(hi - lo) + g where the log-density changes by at most
    /// energyRange over the interval: the closed form's terms cancel there like alpha^2 / (1 - ratio)
    /// (5e-11 at alpha = 28, width = 0.0056), this has no cancellation.
    /// Gauss-Legendre's error for exp(-E) on [0, 1] with n nodes is about
    /// S^2n (n!)^4 / ((2n + 1) ((2n)!)^3) with S = |x| + y bounding |E'|: below 1e-20 for 16
    /// nodes up to S = 8 and for 32 up to S = 30, so the smaller rules serve the common
    /// intervals at a quarter or half the cost (checked against 50-digit arithmetic).
    static func energyEntropy(alpha: Double, width: Double) -> Double {
        let x = alpha * width, y = width * width
        let steep = abs(x) + y
        let rule = steep <= 8 ? energyRule16 : steep <= 30 ? energyRule32 : energyRule
        var lowest = Double.infinity
        for u in rule.nodes { lowest = min(lowest, x * u + 0.5 * y * u * u) }
        var mass = 0.0, meanE = 0.0
        for k in 0..<rule.nodes.count {
            let u = rule.nodes[k], e = x * u + 0.5 * y * u * u
            let p = rule.weights[k] * Math.exp(lowest - e)
            mass += p
            meanE += p * (e - lowest)
        }
        return Math.log(mass) + meanE / mass
    }

    /// alpha*(lambda(alpha) - alpha) - 1 for alpha >= 10 without cancellation: with
    /// lambda - alpha = 1/F, F = alpha + 2/G, G = alpha + 3/(alpha + 4/(...)) (the continued
    /// fraction of hazardMinusArgument), alpha/F - 1 = -(2/G)/F.
    static func hazardExcessTimesArgumentMinusOne(_ x: Double) -> Double {
        var fraction = x
        for k in stride(from: 80, through: 3, by: -1) {
            fraction = x + Double(k) / fraction
        }
        let outer = x + 2 / fraction
        return -(2 / fraction) / outer
    }

    /// g'(x) for g(x) = 1 - log x + log(1 - e^-x) - x e^-x/(1 - e^-x), the entropy of the unit
    /// truncated exponential of rate x less log of its width: g'(x) = -1/x + x e^x/(e^x - 1)^2.
    static func exponentialEntropySlope(_ x: Double) -> Double {
        if x < 1e-3 { return -x / 12 + x * x * x / 240 }
        return (exponentialEntropyTimesSlope(x) - 1) / x
    }

    /// x q'(x) = x^2 e^-x / (1 - e^-x)^2, q(x) = g(x) - 1 + log x.
    static func exponentialEntropyTimesSlope(_ x: Double) -> Double {
        if x < 1e-3 { return 1 - x * x / 12 + x * x * x * x / 240 }
        if x > 1400 { return 0 }
        let d = -Math.expm1(-x)
        return x * x * Math.exp(-x) / (d * d)
    }
}
