// Bulk encryption in process with librnp. GnuPG (through GPGME) stays the authority
// on which key a recipient gets (KeySelection.swift); the chosen public key is
// exported from GnuPG once and imported here, and every message is then encrypted
// without starting a gpg process.
internal import CRNP
#if canImport(Glibc)
import Glibc
#endif
import SLMessage

extension PGPError {
    /// Turns an rnp result into words; nil for success.
    static func check(rnp result: rnp_result_t, _ what: String) -> PGPError? {
        guard result != 0 else { return nil }
        return PGPError("\(what): \(String(cString: rnp_result_to_string(result)))")
    }
}

/// An in-memory rnp keyring holding only public keys GnuPG selected. Owns the
/// `rnp_ffi_t` and every handle made from it; nothing of rnp escapes this file.
/// Not thread-safe: one per PGPKeyring, which is one per worker.
final class RNPKeyring {
    private let ffi: rnp_ffi_t
    private var imported = Set<String>()

    init() throws {
        var f: rnp_ffi_t?
        // "GPG" is the transferable-key format gpg exports; nothing is read from disk.
        if let e = PGPError.check(rnp: rnp_ffi_create(&f, "GPG", "GPG"), "cannot start librnp") { throw e }
        guard let f else { throw PGPError("cannot start librnp") }
        ffi = f
    }

    deinit { rnp_ffi_destroy(ffi) }

    func contains(fingerprint: String) -> Bool { imported.contains(fingerprint.uppercased()) }

    /// Imports public key packets (as GnuPG exported them) for `fingerprint`; a key
    /// already imported is not read again.
    func importPublicKey(fingerprint: String, keyData: Bytes) throws {
        let f = fingerprint.uppercased()
        guard !imported.contains(f) else { return }
        var input: rnp_input_t?
        let made = keyData.withUnsafeBufferPointer { buf in
            rnp_input_from_memory(&input, buf.baseAddress, buf.count, true)
        }
        if let e = PGPError.check(rnp: made, "cannot read key \(f) into librnp") { throw e }
        defer { rnp_input_destroy(input) }
        if let e = PGPError.check(rnp: rnp_import_keys(ffi, input, UInt32(RNP_LOAD_SAVE_PUBLIC_KEYS), nil),
                                  "librnp cannot import key \(f)") { throw e }
        imported.insert(f)
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
        if let e = PGPError.check(rnp: rnp_input_from_callback(&rinput, readFromDescriptor, nil, sourceContext),
                                  "cannot wrap the message for librnp") { throw e }
        defer { rnp_input_destroy(rinput) }
        var routput: rnp_output_t?
        if let e = PGPError.check(rnp: rnp_output_to_callback(&routput, writeToDescriptor, nil, sinkContext),
                                  "cannot wrap the output for librnp") { throw e }
        defer { rnp_output_destroy(routput) }
        var op: rnp_op_encrypt_t?
        if let e = PGPError.check(rnp: rnp_op_encrypt_create(&op, ffi, rinput, routput), "cannot start librnp encryption") { throw e }
        defer { rnp_op_encrypt_destroy(op) }
        for f in fingerprints {
            var key: rnp_key_handle_t?
            if let e = PGPError.check(rnp: rnp_locate_key(ffi, "fingerprint", f.uppercased(), &key), "librnp cannot look up key \(f)") { throw e }
            guard let key else { throw PGPError("key \(f) was not imported into librnp") }
            defer { rnp_key_handle_destroy(key) }
            // rnp chooses the key's usable encryption subkey, as gpg does; a key it
            // finds unusable fails the whole message, never just that recipient.
            if let e = PGPError.check(rnp: rnp_op_encrypt_add_recipient(op, key), "librnp refused key \(f)") {
                throw RecipientKeyError(recipient: f, problem: "key refused by librnp: \(e.description)")
            }
        }
        let settings: [(rnp_result_t, String)] = [
            (rnp_op_encrypt_set_armor(op, true), "armor"),
            (rnp_op_encrypt_set_cipher(op, "AES256"), "cipher AES256"),
            // Explicit: SEIPD v1 with MDC, which every gpg 2.2 reads; never AEAD.
            (rnp_op_encrypt_set_aead(op, "None"), "no AEAD"),
            (rnp_op_encrypt_set_compression(op, "ZLIB", 6), "ZLIB compression"),
            (rnp_op_encrypt_set_file_name(op, ""), "empty file name"),
            (rnp_op_encrypt_set_file_mtime(op, 0), "no file time"),
        ]
        for (result, what) in settings {
            if let e = PGPError.check(rnp: result, "librnp setting \(what)") { throw e }
        }
        let result = rnp_op_encrypt_execute(op)
        if let error = source.error { throw PGPError("cannot read the message to encrypt: \(String(cString: strerror(error)))") }
        if let error = sink.error { throw PGPError("cannot write the encrypted message: \(String(cString: strerror(error)))") }
        if let e = PGPError.check(rnp: result, "encryption failed") { throw e }
        if let e = PGPError.check(rnp: rnp_output_finish(routput), "encryption failed") { throw e }
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
    for b in bytes where b != 0x0D { out.append(b) }
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
