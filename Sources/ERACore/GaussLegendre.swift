// Gauss-Legendre quadrature on [0, 1], for the tail term of the tanh-Gaussian entropy
// (math 1, "Squashing", wide Gaussians).

/// Nodes and weights with sum_k w_k f(x_k) ~ integral_0^1 f(x) dx, exact for polynomials of
/// degree < 2n.
public struct GaussLegendreRule: Sendable {
    public let nodes: [Double]
    public let weights: [Double]

    /// The rule of `count` nodes: the roots of the Legendre polynomial P_n by Newton's method
    /// from cos(pi*(i + 3/4)/(n + 1/2)), then mapped from [-1, 1] to [0, 1].
    public init(count n: Int) {
        precondition(n >= 1)
        var nodes = [Double](repeating: 0, count: n)
        var weights = [Double](repeating: 0, count: n)
        for i in 0..<n {
            var x = Math.cos(Double.pi * (Double(i) + 0.75) / (Double(n) + 0.5))
            var derivative = 1.0
            for _ in 0..<100 {
                // P_j = ((2j-1) x P_{j-1} - (j-1) P_{j-2}) / j; P_n' = n (x P_n - P_{n-1}) / (x^2 - 1).
                var p1 = 1.0, p2 = 0.0
                for j in 1...n {
                    let p3 = p2
                    p2 = p1
                    p1 = ((2 * Double(j) - 1) * x * p2 - (Double(j) - 1) * p3) / Double(j)
                }
                derivative = Double(n) * (x * p1 - p2) / (x * x - 1)
                let step = p1 / derivative
                x -= step
                if abs(step) <= 1e-16 { break }
            }
            nodes[i] = 0.5 * (1 - x)
            weights[i] = 1 / ((1 - x * x) * derivative * derivative)  // 2/((1-x^2) P'^2), halved for [0, 1]
        }
        self.nodes = nodes
        self.weights = weights
    }

    /// The 16-node rule the tanh-Gaussian entropy uses on unit panels.
    public static let standard = GaussLegendreRule(count: 16)
}
