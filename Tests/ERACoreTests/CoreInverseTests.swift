// The inverse of h(p) = -p log p (math 2): logInverseEntropyTerm against an extended-precision
// bisection, its derivative, and the official closed-form approximation.
import XCTest
@testable import ERACore
#if canImport(Glibc)
import Glibc
#endif

/// Distance in units in the last place of `reference` (a double ulp at the reference's binade).
private func coreUlps(_ value: Double, _ reference: CoreWide) -> Double {
    let nearest = Double(reference)
    return Double(Swift.abs(CoreWide(value) - reference) / CoreWide(nearest.ulp))
}

final class CoreInverseTests: XCTestCase {
    /// y log-spaced over [1e-300, 1/e) plus a dense sweep towards the branch point.
    private func sampleYs() -> [Double] {
        var ys: [Double] = []
        let logLo = Glibc.log(1e-300), logHi = Glibc.log(1 / coreE)
        let n = 4000
        for i in 0..<n {
            let y = Glibc.exp(logLo + (logHi - logLo) * Double(i) / Double(n))
            if y < 1 / coreE { ys.append(y) }
        }
        // Just below 1/e: 1/e - 10^-k for k = 1...15, and the ten doubles right below 1/e - 1e-6.
        for k in 1...15 { ys.append(1 / coreE - Glibc.pow(10, -Double(k))) }
        var y = 1 / coreE - 1e-6
        for _ in 0..<10 { ys.append(y); y = y.nextDown }
        ys.append((1 / coreE).nextDown)
        ys.append(Double.leastNormalMagnitude)
        ys.append(Double.leastNonzeroMagnitude)
        ys.append(Glibc.log(4.0) / 4)  // up for tau = 4
        return ys
    }

    /// Forward error in ulps against the extended-precision bisection, and the backward error
    /// (the residual of the defining equation in log form).
    func testLogInverseAccuracyInUlps() {
        var worstUlp = 0.0, worstUlpY = 0.0
        var worstWellConditionedUlp = 0.0
        var worstScaledUlp = 0.0, worstScaledY = 0.0
        var worstResidual = 0.0, worstResidualY = 0.0
        for y in sampleYs() {
            let t = logInverseEntropyTerm(y)
            XCTAssertTrue(t.isFinite && t <= -1, "y = \(y): t = \(t)")
            let reference = coreLogInverseWide(y)
            let ulps = coreUlps(t, reference)
            if ulps > worstUlp { worstUlp = ulps; worstUlpY = y }
            // Condition number of t(y): |y t'(y) / t| = 1/|1 + t|. Away from the branch point
            // (t <= -2, i.e. y <= 2/e^2) it is <= 1 and the forward error must be a few ulp.
            let kappa = Double(1 / Swift.abs(1 + reference))
            if reference <= -2 { worstWellConditionedUlp = Swift.max(worstWellConditionedUlp, ulps) }
            // Everywhere: forward error within a few ulp times the condition number.
            let scaled = ulps / Swift.max(1, kappa)
            if scaled > worstScaledUlp { worstScaledUlp = scaled; worstScaledY = y }
            // Backward error: the residual t + log(-t) - log(y) of the returned t, evaluated in
            // extended precision, in units of eps*|t| (a double t cannot do better than half an
            // ulp of itself, i.e. a residual of about eps*|t|/2 * |1 + 1/t|).
            let wt = CoreWide(t)
            let residualWide = wt + coreWideLog(-wt) - coreWideLog(CoreWide(y))
            let residual = Double(Swift.abs(residualWide)) / (Double.ulpOfOne * Swift.abs(t))
            if residual > worstResidual { worstResidual = residual; worstResidualY = y }
        }
        print("logInverseEntropyTerm: max forward error \(worstUlp) ulp (at y = \(worstUlpY)); "
              + "max for y <= 2/e^2 (condition <= 1): \(worstWellConditionedUlp) ulp; "
              + "max forward error / condition number: \(worstScaledUlp) ulp (at y = \(worstScaledY)); "
              + "max residual |t + log(-t) - log y|: \(worstResidual) eps*|t| (at y = \(worstResidualY))")
        for y in [1 / coreE - 1e-3, 1 / coreE - 1e-6, 1 / coreE - 1e-9] {
            let reference = coreLogInverseWide(y)
            print("  y = 1/e - \(1 / coreE - y): forward error \(coreUlps(logInverseEntropyTerm(y), reference)) ulp, "
                  + "condition number \(Double(1 / Swift.abs(1 + reference)))")
        }
        XCTAssertLessThanOrEqual(worstWellConditionedUlp, 4, "forward error where the inverse is well conditioned")
        XCTAssertLessThanOrEqual(worstScaledUlp, 4, "forward error beyond 4 ulp x condition number")
        XCTAssertLessThanOrEqual(worstResidual, 4, "backward error beyond 4 eps")
    }

