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
    /// on the calling thread and the others on the worker threads of the pool, and returns when
    /// all are done. The calling thread also runs blocks no worker has taken yet, so a call
    /// finishes even when every worker is busy (or none could be started).
    public static func forEachBlock(rows: Int, blocks: Int, _ body: (Int, Range<Int>) -> Void) {
        let blocks = max(1, min(blocks, rows))
        if blocks == 1 {
            body(0, 0..<rows)
            return
        }
        withoutActuallyEscaping(body) { escapable in
            ThreadPool.shared.run(PoolCall(rows: rows, blocks: blocks, body: escapable))
        }
    }
}

/// One forEachBlock call: its blocks are claimed one by one (under the pool's lock) by the
/// calling thread and by workers.
final class PoolCall {
    let rows: Int
    let blocks: Int
    let body: (Int, Range<Int>) -> Void
    /// The next block to claim (block 0 is the caller's) and the blocks 1..<blocks finished.
    var next = 1
    var finished = 0

    init(rows: Int, blocks: Int, body: @escaping (Int, Range<Int>) -> Void) {
        self.rows = rows
        self.blocks = blocks
        self.body = body
    }

    func range(_ block: Int) -> Range<Int> {
        (rows * block / blocks)..<(rows * (block + 1) / blocks)
    }
}

/// Worker threads started on first need and kept for the life of the process (starting a
/// thread per call cost about 50 microseconds, more than a small call's whole work). One lock
/// guards the queue of calls with unclaimed blocks and every call's counters; blocks run
/// outside it. Results do not depend on which thread runs which block.
final class ThreadPool: @unchecked Sendable {
    /// The process's pool, made on first use. Published through an atomic (compare-exchange;
    /// a racing loser's pool is dropped before it starts a thread) rather than a lazy global,
    /// whose one-time initialisation ThreadSanitizer cannot see.
    static var shared: ThreadPool {
        let existing = published.load(ordering: .acquiring)
        if existing != 0 { return pool(at: existing) }
        registerForkHandlers()
        let fresh = Unmanaged.passRetained(ThreadPool())
        let address = UInt(bitPattern: fresh.toOpaque())
        let (won, current) = published.compareExchange(expected: 0, desired: address, ordering: .acquiringAndReleasing)
        if won { return fresh.takeUnretainedValue() }
        fresh.release()
        return pool(at: current)
    }

    /// The address of the shared pool; 0 until it exists (and again in a child after fork).
    private static let published = Atomic<UInt>(0)

    /// Whether the fork handlers are registered (once per process; a child inherits them).
    private static let forkHandlersRegistered = Atomic<Bool>(false)

    /// fork() copies only the forking thread: the child would inherit a pool whose workers do
    /// not exist, whose queue holds other threads' calls, and whose lock may be held by a thread
    /// that is gone. So the pool's lock is taken around fork (no call is then half-way through
    /// claiming a block), released in the parent, and the child forgets the pool: its first
    /// multithreaded call makes a new one with workers of its own. The old pool is leaked in
    /// the child, never touched again (its calls belong to threads the child does not have).
    private static func registerForkHandlers() {
        guard forkHandlersRegistered.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged
        else { return }
        pthread_atfork({
            let address = ThreadPool.published.load(ordering: .acquiring)
            if address != 0 { pthread_mutex_lock(ThreadPool.pool(at: address).lock) }
        }, {
            let address = ThreadPool.published.load(ordering: .acquiring)
            if address != 0 { pthread_mutex_unlock(ThreadPool.pool(at: address).lock) }
        }, {
            ThreadPool.published.store(0, ordering: .releasing)
        })
    }

    private static func pool(at address: UInt) -> ThreadPool {
        Unmanaged<ThreadPool>.fromOpaque(UnsafeRawPointer(bitPattern: address)!).takeUnretainedValue()
    }

    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let work = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)   // a block to claim
    private let done = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)   // a call finished
    private var queue: [PoolCall] = []
    private var workers = 0

    private init() {
        pthread_mutex_init(lock, nil)
        pthread_cond_init(work, nil)
        pthread_cond_init(done, nil)
    }

    /// Only a pool that lost the race to be published ends (it never started a thread); the
    /// published one lives as long as the process.
    deinit {
        pthread_cond_destroy(done)
        pthread_cond_destroy(work)
        pthread_mutex_destroy(lock)
        done.deallocate()
        work.deallocate()
        lock.deallocate()
    }

    func run(_ call: PoolCall) {
        pthread_mutex_lock(lock)
        queue.append(call)
        startWorkers(upTo: call.blocks - 1)
        pthread_cond_broadcast(work)
        pthread_mutex_unlock(lock)

        call.body(0, call.range(0))

        pthread_mutex_lock(lock)
        while true {
            if call.next < call.blocks {
                let block = call.next
                call.next += 1
                if call.next == call.blocks { remove(call) }
                pthread_mutex_unlock(lock)
                call.body(block, call.range(block))
                pthread_mutex_lock(lock)
                call.finished += 1
                continue
            }
            if call.finished == call.blocks - 1 { break }
            pthread_cond_wait(done, lock)
        }
        remove(call)
        pthread_mutex_unlock(lock)
    }

    /// Takes `call` off the queue (if it is still there). Under the lock.
    private func remove(_ call: PoolCall) {
        if let index = queue.firstIndex(where: { $0 === call }) { queue.remove(at: index) }
    }

    /// Starts workers until there are `count` (at most Threads.maximum). Under the lock. A
    /// worker that cannot be started is simply not there: callers run their blocks themselves.
    private func startWorkers(upTo count: Int) {
        while workers < min(count, Threads.maximum) {
            var attributes = pthread_attr_t()
            pthread_attr_init(&attributes)
            pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
            var thread = pthread_t()
            // The pool reaches the worker as its argument (it lives for the whole process), not
            // through the lazy global, whose initialisation ThreadSanitizer cannot see.
            let started = pthread_create(&thread, &attributes, { pool in
                Unmanaged<ThreadPool>.fromOpaque(pool!).takeUnretainedValue().workerLoop()
            }, Unmanaged.passUnretained(self).toOpaque())
            pthread_attr_destroy(&attributes)
            guard started == 0 else { return }
            workers += 1
        }
    }

    private func workerLoop() -> Never {
        pthread_mutex_lock(lock)
        while true {
            guard let call = queue.first else {
                pthread_cond_wait(work, lock)
                continue
            }
            let block = call.next
            call.next += 1
            if call.next == call.blocks { queue.removeFirst() }
            pthread_mutex_unlock(lock)
            call.body(block, call.range(block))
            pthread_mutex_lock(lock)
            call.finished += 1
            if call.finished == call.blocks - 1 { pthread_cond_broadcast(done) }
        }
    }
}

/// Scratch memory for a call in doubles (TypedScratch.swift).
public typealias Scratch = TypedScratch<Double>

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
