#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// The rule for directories sl keeps state in (the delivery queue, the escrow
/// store): only their owner works in them. A run as another user (root, once, by
/// hand) would leave files the owner's later runs cannot read: attempt counts that
/// silently start again, a store that no longer opens. So such a run is refused
/// before it writes anything, with the user to run as (as Postfix's commands
/// refuse to run as the wrong user).
public enum StateOwner {
    /// Throws `WrongUser` when `directory` exists and belongs to another user than
    /// the effective one. A directory that does not exist yet is ours to make.
    public static func check(_ directory: String, what: String, tool: String) throws {
        var st = stat()
        guard stat(directory, &st) == 0 else { return }
        let me = geteuid()
        guard st.st_uid != me else { return }
        let owner = userName(st.st_uid)
        throw WrongUser(description: "\(what) \(directory) belongs to \(owner), but this is \(userName(me)); run \(tool) as \(owner) (for example: runuser -u \(owner) -- \(tool) ...)")
    }

    /// `check` for a working directory and the state directory it lives under:
    /// a queue or store not made yet would be made by this run, so the state
    /// directory's owner decides then.
    public static func check(_ directory: String, within stateDirectory: String?, what: String, tool: String) throws {
        try check(directory, what: what, tool: tool)
        if let stateDirectory { try check(stateDirectory, what: "the state directory", tool: tool) }
    }

    static func userName(_ uid: uid_t) -> String {
        guard let pw = getpwuid(uid), let name = pw.pointee.pw_name else { return "uid \(uid)" }
        return String(cString: name)
    }
}

/// A run by a user other than the owner of sl's state. Exit 75: the caller keeps
/// the message, and the right user's run takes it.
public struct WrongUser: Error, CustomStringConvertible {
    public let description: String
}
