// Continuous ERA with a floor on the entropy of the tanh-squashed policy a = tanh(x),
// x ~ N(mean, exp(log_std)^2) (docs/math.md, "The sampled floor, tanh"; spec 1, "Beyond the
// paper", and 6.3).
//
//   l(c)_i = max(log_std_max + (K + c) softmax(s)_i, log_std_min)   the continuous ERA output
//            for the row target H0 + delta + c (K + c <= 0); l(0) is the continuous output
//   f(c)   = sum_i H_tanh(mean_i, l(c)_i) - (H0 + delta)
//   c      = 0 where f(0) >= 0, else the root of f nearest 0 on the side where f rises
//
// Each log std moves with c (by its softmax weight), so the row's stds stay within the bounds
// and grow or shrink together. A uniform offset on the log stds instead (as the truncated
// floor uses) cannot lift rows whose stds are spread: raising the smallest pushes the largest
// past the squashed entropy's peak, and with the official settings most rows have no such
// offset at all (docs/math.md). The squashed entropy is concave in each log std with one peak,
// and f is concave in c between the clipping points, so f rises to one peak from where c
// starts: the root is found on that rising branch, and a row whose peak lies below the
// target, or whose stds all reach log_std_max first, has none.

/// The tanh sampled-floor activation: a validated continuous ERA whose target the policy's
/// squashed entropy must reach.
public struct TanhFloorERA: SampledFloorActivation {
    public let gaussian: ContinuousERA

    /// Throws .infeasibleTarget unless H0 + delta < D times the largest squashed entropy of one
    /// dimension (Entropy.tanhGaussianEntropySupremum, at mean 0 and std 0.8744).
    /// Throws .badParameter when log_std_max > 709.78 (a std of exp(log_std_max) overflows double,
    /// so the squashed entropy of a row at the bound is not a double), then .infeasibleTarget
    /// unless H0 + delta < D times the largest squashed entropy of one dimension.
    public init(gaussian: ContinuousERA) throws(ERAError) {
        guard Math.exp(gaussian.logStdMax).isFinite else { throw .badParameter }
        guard gaussian.guaranteedFloor < Double(gaussian.dim) * Entropy.tanhGaussianEntropySupremum else {
            throw .infeasibleTarget
        }
        self.gaussian = gaussian
    }

    /// H0 + delta: the squashed entropy every output row reaches.
    public var target: Double { gaussian.guaranteedFloor }

    var workPerRow: Int { gaussian.dim * 400 * 40 }

    /// One row being solved: its softmax weights, its continuous output l(0), and a buffer for
    /// the log stds l(c) as stored in T.
    struct Row<T: ERAReal> {
        let era: TanhFloorERA
        let mean: UnsafePointer<T>
        let base: UnsafePointer<T>
        let weights: UnsafeMutablePointer<Double>
        let trial: UnsafeMutablePointer<Double>

        init(era: TanhFloorERA, stdLogits: UnsafePointer<T>, mean: UnsafePointer<T>, base: UnsafePointer<T>,
             scratch: UnsafeMutablePointer<Double>) {
            self.era = era
            self.mean = mean
            self.base = base
            weights = scratch
            trial = scratch + era.gaussian.dim
            let stats = SoftmaxStatistics(stdLogits, count: era.gaussian.dim)
            for i in 0..<era.gaussian.dim { weights[i] = stats.probability(Double(stdLogits[i])) }
        }

        /// log_std_max + (K + c) w_i before clipping.
        @inline(__always)
        func unclipped(_ i: Int, _ c: Double) -> Double {
            era.gaussian.logStdMax + (era.gaussian.scale + c) * weights[i]
        }

        /// The stored log std l(c)_i: the continuous output itself at c = 0.
        @inline(__always)
        func logStd(_ i: Int, _ c: Double) -> T {
            c == 0 ? base[i] : era.gaussian.roundedUp(max(unclipped(i, c), era.gaussian.logStdMin))
        }

        /// Whether l(c)_i moves with c (above log_std_min).
        @inline(__always)
        func moves(_ i: Int, _ c: Double) -> Bool { unclipped(i, c) > era.gaussian.logStdMin }

