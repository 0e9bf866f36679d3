// Gauss-Hermite quadrature for expectations under N(0, 1) (math 1, "Squashing").

/// Nodes x_k and weights w_k with sum_k w_k f(x_k) ~ E_{e ~ N(0,1)} f(e), exact for
/// polynomials of degree < 2n: the probabilists' rule, weights summing to 1.
public struct GaussHermiteRule: Sendable {
    public let nodes: [Double]
    public let weights: [Double]

    /// The rule of `count` nodes. The roots of the physicists' Hermite polynomial H_n are found
    /// by Newton's method on the orthonormal recurrence (no overflow for large n), from the
    /// usual asymptotic starting values, largest root first; then x -> sqrt(2) x and
    /// w -> w / sqrt(pi) turn the weight exp(-x^2) into the standard normal density.
    public init(count n: Int) {
        precondition(n >= 2)
        var nodes = [Double](repeating: 0, count: n)
        var weights = [Double](repeating: 0, count: n)
        let quarterRootPi = 1 / Double.pi.squareRoot().squareRoot()  // pi^(-1/4)
        var z = 0.0
        for i in 0..<(n + 1) / 2 {
            let nd = Double(n)
            switch i {
            case 0: z = (2 * nd + 1).squareRoot() - 1.85575 * Math.exp(-Math.log(2 * nd + 1) / 6)
            case 1: z -= 1.14 * Math.exp(0.426 * Math.log(nd)) / z
            case 2: z = 1.86 * z - 0.86 * nodes[0]
            case 3: z = 1.91 * z - 0.91 * nodes[1]
            default: z = 2 * z - nodes[i - 2]
            }
            var derivative = 0.0
            for _ in 0..<100 {
                // Orthonormal Hermite functions: p_j = z*sqrt(2/j)*p_{j-1} - sqrt((j-1)/j)*p_{j-2}.
                var p1 = quarterRootPi, p2 = 0.0
                for j in 1...n {
                    let p3 = p2
                    p2 = p1
                    p1 = z * (2.0 / Double(j)).squareRoot() * p2 - (Double(j - 1) / Double(j)).squareRoot() * p3
                }
                derivative = (2 * nd).squareRoot() * p2
                let step = p1 / derivative
                z -= step
                if abs(step) <= 1e-15 * max(1, abs(z)) { break }
            }
            nodes[i] = z
            nodes[n - 1 - i] = -z
            let w = 2 / (derivative * derivative)
            weights[i] = w
            weights[n - 1 - i] = w
        }
        let sqrt2 = 2.0.squareRoot()
        let sqrtPi = Double.pi.squareRoot()
        self.nodes = nodes.map { $0 * sqrt2 }
        self.weights = weights.map { $0 / sqrtPi }
    }

    /// The 64-node rule the tanh-Gaussian entropy uses.
    public static let standard = GaussHermiteRule(count: 64)
}
