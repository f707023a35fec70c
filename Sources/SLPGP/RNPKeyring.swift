// Bulk encryption in process with librnp. GnuPG (through GPGME) stays the authority
// on which keyring key a recipient gets (KeySelection.swift); the chosen public key
// is exported from GnuPG once and imported here, and every message is then encrypted
// without starting a gpg process. Keys pinned in address books come here directly
// and are checked by librnp's own key queries.
internal import CRNP
import Foundation
import SLMessage

/// librnp's function table, loaded the first time a run needs it (CRNP/sl_rnp.h).
enum RNPLibrary {
    static func load() throws -> sl_rnp {
        var error: UnsafePointer<CChar>?
        guard let table = sl_rnp_load(&error) else {
            throw PGPHomeError(description: "cannot load librnp, which sl-encrypt-pgp encrypts with: \(error.map { String(cString: $0) } ?? "unknown error") (apt-get install librnp0)")
        }
        return table.pointee
    }

    /// Loads librnp on another thread, so that a run that will encrypt pays for
    /// Botan's start-up while gpg selects its keys.
    static func preload() {
        Thread { _ = try? load() }.start()
    }
}

extension PGPError {
    /// Turns an rnp result into words; nil for success.
    static func check(rnp result: rnp_result_t, _ what: String, _ api: sl_rnp) -> PGPError? {
        guard result != 0 else { return nil }
        return PGPError("\(what): \(api.result_to_string(result).map { String(cString: $0) } ?? "error \(result)")")
    }
}

/// What librnp makes of a key in its keyring: enough to apply sl's selection rules
/// to a key no GnuPG keyring vouches for (one pinned in an address book), and to
/// check that librnp would encrypt to a subkey GnuPG calls usable.
struct RNPKeyFacts {
    let fingerprint: String
    /// Self-signatures verify, and the key is neither revoked nor expired.
    let isValid: Bool
    let isRevoked: Bool
    let isExpired: Bool
    /// The fingerprint of the key librnp encrypts to (the usable encryption subkey
    /// it prefers, or the primary key), nil when there is none.
    let encryptionKey: String?
    let userIDs: [UserID]

    struct UserID {
        /// The whole user ID, as "Name <address>" or a bare address.
        let text: String
        let isRevoked: Bool
        let isValid: Bool
    }
}

/// An in-memory rnp keyring holding only public keys: those GnuPG selected, and
/// those pinned in address books. Owns the `rnp_ffi_t` and every handle made from
/// it; nothing of rnp escapes this file. Not thread-safe: one per PGPKeyring, which
/// is one per worker.
final class RNPKeyring {
    private let ffi: rnp_ffi_t
    private let api: sl_rnp

    /// Botan (librnp's cryptography) mlocks a pool for secret buffers the first time
    /// a keyring is made: 2.3 ms of every run on the development VM, against 0.2 ms
    /// without it, when encrypting a 2 KB message takes 0.6 ms. What it would keep
    /// out of swap here is a message's session key, and the message it protects
    /// lies in ordinary memory and staged files anyway. An administrator's own
    /// BOTAN_MLOCK_POOL_SIZE is kept. Call before other threads start (setenv).
    static func skipMemoryLockPool() {
        setenv("BOTAN_MLOCK_POOL_SIZE", "0", 0)
    }

    init() throws {
        api = try RNPLibrary.load()
        var f: rnp_ffi_t?
        // "GPG" is the transferable-key format gpg exports; nothing is read from disk.
        if let e = PGPError.check(rnp: api.ffi_create(&f, "GPG", "GPG"), "cannot start librnp", api) { throw e }
        guard let f else { throw PGPError("cannot start librnp") }
        ffi = f
    }

    deinit { _ = api.ffi_destroy(ffi) }

    /// Imports public keys (binary or armored, one or several) into the keyring. A
    /// key already there is merged, so a revocation learnt from either side sticks.
    func importPublicKeys(_ keyData: Bytes, source: String) throws {
        guard !keyData.isEmpty else { return }
        var input: rnp_input_t?
        let made = keyData.withUnsafeBufferPointer { buf in
            api.input_from_memory(&input, buf.baseAddress, buf.count, true)
        }
        if let e = PGPError.check(rnp: made, "cannot read \(source) into librnp", api) { throw e }
        defer { _ = api.input_destroy(input) }
        if let e = PGPError.check(rnp: api.import_keys(ffi, input, UInt32(RNP_LOAD_SAVE_PUBLIC_KEYS), nil),
                                  "librnp cannot import \(source)", api) { throw e }
    }

