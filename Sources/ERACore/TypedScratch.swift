#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Scratch memory for a call: `perBlock` values of one type for each of `blocks` blocks, taken
/// with malloc so that a failure is an error the caller can report instead of a trap (Scratch,
/// in Threads.swift, is the double one). Floats, small records or status codes are held as
/// what they are. The memory starts uninitialised: only for trivial types (numbers,
/// payload-free enums and structs of those), each value written before it is read.
public struct TypedScratch<Element>: ~Copyable {
    /// nil when there is nothing to hold.
    public let base: UnsafeMutablePointer<Element>?
    public let perBlock: Int

    public init(blocks: Int = 1, perBlock: Int) throws(ERAError) {
        self.perBlock = perBlock
        let (count, overflow) = blocks.multipliedReportingOverflow(by: perBlock)
        guard !overflow, count < Int.max / MemoryLayout<Element>.stride else { throw .allocation }
        if count == 0 {
            base = nil
            return
        }
        guard let raw = malloc(count * MemoryLayout<Element>.stride) else { throw .allocation }
        base = raw.bindMemory(to: Element.self, capacity: count)
    }

    /// The block's own scratch.
    public func block(_ index: Int) -> UnsafeMutablePointer<Element> {
        base! + index * perBlock
    }

    deinit { free(base) }
}