    /// The double-precision bisection reference agrees with the extended one (a check of the
    /// reference itself, which the discrete tests use).
    func testBisectionReferenceSelfConsistent() {
        for y in sampleYs() where y >= 1e-300 && y < 0.3 {
            let d = coreLogInverseBisect(y)
            XCTAssertLessThanOrEqual(coreUlps(d, coreLogInverseWide(y)), 4, "y = \(y)")
        }
    }

    /// Known values: h(1/tau) = log(tau)/tau, so t(log(tau)/tau) = -log(tau); t(y) = log y -
    /// log(-t) exactly; y -> 0 gives t -> -inf slowly.
    func testKnownValues() {
        for tau in [3.0, 4.0, 10.0, 100.0, 1e6] {
            let up = Glibc.log(tau) / tau
            XCTAssertEqual(logInverseEntropyTerm(up), -Glibc.log(tau), accuracy: 4 * Glibc.log(tau) * Double.ulpOfOne,
                           "tau = \(tau)")
        }
        // -(-2) e^-2 = 2/e^2.
        XCTAssertEqual(logInverseEntropyTerm(2 * Glibc.exp(-2.0)), -2, accuracy: 1e-14)
        let tiny = logInverseEntropyTerm(Double.leastNonzeroMagnitude)
        XCTAssertTrue(tiny.isFinite && tiny < -700)
    }

    /// dt/dy = t/(y(1+t)) = -1/(e^t (1+t)) against a central difference of the reference.
    func testDerivative() {
        for y in [1e-200, 1e-30, 1e-5, 0.01, 0.1, 0.2, 0.3, 0.35, 0.36] {
            let t = logInverseEntropyTerm(y)
            let derivative = logInverseEntropyTermDerivative(t: t, y: y)
            XCTAssertGreaterThan(derivative, 0)
            XCTAssertEqual(derivative, coreExactInverseDerivative(coreLogInverseBisect(y)),
                           accuracy: 1e-12 * Swift.abs(derivative), "y = \(y)")
            let h = 1e-6 * y
            let fd = Double(coreLogInverseWide(y + h) - coreLogInverseWide(y - h)) / (2 * h)
            XCTAssertEqual(derivative, fd, accuracy: 1e-7 * Swift.abs(derivative), "y = \(y)")
        }
    }

    /// The official closed form u = -1 - log y, t = -1 - sqrt(2u) - 0.75u, and its derivative.
    func testReferenceApproximation() {
        for y in [1e-300, 1e-100, 1e-10, 1e-3, 0.05, 0.2, 0.34657359027997264, 0.36] {
            let u = -1 - Glibc.log(y)
            let expected = -1 - Glibc.sqrt(2 * u) - 0.75 * u
            XCTAssertEqual(referenceLogInverseEntropyTerm(y), expected, accuracy: 1e-14 * Swift.abs(expected))
            let dExpected = (1 / Glibc.sqrt(2 * u) + 0.75) / y
            XCTAssertEqual(referenceLogInverseEntropyTermDerivative(y), dExpected, accuracy: 1e-14 * dExpected)
            let h = 1e-6 * y
            let fd = (coreReferenceInverse(y + h) - coreReferenceInverse(y - h)) / (2 * h)
            XCTAssertEqual(referenceLogInverseEntropyTermDerivative(y), fd, accuracy: 1e-6 * dExpected)
        }
        // It is an approximation: at tau = 4's cap it differs from the exact inverse.
        let up = Glibc.log(4.0) / 4
        XCTAssertGreaterThan(Swift.abs(referenceLogInverseEntropyTerm(up) - logInverseEntropyTerm(up)), 1e-3)
    }
}
