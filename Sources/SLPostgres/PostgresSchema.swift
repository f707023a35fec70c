import Foundation
import SLMessage

/// A versioned schema for one part of sl (the TLS cache now, the escrow store
/// later) in a shared database. The table sl_schema holds one row per part with
/// the version its tables are at. Tables are created and changed only by an
/// explicit migrate command, never implicitly by whichever program starts first:
/// two packers racing to create a table would each see the other half-done.
public struct PostgresSchema: Sendable {
    /// The part's name in sl_schema ("tls_cache").
    public let component: String
    /// Statements that bring the schema from version i to i + 1, for each i.
    public let steps: [[String]]
    /// The command an administrator runs to migrate, named in errors.
    public let migrateCommand: String

    public init(component: String, steps: [[String]], migrateCommand: String) {
        self.component = component; self.steps = steps; self.migrateCommand = migrateCommand
    }

    /// The version this build of sl reads and writes.
    public var current: Int { steps.count }

    /// The version in the database; 0 when this part (or sl_schema) is not there yet.
    public func installedVersion(on db: PostgresConnection) throws -> Int {
        do {
            let rows = try db.execute("SELECT version FROM sl_schema WHERE component = $1", [component])
            guard let text = rows.first?.first ?? nil else { return 0 }
            return Int(text) ?? 0
        } catch let e as PostgresError where e.sqlState == "42P01" {   // undefined_table
            return 0
        }
    }

    /// Throws unless the database holds exactly the version this build reads.
    public func require(on db: PostgresConnection) throws {
        let installed = try installedVersion(on: db)
        guard installed != current else { return }
        throw PostgresSchemaError(location: db.location, component: component, installed: installed,
                                  current: current, migrateCommand: migrateCommand)
    }

    /// Brings the schema to the current version, one step per transaction-held
    /// lock: a second migrator waits on the advisory lock, then finds nothing to do.
    /// Returns the versions before and after.
    @discardableResult
    public func migrate(on db: PostgresConnection) throws -> (from: Int, to: Int) {
        try db.transaction {
            // One lock for every part of sl: migrations are rare and short.
            try db.execute("SELECT pg_advisory_xact_lock($1)", [String(Self.advisoryLock)])
            try db.execute("""
                CREATE TABLE IF NOT EXISTS sl_schema (
                    component text PRIMARY KEY,
                    version integer NOT NULL,
                    migrated timestamptz NOT NULL DEFAULT now())
                """)
            let from = try installedVersion(on: db)
            guard from <= current else {
                throw PostgresSchemaError(location: db.location, component: component, installed: from,
                                          current: current, migrateCommand: migrateCommand)
            }
            for step in steps[from...] { for statement in step { try db.execute(statement) } }
            try db.execute("""
                INSERT INTO sl_schema (component, version) VALUES ($1, $2)
                ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version, migrated = now()
                """, [component, String(current)])
            return (from, current)
        }
    }

    /// "sl" in ASCII: the key of the advisory lock migrations hold.
    static let advisoryLock: Int64 = 0x736C
}

/// The database's schema is missing, older or newer than this build of sl: a
/// configuration matter (78), with the command that puts it right.
public struct PostgresSchemaError: SysexitReporting, CustomStringConvertible, Equatable {
    public let location: String
    public let component: String
    public let installed: Int
    public let current: Int
    public let migrateCommand: String

    public var description: String {
        if installed == 0 {
            return "\(location): the \(component) schema is not in this database; run \(migrateCommand)"
        }
        if installed < current {
            return "\(location): the \(component) schema is at version \(installed), this sl needs \(current); run \(migrateCommand)"
        }
        return "\(location): the \(component) schema is at version \(installed), newer than this sl (\(current)); upgrade sl"
    }

    public var sysexit: Sysexit { .config }
}