        /// f(c), evaluated at the stored log stds.
        func shortfall(_ c: Double) -> Double {
            var total = CompensatedSum()
            for i in 0..<era.gaussian.dim {
                trial[i] = Double(logStd(i, c))
                total.add(Entropy.tanhGaussianEntropy(mean: Double(mean[i]), logStd: trial[i]))
            }
            return (total.sum - era.target) + total.compensation
        }

        /// f'(c) = sum_i dH_i/dlog_std * w_i over the entries that move.
        func slope(_ c: Double) -> Double {
            var sum = 0.0
            for i in 0..<era.gaussian.dim where moves(i, c) {
                sum += Entropy.tanhGaussianEntropyDerivative(mean: Double(mean[i]), logStd: Double(logStd(i, c))).logStd
                    * weights[i]
            }
            return sum
        }

        /// The offset (nil: none in double): the root of f nearest 0 among the first root above 0
        /// (c in [0, -K]: at -K every log std is log_std_max) and the first below 0 (down to where
        /// every entry is clipped at log_std_min and f is flat); the one above on a tie.
        func offset() -> Double? {
            let d = era.gaussian.dim, k = era.gaussian.scale
            let span = era.gaussian.logStdMax - era.gaussian.logStdMin
            // Entry i leaves log_std_min at c_i = -span/w_i - K: f's kinks.
            var low = 0.0
            var up: [Double] = [], down: [Double] = []
            for i in 0..<d {
                let kink = weights[i] > 0 ? -(span / weights[i]) - k : -Double.infinity
                low = min(low, kink)
                if kink > 0 && kink < -k { up.append(kink) }
                if kink < 0 && kink.isFinite { down.append(-kink) }
            }
            let bottom = low.isFinite ? -low : Double.greatestFiniteMagnitude
            let tolerance = 1e-12 * (1 + abs(era.target))
            let f0 = shortfall(0)
            if f0 >= 0 { return 0 }
            // A bound on every c first: by Jensen (log(1 - tanh^2) is concave) a dimension's
            // squashed entropy is at most log_std_max + 0.5 log(2 pi e) + log(1 - tanh^2(mean)),
            // and at most the supremum; rows far below it (large |mean|) end here.
            var ceiling = CompensatedSum()
            for i in 0..<d {
                let x = abs(Double(mean[i]))
                let jensen = era.gaussian.logStdMax + Math.gaussianEntropyPerDim
                    + 2 * (Math.log(2.0) - x - Math.log1p(Math.exp(-2 * x)))
                // (plus float32's rounding up of a log_std_max it cannot represent)
                ceiling.add(min(jensen + 1e-6 * (1 + abs(era.gaussian.logStdMax)), Entropy.tanhGaussianEntropySupremum))
            }
            if ceiling.value < era.target - tolerance { return nil }
            // Upwards f' = sum_i dH_i/dlog_std w_i <= sum_i w_i = 1 (dH/dlog_std <= 1): a Lipschitz bound.
            let above = firstRoot({ shortfall($0) }, { slope($0) }, f0: f0, kinks: up.sorted(), end: -k, tolerance: tolerance,
                                  lipschitz: 1)
            let below = firstRoot({ shortfall(-$0) }, { -slope(-$0) }, f0: f0, kinks: down.sorted(),
                                  end: min(above ?? bottom, bottom), tolerance: tolerance)
            if let above, let below { return below < above ? -below : above }
            return above ?? below.map { -$0 }
        }
    }

    /// The continuous outputs of all rows (so that a row with c = 0 is that output bit for bit),
    /// and each row's offset. Throws .infeasibleTarget when a row has none.
    func solve<T: ERAReal>(rows: Int, stdLogits: UnsafePointer<T>, mean: UnsafePointer<T>,
                           gaussianOut: UnsafeMutablePointer<T>, offsets: UnsafeMutablePointer<Double>) throws(ERAError) {
        try gaussian.forwardRows(rows: rows, input: stdLogits, output: gaussianOut)
        let d = gaussian.dim
        try forEachRowBlock(rows: rows, workPerRow: workPerRow, scratchPerBlock: 2 * d) { range, scratch in
            for row in range {
                let view = Row(era: self, stdLogits: stdLogits + row * d, mean: mean + row * d,
                               base: UnsafePointer(gaussianOut + row * d), scratch: scratch!)
                offsets[row] = view.offset() ?? .nan
            }
        }
        for row in 0..<rows { guard !offsets[row].isNaN else { throw .infeasibleTarget } }
    }

