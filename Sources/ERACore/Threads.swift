// The thread setting (the library's only global state) and the row-parallel runner.
// Rows are split into contiguous blocks, one per thread, and each row is computed by the
// same code whatever the split, so results are identical for every thread count.
#if canImport(Glibc)
import Glibc
#endif
import Synchronization

public enum Threads {
    /// 0 means "not set": use the number of online processors.
    private static let setting = Atomic<Int>(0)

    public static let maximum = 1024

    /// Work (in element-operations) below which a call runs on the calling thread alone:
    /// starting a thread costs about as much as this much arithmetic.
    public static let minimumWorkPerThread = 1 << 16

    /// The number of online processors (at least 1).
    public static var processorCount: Int {
        max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }

    /// Sets the thread count; 0 restores the default. Throws .badParameter outside 0...1024.
    public static func set(_ count: Int) throws(ERAError) {
        guard count >= 0, count <= maximum else { throw .badParameter }
        setting.store(count, ordering: .relaxed)
    }

    /// The thread count a call started now would use (>= 1).
    public static var current: Int {
        let value = setting.load(ordering: .relaxed)
        return value == 0 ? processorCount : value
    }

    /// How many blocks `rows` rows of `workPerRow` operations each are split into.
    public static func blockCount(rows: Int, workPerRow: Int) -> Int {
        guard rows > 1 else { return 1 }
        let work = rows.multipliedReportingOverflow(by: max(workPerRow, 1))
        let total = work.overflow ? Int.max : work.partialValue
        let byWork = max(1, total / minimumWorkPerThread)
        return max(1, min(current, rows, byWork))
    }

    /// Calls `body(block, rowRange)` for `blocks` contiguous blocks covering 0..<rows, block 0
    /// on the calling thread and the others on threads of their own, and returns when all are
    /// done. If a thread cannot be started its block runs on the calling thread.
    public static func forEachBlock(rows: Int, blocks: Int, _ body: (Int, Range<Int>) -> Void) {
        let blocks = max(1, min(blocks, rows))
        if blocks == 1 {
            body(0, 0..<rows)
            return
        }
        func range(_ block: Int) -> Range<Int> {
            (rows * block / blocks)..<(rows * (block + 1) / blocks)
        }
        withoutActuallyEscaping(body) { escapable in
            var started: [(pthread_t, Unmanaged<BlockJob>)] = []
            started.reserveCapacity(blocks - 1)
            var inline: [Int] = []
            for block in 1..<blocks {
                let job = Unmanaged.passRetained(BlockJob(block: block, range: range(block), body: escapable))
                var thread = pthread_t()
                let rc = pthread_create(&thread, nil, { raw in
                    let job = Unmanaged<BlockJob>.fromOpaque(raw!).takeUnretainedValue()
                    job.body(job.block, job.range)
                    return nil
                }, job.toOpaque())
                if rc == 0 {
                    started.append((thread, job))
                } else {
                    job.release()
                    inline.append(block)
                }
            }
            escapable(0, range(0))
            for block in inline { escapable(block, range(block)) }
            for (thread, job) in started {
                pthread_join(thread, nil)
                job.release()
            }
        }
    }
}

private final class BlockJob {
    let block: Int
    let range: Range<Int>
    let body: (Int, Range<Int>) -> Void
    init(block: Int, range: Range<Int>, body: @escaping (Int, Range<Int>) -> Void) {
        self.block = block
        self.range = range
        self.body = body
    }
}

/// Scratch memory for a call: `perBlock` doubles for each of `blocks` blocks, taken with malloc
/// so that a failure is an error the caller can report instead of a trap.
public struct Scratch: ~Copyable {
    public let base: UnsafeMutablePointer<Double>?
    public let perBlock: Int

    public init(blocks: Int, perBlock: Int) throws(ERAError) {
        self.perBlock = perBlock
        let (count, overflow) = blocks.multipliedReportingOverflow(by: perBlock)
        guard !overflow, count < Int.max / MemoryLayout<Double>.stride else { throw .allocation }
        if count == 0 {
            base = nil
            return
        }
        guard let raw = malloc(count * MemoryLayout<Double>.stride) else { throw .allocation }
        base = raw.bindMemory(to: Double.self, capacity: count)
    }

    /// The block's own scratch.
    public func block(_ index: Int) -> UnsafeMutablePointer<Double> {
        base! + index * perBlock
    }

    deinit { free(base) }
}

/// Runs `body(rowRange, scratch)` over 0..<rows split across the thread setting, each block
/// with `scratchPerBlock` doubles of its own. The scratch is allocated before any block runs,
/// so an allocation failure throws before anything is written.
public func forEachRowBlock(rows: Int, workPerRow: Int, scratchPerBlock: Int = 0,
                            _ body: (Range<Int>, UnsafeMutablePointer<Double>?) -> Void) throws(ERAError) {
    guard rows > 0 else { return }
    let blocks = Threads.blockCount(rows: rows, workPerRow: workPerRow)
    let scratch = try Scratch(blocks: blocks, perBlock: scratchPerBlock)
    Threads.forEachBlock(rows: rows, blocks: blocks) { block, range in
        body(range, scratchPerBlock > 0 ? scratch.block(block) : nil)
    }
}
