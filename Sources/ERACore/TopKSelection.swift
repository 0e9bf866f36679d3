// The k largest logits of a row, selected while the row streams past (docs/math.md, "Top-k
// log-probabilities"): a buffer of at most k (value, index) entries kept in order, and a
// running threshold (the k-th value) against which most logits are rejected with one compare.

/// At most `capacity` entries of a row, held in the order "larger value first, then lower
/// index first": the tie rule at the k-th value is that the lower index wins. Masked (-inf)
/// values never enter, so a row with fewer than k finite logits selects the finite ones.
/// The entries live in caller memory (scratch), `capacity` of each kind.
struct TopKSelection {
    let values: UnsafeMutablePointer<Double>
    let indices: UnsafeMutablePointer<Int>
    let capacity: Int
    private(set) var count = 0

    @inline(__always)
    init(values: UnsafeMutablePointer<Double>, indices: UnsafeMutablePointer<Int>, capacity: Int, count: Int = 0) {
        self.values = values
        self.indices = indices
        self.capacity = capacity
        self.count = count
    }

    /// A value must exceed this to enter (values equal to it come later in the row, with
    /// higher indices, and lose the tie): the k-th value when the buffer is full, else -inf.
    @inline(__always)
    var threshold: Double { count == capacity ? values[capacity - 1] : -Double.infinity }

    /// Inserts (v, i) in order when it precedes the last entry of a full buffer (or the buffer
    /// has room and v > -inf); the last entry then drops out. Ties go by index, so the entries
    /// of another selection can be inserted in any order with the same result.
    @inline(__always)
    mutating func insert(_ v: Double, _ i: Int) {
        guard v > -Double.infinity else { return }
        if count == capacity {
            let last = capacity - 1
            guard v > values[last] || (v == values[last] && i < indices[last]) else { return }
        } else {
            count += 1
        }
        var p = count - 1
        while p > 0 && (v > values[p - 1] || (v == values[p - 1] && i < indices[p - 1])) {
            values[p] = values[p - 1]
            indices[p] = indices[p - 1]
            p -= 1
        }
        values[p] = v
        indices[p] = i
    }

    /// Streams z[0..<count] (row indices offset + i) through the selection: each block of 64
    /// values is first tested against the threshold (eight float32 lanes where the vector
    /// kernels run, else the block's maximum in double), and skipped when nothing in it is
    /// above. Returns false when a value is NaN or +inf (the selection is then incomplete).
    @inline(__always)
    mutating func add<S: LogitStorage>(_ z: UnsafePointer<S>, count: Int, offset: Int) -> Bool {
        let block = 64
        var start = 0
        // The vector kernels find the next eight logits worth reading; those go in one by one.
        while let next = VectorKernels.firstBlockAbove(z, count: count, from: start, threshold: threshold) {
            guard next >= 0 else { return false }  // a NaN in a block passed over
            guard next + 8 <= count else {
                start = next
                break
            }
            for j in next..<next + 8 {
                let v = z[j].doubleValue
                guard v < Double.infinity else { return false }  // NaN or +inf
                if v > threshold { insert(v, offset + j) }
            }
            start = next + 8
        }
        // The rest (all of it where no vector kernel runs): each block's maximum first.
        while start < count {
            let end = min(start + block, count)
            // v > m ? v : m skips NaN; NaN is counted apart (v != v).
            var m0 = -Double.infinity, m1 = -Double.infinity, nan = 0
            var i = start
            while i + 2 <= end {
                let a = z[i].doubleValue, b = z[i + 1].doubleValue
                m0 = a > m0 ? a : m0
                m1 = b > m1 ? b : m1
                nan |= (a != a ? 1 : 0) | (b != b ? 1 : 0)
                i += 2
            }
            if i < end {
                let a = z[i].doubleValue
                m0 = a > m0 ? a : m0
                nan |= a != a ? 1 : 0
            }
            let blockMaximum = m1 > m0 ? m1 : m0
            guard nan == 0, blockMaximum < Double.infinity else { return false }
            if blockMaximum > threshold {
                for j in start..<end {
                    let v = z[j].doubleValue
                    if v > threshold { insert(v, offset + j) }
                }
            }
            start = end
        }
        return true
    }

    /// Whether index i is selected.
    @inline(__always)
    func contains(_ i: Int) -> Bool {
        for p in 0..<count where indices[p] == i { return true }
        return false
    }

    /// sum over the selection of exp(s v - s v_max) (the largest term is 1), and s v_max;
    /// the selection must not be empty. s v is exact in double for float32 and bfloat16 v.
    @inline(__always)
    func scaledSums(scale s: Double) -> (maximum: Double, sumExp: Double) {
        let maximum = s * values[0]
        var sum = 0.0
        for p in 0..<count { sum += Math.exp(max(s * values[p] - maximum, SoftmaxStatistics.lowestShift)) }
        return (maximum, sum)
    }
}