    /// Forward pass: output[r, i] = l(c_r)_i; `offset`, when given, receives c per row.
    /// `output` may be `stdLogits`.
    public func forward<T: ERAReal>(rows: Int, stdLogits: UnsafePointer<T>, loc mean: UnsafePointer<T>,
                                    output: UnsafeMutablePointer<T>, offset: UnsafeMutablePointer<T>?) throws(ERAError) {
        let d = gaussian.dim
        let gaussianOut = try TypedScratch<T>(perBlock: rows * d)
        let offsets = try Scratch(perBlock: rows)
        let shifted = try TypedScratch<T>(perBlock: rows * d)
        guard let l = gaussianOut.base, let c = offsets.base, let out = shifted.base else { return }
        try solve(rows: rows, stdLogits: stdLogits, mean: mean, gaussianOut: l, offsets: c)
        try forEachRowBlock(rows: rows, workPerRow: d * 8, scratchPerBlock: 2 * d) { range, scratch in
            for row in range {
                let view = Row(era: self, stdLogits: stdLogits + row * d, mean: mean + row * d,
                               base: UnsafePointer(l + row * d), scratch: scratch!)
                for i in 0..<d { out[row * d + i] = view.logStd(i, c[row]) }
            }
        }
        for i in 0..<rows * d { output[i] = out[i] }
        if let offset { for row in 0..<rows { offset[row] = T(c[row]) } }
    }

    /// Backward pass by the implicit function theorem. With g = dL/dl, G' = sum_i g_i w_i and
    /// S = sum_i H_L,i w_i over the entries that move, on a row with c != 0:
    ///   dL/ds     = the continuous backward pass, at the row's target, of g_i - (G'/S) H_L,i
    ///   dL/dmean_i = -(G'/S) H_m,i,   dL/d(H0 + delta) = G'/S
    /// (the continuous backward's residual gradient of g - (G'/S) H_L is G' - (G'/S) S = 0); on a
    /// row with c = 0 the continuous backward pass of g, dL/dmean = 0.
    public func backward<T: ERAReal>(rows: Int, stdLogits: UnsafePointer<T>, loc mean: UnsafePointer<T>,
                                     gradOutput: UnsafePointer<T>, gradStdLogits: UnsafeMutablePointer<T>,
                                     gradLoc gradMean: UnsafeMutablePointer<T>,
                                     gradResidual: UnsafeMutablePointer<T>?) throws(ERAError) {
        let d = gaussian.dim
        let count = rows * d
        let gaussianOut = try TypedScratch<T>(blocks: 4, perBlock: count)  // l, dL/dl, dL/dmean, dL/ds
        let offsets = try Scratch(blocks: 2, perBlock: rows)  // c, then dL/d(H0 + delta)
        guard let l = gaussianOut.base, let c = offsets.base else { return }
        let gradL = l + count, gradM = l + 2 * count, gradS = l + 3 * count
        let extra = c + rows
        try solve(rows: rows, stdLogits: stdLogits, mean: mean, gaussianOut: l, offsets: c)
        // Rows with c = 0: the continuous backward pass itself (bit for bit); the others are
        // overwritten below.
        let residuals = try TypedScratch<T>(perBlock: rows)
        guard let residual = residuals.base else { return }
        try gaussian.backwardRows(rows: rows, input: stdLogits, gradOutput: gradOutput, gradInput: gradS,
                                  gradResidual: residual)
        let invalid = try TypedScratch<Bool>(perBlock: rows)
        guard let bad = invalid.base else { return }
        try forEachRowBlock(rows: rows, workPerRow: d * 800, scratchPerBlock: 2 * d) { range, scratch in
            for row in range {
                let start = row * d
                guard c[row] != 0 else {
                    for i in start..<start + d { gradM[i] = 0 }
                    extra[row] = Double(residual[row])
                    bad[row] = false
                    continue
                }
                bad[row] = self.rowBackward(Row(era: self, stdLogits: stdLogits + start, mean: mean + start,
                                                base: UnsafePointer(l + start), scratch: scratch!),
                                            c: c[row], gradOutput: gradOutput + start, gradL: gradL + start,
                                            gradMean: gradM + start, gradS: gradS + start, extra: extra + row)
            }
        }
        for row in 0..<rows { guard !bad[row] else { throw .badParameter } }
        // The continuous backward's rows (c = 0) overflow too (K w (g - sum g w) with g near
        // the type's largest value): nothing is written then.
        for i in 0..<count { guard gradS[i].isFinite else { throw .badParameter } }
        if gradResidual != nil {
            for row in 0..<rows { guard T(extra[row]).isFinite else { throw .badParameter } }
        }
        for i in 0..<count {
            gradStdLogits[i] = gradS[i]
            gradMean[i] = gradM[i]
        }
        if let gradResidual {
            for row in 0..<rows { gradResidual[row] = T(extra[row]) }
        }
    }

