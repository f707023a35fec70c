internal import CPQ
import Foundation

/// A value for a parameterised statement, sent in binary with its type, so the
/// server never guesses a type from context and bytea travels without escaping.
public enum PostgresValue: Sendable {
    case null
    case int(Int64)
    case double(Double)
    case text(String)
    case bytes([UInt8])

    /// The type OID the value is sent as (0: let the server decide, for NULL).
    var typeOID: Oid {
        switch self {
        case .null: return 0
        case .int: return 20        // int8
        case .double: return 701    // float8
        case .text: return 25       // text
        case .bytes: return 17      // bytea
        }
    }

    /// The binary send format: network byte order for numbers, the bytes as they
    /// are for text and bytea.
    var binary: [UInt8]? {
        switch self {
        case .null: return nil
        case .int(let v): return withUnsafeBytes(of: v.bigEndian, Array.init)
        case .double(let v): return withUnsafeBytes(of: v.bitPattern.bigEndian, Array.init)
        case .text(let v): return Array(v.utf8)
        case .bytes(let v): return v
        }
    }
}

/// The rows of one statement, in binary, owned until released (PQclear). Reads
/// convert by the column's type, so `int` reads int2, int4, int8 and bool alike.
public final class PostgresResult {
    let handle: OpaquePointer
    private var result: OpaquePointer { handle }
    private let api: sl_pq

    init(_ result: OpaquePointer, api: sl_pq) {
        self.handle = result
        self.api = api
    }

    deinit { api.clear(result) }

    public var rowCount: Int { Int(api.ntuples(result)) }

    /// Rows an INSERT, UPDATE or DELETE touched (PQcmdTuples).
    public var affectedRows: Int {
        guard let text = api.cmdTuples(result) else { return 0 }
        return Int(String(cString: text)) ?? 0
    }

    public func isNull(_ row: Int, _ column: Int) -> Bool { api.getisnull(result, Int32(row), Int32(column)) == 1 }

    /// The raw binary value; empty for NULL.
    public func bytes(_ row: Int, _ column: Int) -> UnsafeRawBufferPointer {
        let r = Int32(row), c = Int32(column)
        guard api.getisnull(result, r, c) == 0, let p = api.getvalue(result, r, c) else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: p, count: Int(api.getlength(result, r, c)))
    }

    private func bigEndian(_ raw: UnsafeRawBufferPointer) -> UInt64 {
        raw.reduce(0) { $0 << 8 | UInt64($1) }
    }

    public func int64(_ row: Int, _ column: Int) -> Int64 {
        let raw = bytes(row, column)
        switch raw.count {
        case 8: return Int64(bitPattern: bigEndian(raw))
        case 4: return Int64(Int32(bitPattern: UInt32(bigEndian(raw))))
        case 2: return Int64(Int16(bitPattern: UInt16(bigEndian(raw))))
        case 1: return Int64(raw[0])    // bool
        default: return 0
        }
    }

    public func double(_ row: Int, _ column: Int) -> Double {
        let raw = bytes(row, column)
        switch api.ftype(result, Int32(column)) {
        case 701: return Double(bitPattern: bigEndian(raw))
        case 700: return Double(Float(bitPattern: UInt32(bigEndian(raw))))
        default: return Double(int64(row, column))
        }
    }

    public func text(_ row: Int, _ column: Int) -> String { String(decoding: bytes(row, column), as: UTF8.self) }

    public func data(_ row: Int, _ column: Int) -> [UInt8] { Array(bytes(row, column)) }
}

extension PostgresConnection {
    /// Runs one statement with `values` as $1, $2, … and returns its rows in
    /// binary (see PostgresResult). Failures as `execute`'s.
    @discardableResult
    public func query(_ sql: String, _ values: [PostgresValue] = []) throws -> PostgresResult {
        let types = values.map(\.typeOID)
        let lengths = values.map { Int32($0.binary?.count ?? 0) }
        // An empty bytea or text still needs a non-null pointer (NULL would mean SQL
        // NULL): one byte of storage, sent with length 0.
        let payloads = values.map { v in v.binary.map { $0.isEmpty ? [0] : $0 } }
        let formats = [Int32](repeating: 1, count: values.count)
        // Each payload is pinned for the call; NULL stays a null pointer.
        func withPointers<R>(_ i: Int, _ acc: [UnsafePointer<CChar>?], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
            if i == payloads.count { return body(acc) }
            guard let p = payloads[i] else { return withPointers(i + 1, acc + [nil], body) }
            return p.withUnsafeBufferPointer { b in
                b.withMemoryRebound(to: CChar.self) { withPointers(i + 1, acc + [$0.baseAddress], body) }
            }
        }
        let result = withPointers(0, []) { pointers in
            execBinary(sql, count: values.count, types: types, values: pointers, lengths: lengths, formats: formats)
        }
        return try checked(result)
    }
}
