// The inverse of h(p) = -p*log(p) on its increasing branch 0 < p <= 1/e (math 2).
// h^-1(y) = exp(t) where t <= -1 solves -t*exp(t) = y, i.e. t = W_{-1}(-y).
// Everything here works on t = log h^-1(y) directly, which is what discrete ERA outputs.

/// t = log h^-1(y) for 0 < y < 1/e: residual at most 0.74 eps |t|, error at most 1.1 ulp
/// times the condition number 1/|1 + t| (docs/math.md, "The inverse").
///
/// Solves g(t) = t + log(-t) - log(y) = 0 (the logarithm of -t*exp(t) = y, well scaled for
/// every y down to the smallest subnormal) with Halley's method from a start that is already
/// close: the branch-point series near y = 1/e, the asymptotic expansion of W_{-1} elsewhere.
@inline(__always)
public func logInverseEntropyTerm(_ y: Double) -> Double {
    let logY = Math.log(y)
    var t: Double
    if y > 0.25 {
        // W_{-1}(-y) = -1 + q - q^2/3 + 11/72 q^3 + ..., q = -sqrt(2*(1 - e*y)).
        let q = -(2 * -Math.expm1(1 + logY)).squareRoot()
        t = -1 + q * (1 + q * (-1.0 / 3 + q * (11.0 / 72)))
    } else {
        // W_{-1}(x) = L1 - L2 + L2/L1 + ..., L1 = log(-x), L2 = log(-L1).
        let l2 = Math.log(-logY)
        t = logY - l2 + l2 / logY
    }
    // Halley: g' = 1 + 1/t, g'' = -1/t^2. Converges cubically; 2-3 steps from these starts.
    for _ in 0..<6 {
        let g = t + Math.log(-t) - logY
        let g1 = 1 + 1 / t
        let g2 = -1 / (t * t)
        let step = g / (g1 - g * g2 / (2 * g1))
        t -= step
        if abs(step) <= 4 * Double.ulpOfOne * abs(t) { break }
    }
    return min(t, -1)
}

/// dt/dy for t = log h^-1(y): differentiating -t*exp(t) = y gives
/// dt/dy = -1/(exp(t)*(1+t)) = t/(y*(1+t)) (math 2, "Gradient"), the second form free of
/// underflow for tiny y.
@inline(__always)
public func logInverseEntropyTermDerivative(t: Double, y: Double) -> Double {
    t / (y * (1 + t))
}

/// y * dt/dy = t/(1+t) for t = log h^-1(y): the derivative scaled by y, bounded for every
/// y (1 for tiny y, growing only as t nears the branch point -1). The backward pass works
/// with this form, because dt/dy alone overflows as y tends to 0 (math 2, "Gradient").
@inline(__always)
public func logInverseEntropyTermElasticity(t: Double) -> Double {
    t / (1 + t)
}

/// The official code's closed-form approximation of log h^-1(y) (math 2, mode "reference"):
/// u = -1 - log(y), t = -1 - sqrt(2u) - 0.75*u.
@inline(__always)
public func referenceLogInverseEntropyTerm(_ y: Double) -> Double {
    let u = -1 - Math.log(y)
    return -1 - (2 * u).squareRoot() - 0.75 * u
}

/// dt/dy of the reference approximation: (1/sqrt(2u) + 0.75)/y.
@inline(__always)
public func referenceLogInverseEntropyTermDerivative(_ y: Double) -> Double {
    let u = -1 - Math.log(y)
    return (1 / (2 * u).squareRoot() + 0.75) / y
}

/// y * dt/dy of the reference approximation: 1/sqrt(2u) + 0.75, bounded like the exact one.
@inline(__always)
public func referenceLogInverseEntropyTermElasticity(_ y: Double) -> Double {
    let u = -1 - Math.log(y)
    return 1 / (2 * u).squareRoot() + 0.75
}