    /// The key with `fingerprint` as librnp sees it, or nil when it is not here.
    func facts(fingerprint: String) throws -> RNPKeyFacts? {
        guard let key = try locate(fingerprint) else { return nil }
        defer { _ = api.key_handle_destroy(key) }
        func flag(_ call: (rnp_key_handle_t?, UnsafeMutablePointer<Bool>?) -> rnp_result_t, _ what: String) throws -> Bool {
            var b = false
            if let e = PGPError.check(rnp: call(key, &b), "librnp cannot tell whether key \(fingerprint) is \(what)", api) { throw e }
            return b
        }
        var userIDs: [RNPKeyFacts.UserID] = []
        var count = 0
        if let e = PGPError.check(rnp: api.key_get_uid_count(key, &count), "librnp cannot count the user IDs of \(fingerprint)", api) { throw e }
        for i in 0..<count {
            var text: UnsafeMutablePointer<CChar>?
            guard api.key_get_uid_at(key, i, &text) == 0, let text else { continue }
            let uid = String(cString: text)
            api.buffer_destroy(text)
            var handle: rnp_uid_handle_t?
            guard api.key_get_uid_handle_at(key, i, &handle) == 0, let handle else { continue }
            defer { _ = api.uid_handle_destroy(handle) }
            var revoked = true, valid = false
            _ = api.uid_is_revoked(handle, &revoked)
            _ = api.uid_is_valid(handle, &valid)
            userIDs.append(.init(text: uid, isRevoked: revoked, isValid: valid))
        }
        return RNPKeyFacts(fingerprint: fingerprint.uppercased(),
                           isValid: try flag(api.key_is_valid, "valid"),
                           isRevoked: try flag(api.key_is_revoked, "revoked"),
                           isExpired: try flag(api.key_is_expired, "expired"),
                           encryptionKey: try encryptionKey(of: key), userIDs: userIDs)
    }

    /// The key librnp picks to encrypt to for this primary key: what
    /// rnp_op_encrypt_add_recipient will use.
    private func encryptionKey(of key: rnp_key_handle_t) throws -> String? {
        var chosen: rnp_key_handle_t?
        guard api.key_get_default_key(key, "encrypt", 0, &chosen) == 0, let chosen else { return nil }
        defer { _ = api.key_handle_destroy(chosen) }
        var fpr: UnsafeMutablePointer<CChar>?
        if let e = PGPError.check(rnp: api.key_get_fprint(chosen, &fpr), "librnp cannot give a fingerprint", api) { throw e }
        defer { api.buffer_destroy(fpr) }
        return fpr.map { String(cString: $0).uppercased() }
    }

    private func locate(_ fingerprint: String) throws -> rnp_key_handle_t? {
        var key: rnp_key_handle_t?
        if let e = PGPError.check(rnp: api.locate_key(ffi, "fingerprint", fingerprint.uppercased(), &key),
                                  "librnp cannot look up key \(fingerprint)", api) { throw e }
        return key
    }

