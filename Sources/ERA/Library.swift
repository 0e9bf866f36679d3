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
        }
    }
}

/// The pointee of a required parameter struct.
@inline(__always)
func required<P>(_ pointer: UnsafePointer<P>?) throws(ERAError) -> P {
    guard let pointer else { throw .nullPointer }
    return pointer.pointee
}

/// A C string in static storage.
@inline(__always)
func cString(_ text: StaticString) -> UnsafePointer<CChar> {
    UnsafeRawPointer(text.utf8Start).assumingMemoryBound(to: CChar.self)
}

@_cdecl("era_abi_version")
public func era_abi_version() -> Int32 { 1 }

@_cdecl("era_version_string")
public func era_version_string() -> UnsafePointer<CChar> { cString("0.1.0") }

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
    default: return cString("unknown status")
    }
}

@_cdecl("era_set_num_threads")
public func era_set_num_threads(_ count: Int32) -> era_status {
    status { () throws(ERAError) in try Threads.set(Int(count)) }
}

@_cdecl("era_get_num_threads")
public func era_get_num_threads() -> Int32 { Int32(clamping: Threads.current) }