    /// One row of the backward pass with c != 0 (see backward); returns whether a value is not
    /// representable in T.
    func rowBackward<T: ERAReal>(_ view: Row<T>, c: Double, gradOutput: UnsafePointer<T>,
                                 gradL: UnsafeMutablePointer<T>, gradMean: UnsafeMutablePointer<T>,
                                 gradS: UnsafeMutablePointer<T>, extra: UnsafeMutablePointer<Double>) -> Bool {
        let d = gaussian.dim
        var bad = false
        var weighted = 0.0, slope = 0.0
        let derivatives = view.trial  // d doubles: dH/dlog_std
        for i in 0..<d {
            let v = Entropy.tanhGaussianEntropyDerivative(mean: Double(view.mean[i]), logStd: Double(view.logStd(i, c)))
            derivatives[i] = v.logStd
            if view.moves(i, c) {
                weighted += Double(gradOutput[i]) * view.weights[i]
                slope += v.logStd * view.weights[i]
            }
        }
        let perSlope = weighted / slope
        // dL/dl and the continuous backward at the row's scale K + c, in double.
        var inner = 0.0
        for i in 0..<d {
            let gl = Double(gradOutput[i]) - perSlope * derivatives[i]
            gradL[i] = T(gl)
            if !gradL[i].isFinite { bad = true }
            if view.moves(i, c) { inner += gl * view.weights[i] }
        }
        let scale = gaussian.scale + c
        for i in 0..<d {
            let gl = view.moves(i, c) ? Double(gradOutput[i]) - perSlope * derivatives[i] : 0
            gradS[i] = T(scale * view.weights[i] * (gl - inner))
            if !gradS[i].isFinite { bad = true }
        }
        for i in 0..<d {
            let v = Entropy.tanhGaussianEntropyDerivative(mean: Double(view.mean[i]), logStd: Double(view.logStd(i, c)))
            gradMean[i] = T(-perSlope * v.loc)
            if !gradMean[i].isFinite { bad = true }
        }
        extra.pointee = perSlope
        if !T(perSlope).isFinite { bad = true }
        return bad
    }

    /// The squashed entropy of each row of log stds against H0 + delta (math 4); report.floor is
    /// H0 + delta, which the forward pass guarantees.
    public func check<T: ERAReal>(rows: Int, loc mean: UnsafePointer<T>?, logStd: UnsafePointer<T>?,
                                  tolerance: Double) throws(ERAError) -> BoundReport {
        let d = gaussian.dim
        return try BoundCheck.report(rows: rows, target: target, tolerance: tolerance,
                                     floor: target) { (entropies: UnsafeMutablePointer<Double>) throws(ERAError) in
            guard let mean, let logStd else { throw .nullPointer }
            try forEachRowBlock(rows: rows, workPerRow: d * 400) { range, _ in
                for row in range {
                    var sum = CompensatedSum()
                    for i in row * d..<(row + 1) * d {
                        sum.add(Entropy.tanhGaussianEntropy(mean: Double(mean[i]), logStd: Double(logStd[i])))
                    }
                    entropies[row] = sum.value
                }
            }
        }
    }
}

