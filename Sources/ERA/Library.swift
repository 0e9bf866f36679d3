// Library-wide entry points: versions, status texts, the thread setting, and the mapping of
// ERACore's errors to era_status.
import CEra
import ERACore

/// Runs a checked kernel call and maps its error, if any, to a status. Every body checks all
/// arguments and scans all inputs before it writes, so a thrown error means nothing was written.
@inline(__always)
func status(_ body: () throws(ERAError) -> Void) -> era_status {
    do {
        try body()
        return ERA_OK
    } catch {
        switch error {
        case .nullPointer: return ERA_ERR_NULL_POINTER
        case .badShape: return ERA_ERR_BAD_SHAPE
        case .badParameter: return ERA_ERR_BAD_PARAMETER
        case .infeasibleTarget: return ERA_ERR_INFEASIBLE_TARGET
        case .nonFinite: return ERA_ERR_NON_FINITE
        case .allocation: return ERA_ERR_ALLOCATION
        case .badIndex: return ERA_ERR_BAD_INDEX
        case .overlap: return ERA_ERR_OVERLAP
        }
    }
}

/// The pointee of a required parameter struct.
@inline(__always)
func required<P>(_ pointer: UnsafePointer<P>?) throws(ERAError) -> P {
    guard let pointer else { throw .nullPointer }
    return pointer.pointee
}

/// One array of a call, for the overlap check: the bytes it spans (none for a NULL pointer or
/// an empty array). Built after the shape checks, so `count * stride` fits.
struct Span {
    let start: UInt
    let end: UInt

    init<T>(_ pointer: UnsafePointer<T>?, _ count: Int) {
        start = UInt(bitPattern: pointer)
        guard pointer != nil, count > 0 else {
            end = start
            return
        }
        let (sum, overflow) = start.addingReportingOverflow(UInt(count) * UInt(MemoryLayout<T>.stride))
        end = overflow ? UInt.max : sum
    }

    init<T>(_ pointer: UnsafeMutablePointer<T>?, _ count: Int) {
        self.init(UnsafePointer(pointer), count)
    }

    func overlaps(_ other: Span) -> Bool {
        start < end && other.start < other.end && start < other.end && other.start < end
    }
}

/// Throws .overlap unless every output is disjoint from every input and from the other
/// outputs, but for an output that is exactly an input (same start, same size) which the
/// function documents as "in place": `inPlace` lists those as (output index, input index).
func requireDisjoint(outputs: [Span], inputs: [Span], inPlace: [(output: Int, input: Int)] = []) throws(ERAError) {
    for (o, output) in outputs.enumerated() {
        for (i, input) in inputs.enumerated() where output.overlaps(input) {
            let exact = output.start == input.start && output.end == input.end
            guard exact, inPlace.contains(where: { $0.output == o && $0.input == i }) else { throw .overlap }
        }
        for other in outputs[(o + 1)...] where output.overlaps(other) { throw .overlap }
    }
}

/// A C string in static storage.
@inline(__always)
func cString(_ text: StaticString) -> UnsafePointer<CChar> {
    UnsafeRawPointer(text.utf8Start).assumingMemoryBound(to: CChar.self)
}

/// "MAJOR.MINOR.PATCH" from era.h's ERA_VERSION_* macros (the one place the version is
/// written), formatted once into storage that lives as long as the library. A global `let` is
/// initialised once, thread-safely, on first use.
private let versionText: UnsafePointer<CChar> = {
    let text = "\(ERA_VERSION_MAJOR).\(ERA_VERSION_MINOR).\(ERA_VERSION_PATCH)".utf8CString
    let storage = UnsafeMutablePointer<CChar>.allocate(capacity: text.count)
    text.withUnsafeBufferPointer { storage.initialize(from: $0.baseAddress!, count: text.count) }
    return UnsafePointer(storage)
}()

@_cdecl("era_abi_version")
public func era_abi_version() -> Int32 { Int32(ERA_ABI_VERSION) }

@_cdecl("era_version_string")
public func era_version_string() -> UnsafePointer<CChar> { versionText }

@_cdecl("era_status_string")
public func era_status_string(_ code: era_status) -> UnsafePointer<CChar> {
    switch code {
    case ERA_OK: return cString("ok")
    case ERA_ERR_NULL_POINTER: return cString("null pointer")
    case ERA_ERR_BAD_SHAPE: return cString("bad shape")
    case ERA_ERR_BAD_PARAMETER: return cString("bad parameter")
    case ERA_ERR_INFEASIBLE_TARGET: return cString("infeasible target entropy")
    case ERA_ERR_NON_FINITE: return cString("non-finite input")
    case ERA_ERR_ALLOCATION: return cString("allocation failure")
    case ERA_ERR_INTERNAL: return cString("internal error")
    case ERA_ERR_BAD_INDEX: return cString("index out of range")
    case ERA_ERR_OVERLAP: return cString("overlapping buffers")
    default: return cString("unknown status")
    }
}

@_cdecl("era_set_num_threads")
public func era_set_num_threads(_ count: Int32) -> era_status {
    status { () throws(ERAError) in try Threads.set(Int(count)) }
}

@_cdecl("era_get_num_threads")
public func era_get_num_threads() -> Int32 { Int32(clamping: Threads.current) }