    /// Encrypts what `input` holds from its current offset to end of file to the keys
    /// with `fingerprints` (imported before), writing ASCII-armored OpenPGP with LF
    /// line endings (as gpg writes it) to `output`. Both descriptors stay owned by the
    /// caller; data streams through librnp's buffers, never whole in memory.
    ///
    /// The message is what gpg 2.2 reads and writes by default: a public-key session
    /// key packet per recipient and a SEIPD v1 packet (with MDC, never AEAD) under
    /// AES-256, around ZLIB-compressed (level 6) literal data.
    ///
    /// Compression, measured (rnp 0.16 on 2 cores, 10 MB inputs): none 0.05 s;
    /// ZLIB or ZIP level 6 0.29 s on base64 (an attachment), 0.03 s on text; gpg
    /// itself 0.29 s on the same base64. Without it, the mail grows by a third for
    /// base64 attachments (13.6 MB against 10.3 MB armored) and three times for
    /// text: mail is sized against quotas and limits, so sl keeps what gpg sends
    /// (ZLIB, its default with keys gpg made) and stays at gpg's speed on the
    /// largest messages. ZIP was no faster; level 1 saved 0.05 s but wrote 2% (base64)
    /// to 24% (text) more.
    func encrypt(input: Int32, output: Int32, to fingerprints: [String]) throws {
        precondition(!fingerprints.isEmpty, "encrypting to nobody")
        let source = DescriptorStream(fd: input)
        let sink = DescriptorStream(fd: output)
        let sourceContext = Unmanaged.passUnretained(source).toOpaque()
        let sinkContext = Unmanaged.passUnretained(sink).toOpaque()
        // librnp calls back into both until its handles are destroyed (the defers
        // below, which run before this one): they must live that long.
        defer { withExtendedLifetime(source) {}; withExtendedLifetime(sink) {} }
        var rinput: rnp_input_t?
        if let e = PGPError.check(rnp: api.input_from_callback(&rinput, readFromDescriptor, nil, sourceContext),
                                  "cannot wrap the message for librnp", api) { throw e }
        defer { _ = api.input_destroy(rinput) }
        var routput: rnp_output_t?
        if let e = PGPError.check(rnp: api.output_to_callback(&routput, writeToDescriptor, nil, sinkContext),
                                  "cannot wrap the output for librnp", api) { throw e }
        defer { _ = api.output_destroy(routput) }
        var op: rnp_op_encrypt_t?
        if let e = PGPError.check(rnp: api.op_encrypt_create(&op, ffi, rinput, routput), "cannot start librnp encryption", api) { throw e }
        defer { _ = api.op_encrypt_destroy(op) }
        for f in fingerprints {
            guard let key = try locate(f) else { throw PGPError("key \(f) was not imported into librnp") }
            defer { _ = api.key_handle_destroy(key) }
            // rnp chooses the key's usable encryption subkey, as gpg does. Every key
            // was checked for one when it was selected (facts(fingerprint:)), so a
            // refusal here is librnp failing, not a recipient's key.
            if let e = PGPError.check(rnp: api.op_encrypt_add_recipient(op, key), "librnp refused key \(f)", api) { throw e }
        }
        let settings: [(rnp_result_t, String)] = [
            (api.op_encrypt_set_armor(op, true), "armor"),
            (api.op_encrypt_set_cipher(op, "AES256"), "cipher AES256"),
            // Explicit: SEIPD v1 with MDC, which every gpg 2.2 reads; never AEAD.
            (api.op_encrypt_set_aead(op, "None"), "no AEAD"),
            (api.op_encrypt_set_compression(op, "ZLIB", 6), "ZLIB compression"),
            (api.op_encrypt_set_file_name(op, ""), "empty file name"),
            (api.op_encrypt_set_file_mtime(op, 0), "no file time"),
        ]
        for (result, what) in settings {
            if let e = PGPError.check(rnp: result, "librnp setting \(what)", api) { throw e }
        }
        let result = api.op_encrypt_execute(op)
        if let error = source.error { throw PGPError("cannot read the message to encrypt: \(String(cString: strerror(error)))") }
        if let error = sink.error { throw PGPError("cannot write the encrypted message: \(String(cString: strerror(error)))") }
        if let e = PGPError.check(rnp: result, "encryption failed", api) { throw e }
        if let e = PGPError.check(rnp: api.output_finish(routput), "encryption failed", api) { throw e }
        if let error = sink.error { throw PGPError("cannot write the encrypted message: \(String(cString: strerror(error)))") }
    }
}

/// A caller's file descriptor seen by rnp's callbacks, and the first errno met.
private final class DescriptorStream {
    let fd: Int32
    var error: Int32?
    init(fd: Int32) { self.fd = fd }
}

private func readFromDescriptor(_ context: UnsafeMutableRawPointer?, _ buf: UnsafeMutableRawPointer?, _ len: Int,
                                _ count: UnsafeMutablePointer<Int>?) -> Bool {
    guard let context, let count else { return false }
    let stream = Unmanaged<DescriptorStream>.fromOpaque(context).takeUnretainedValue()
    while true {
        let n = read(stream.fd, buf, len)
        if n >= 0 { count.pointee = n; return true }
        if errno == EINTR { continue }
        stream.error = errno
        return false
    }
}

/// Writes rnp's armor without its carriage returns: gpg writes LF, and the
/// PGP/MIME builder gives the whole message one line-ending convention from there.
/// Armor is ASCII lines, so a CR is only ever part of a line ending.
private func writeToDescriptor(_ context: UnsafeMutableRawPointer?, _ buf: UnsafeRawPointer?, _ len: Int) -> Bool {
    guard let context else { return false }
    let stream = Unmanaged<DescriptorStream>.fromOpaque(context).takeUnretainedValue()
    guard len > 0, let buf else { return true }
    let bytes = UnsafeRawBufferPointer(start: buf, count: len)
    var out = [UInt8]()
    out.reserveCapacity(len)
    // Copy the runs between carriage returns whole (memchr finds them).
    var start = 0
    while start < len {
        let rest = UnsafeRawBufferPointer(rebasing: bytes[start...])
        guard let hit = memchr(rest.baseAddress!, 0x0D, rest.count) else {
            out.append(contentsOf: rest)
            break
        }
        let cr = start + rest.baseAddress!.distance(to: UnsafeRawPointer(hit))
        out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start..<cr]))
        start = cr + 1
    }
    var done = 0
    while done < out.count {
        let n = out.withUnsafeBytes { write(stream.fd, $0.baseAddress! + done, out.count - done) }
        if n > 0 { done += n; continue }
        if n < 0 && errno == EINTR { continue }
        stream.error = n < 0 ? errno : EIO
        return false
    }
    return true
}