/// The first t in (0, end] with g(t) >= 0 (to within `tolerance` above 0), g(0) = f0 < 0, for g
/// concave between consecutive `kinks` (sorted, in (0, end)); nil when there is none. `slope` is
/// g'. On each piece [a, b], with the one-sided slopes just inside it: g' <= 0 after a means g
/// falls throughout (concave): no root; g(b) >= 0: the root is on the rising branch; g' > 0
/// still at b: the peak is g(b) < 0, no root; else the peak lies inside, below the crossing
/// of the tangents at the two ends (no root when that is below 0), and is located by
/// bisection on the sign of g', the tangents pruning as they go, stopping at the first point
/// with g >= 0.
func firstRoot(_ g: (Double) -> Double, _ slope: (Double) -> Double, f0: Double, kinks: [Double], end: Double,
               tolerance: Double, lipschitz: Double? = nil) -> Double? {
    guard end > 0, f0.isFinite else { return nil }
    /// The largest value of a concave function between its tangents at (l, fl, sl) and (h, fh, sh).
    func ceiling(_ l: Double, _ fl: Double, _ sl: Double, _ h: Double, _ fh: Double, _ sh: Double) -> Double {
        guard sl > sh else { return max(fl, fh) }
        let t = min(max((fh - fl + sl * l - sh * h) / (sl - sh), l), h)
        return min(fl + sl * (t - l), fh + sh * (t - h))
    }
    let ends = kinks + [end]
    var a = 0.0
    var known: Double? = f0  // g(a) where evaluated
    var k = 0
    while k < ends.count {
        let b = ends[k]
        guard b > a else {
            k += 1
            continue
        }
        if let lipschitz, let fa = known, fa < 0 {
            // No root before a + |g(a)| / L: pieces ending before it are passed over unevaluated.
            let reach = a + (-fa) / lipschitz
            if reach >= b {
                guard reach < end else { return nil }
                while k < ends.count && ends[k] <= reach { k += 1 }
                let value = g(reach)
                if value >= 0 { return reach }  // g rose at the bound's rate: the root is here
                a = reach
                known = value
                continue
            }
        }
        k += 1
        let inset = (b - a) * 0x1p-30
        let sa = slope(a + inset)
        guard sa > 0 else {  // falls throughout the piece (concave)
            a = b
            known = lipschitz == nil ? nil : g(b)
            continue
        }
        let fa = known ?? g(a)
        if fa >= 0 { return a }
        let fb = g(b)
        defer {
            a = b
            known = fb
        }
        if fb >= 0 { return bracketedRoot(g, slope, a, fa, b, tolerance: tolerance) }
        let sb = slope(b - inset)
        guard sb < 0 else { continue }  // still rising at b: the peak is g(b) < 0
        var low = a, lowValue = fa, lowSlope = sa, high = b, highValue = fb, highSlope = sb
        for _ in 0..<200 {
            guard ceiling(low, lowValue, lowSlope, high, highValue, highSlope) >= 0 else { break }
            let mid = 0.5 * (low + high)
            if !(mid > low && mid < high) { break }
            let value = g(mid)
            if value >= 0 { return bracketedRoot(g, slope, low, lowValue, mid, tolerance: tolerance) }
            let midSlope = slope(mid)
            if midSlope > 0 {
                low = mid
                lowValue = value
                lowSlope = midSlope
            } else {
                high = mid
                highValue = value
                highSlope = midSlope
            }
        }
    }
    return nil
}

/// The root of g in (a, b], g(a) = fa < 0 <= g(b), g concave increasing up to the root:
/// safeguarded Newton, every iterate inside the bracket, bisection when Newton leaves it; a step
/// from below already within the tolerance is doubled so that the iterate lands on the feasible
/// side. Stops at the first t with 0 <= g(t) <= tolerance, or a bracket 4 ulps wide (then b).
func bracketedRoot(_ g: (Double) -> Double, _ slope: (Double) -> Double, _ a0: Double, _ fa: Double, _ b0: Double,
                   tolerance: Double) -> Double {
    var a = a0, b = b0
    var x = a, fx = fa
    for iteration in 0..<200 {
        if b - a <= 4 * b.ulp { break }
        var next = Double.nan
        if iteration < 100 {
            var step = -fx / slope(x)
            if fx < 0 && -fx <= tolerance { step = 2 * step + 4 * max(x.ulp, Double.leastNormalMagnitude) }
            next = x + step
        }
        if !(next > a && next < b) { next = 0.5 * (a + b) }
        let value = g(next)
        if value >= 0 {
            b = next
            if value <= tolerance { return b }
        } else {
            a = next
        }
        x = next
        fx = value
    }
    return b
}
