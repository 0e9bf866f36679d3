// Derivatives of the tanh-Gaussian entropy (docs/math.md, "Tanh-Gaussian entropy gradient") with
// respect to the mean m and the log scale L = log(std), and the largest entropy one squashed
// dimension can have.
//
// With x = m + std*e, e ~ N(0, 1), and H = L + 0.5*log(2*pi*e) + E log(1 - tanh^2 x):
//   dH/dm = E[d/dx log(1 - tanh^2 x)] = -2 E tanh x
//   dH/dL = 1 + std E[e * (-2 tanh x)] = 1 - 2 std^2 E sech^2 x      (Stein: E[e f(x)] = std E f'(x))
// The expectations use the entropy's regimes (Entropy.tanhLogJacobianExpectation): 64-node
// Gauss-Hermite for std <= 0.5; above, the parts that do not decay in closed form
// (E sign x = erf(m / (std sqrt 2))) and the parts that decay like exp(-2|x|) -- tanh x - sign x
// and sech^2 x -- by Gauss-Legendre panels of width 1/2 on [0, 20] against the density folded
// at 0.

extension Entropy {
    /// dH/dm and dH/dL of the entropy of tanh(x), x ~ N(mean, exp(logStd)^2), in double.
    public static func tanhGaussianEntropyDerivative(mean: Double, logStd: Double,
                                                     rule: GaussHermiteRule = .standard) -> EntropyDerivative {
        let std = Math.exp(logStd)
        var meanTanh = 0.0, meanSech2 = 0.0
        if std <= 0.5 {
            for k in 0..<rule.nodes.count {
                let x = mean + std * rule.nodes[k]
                let e = Math.exp(-2 * abs(x)), q = 1 + e
                meanTanh += rule.weights[k] * (x < 0 ? -(1 - e) / q : (1 - e) / q)
                meanSech2 += rule.weights[k] * 4 * e / (q * q)
            }
        } else {
            let panel = GaussLegendreRule.standard
            let width = 0.5
            let norm = 1 / (std * (2 * Double.pi).squareRoot())
            var tail = 0.0
            for p in 0..<40 {
                for k in 0..<panel.nodes.count {
                    let x = (Double(p) + panel.nodes[k]) * width
                    let up = (x - mean) / std, down = (x + mean) / std
                    let above = norm * Math.exp(-0.5 * up * up), below = norm * Math.exp(-0.5 * down * down)
                    let e = Math.exp(-2 * x), q = 1 + e
                    // tanh x - 1 at x > 0 and tanh(-x) + 1 = 1 - tanh x at -x: -2e/q and +2e/q.
                    tail += panel.weights[k] * width * (-2 * e / q) * (above - below)
                    meanSech2 += panel.weights[k] * width * (4 * e / (q * q)) * (above + below)
                }
            }
            meanTanh = Math.erf(mean / (std * 2.0.squareRoot())) + tail
        }
        // 2 std^2 E sech^2 as 2 std (std E sech^2): E sech^2 falls like 1/std for wide Gaussians.
        return EntropyDerivative(loc: -2 * meanTanh, logStd: 1 - 2 * std * (std * meanSech2))
    }

    /// Gradient of the summed tanh-Gaussian entropies: for each row r and dimension i,
    ///   gradMean[r, i] = gradEntropy[r] * dH/dm,  gradLogStd[r, i] = gradEntropy[r] * dH/dL,
    /// computed in double. Throws .badParameter, writing nothing, when a value is not
    /// representable in T. `gradMean` may be `mean` and `gradLogStd` may be `logStd`.
    public static func tanhGaussianBackward<T: ERAReal>(rows: Int, dim: Int, mean: UnsafePointer<T>,
                                                        logStd: UnsafePointer<T>, gradEntropy: UnsafePointer<T>,
                                                        gradMean: UnsafeMutablePointer<T>,
                                                        gradLogStd: UnsafeMutablePointer<T>) throws(ERAError) {
        try entropyBackward(rows: rows, dim: dim, location: mean, logStd: logStd, gradEntropy: gradEntropy,
                            gradLocation: gradMean, gradLogStd: gradLogStd, workPerDimension: 400) { m, l in
            tanhGaussianEntropyDerivative(mean: m, logStd: l)
        }
    }

    /// The entropy of one squashed dimension, L + 0.5 log(2 pi e) + E log(1 - tanh^2 x).
    @inline(__always)
    public static func tanhGaussianEntropy(mean: Double, logStd: Double) -> Double {
        logStd + Math.gaussianEntropyPerDim + tanhLogJacobianExpectation(mean: mean, std: Math.exp(logStd))
    }

    /// The largest entropy of tanh(x), x ~ N(m, s^2), over all m and s: at m = 0 (the
    /// expectation of the concave, even log(1 - tanh^2) is largest there for every s), at the
    /// log scale where dH/dL = 0, found by bisection on the sign of dH/dL in [-1, 1]
    /// (0.6836356 nats at s = 0.8744).
    public static let tanhGaussianEntropySupremum: Double = {
        var a = -1.0, b = 1.0
        for _ in 0..<200 {
            let mid = 0.5 * (a + b)
            if mid <= a || mid >= b { break }
            if tanhGaussianEntropyDerivative(mean: 0, logStd: mid).logStd > 0 { a = mid } else { b = mid }
        }
        return max(tanhGaussianEntropy(mean: 0, logStd: a), tanhGaussianEntropy(mean: 0, logStd: b))
    }()
}
