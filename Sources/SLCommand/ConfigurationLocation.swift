import Foundation
import SLMessage
import SLPolicy

/// Where the configuration is: `--config`, else $SL_CONFIG, else /etc/sl/sl.conf.
public enum ConfigurationLocation {
    public static let defaultPath = "/etc/sl/sl.conf"

    /// The configuration if one is named or present at the default place; nil when
    /// none exists (tools that also work alone, such as sl-encrypt-pgp -r).
    public static func loadIfPresent(_ explicit: String?) throws -> Configuration? {
        if explicit != nil { return try load(explicit) }
        let env = environmentValue("SL_CONFIG")
        if env != nil || FileManager.default.fileExists(atPath: defaultPath) { return try load(nil) }
        return nil
    }

    public static func load(_ explicit: String?) throws -> Configuration {
        let env = environmentValue("SL_CONFIG")
        let path = explicit ?? env ?? defaultPath
        guard FileManager.default.fileExists(atPath: path) else {
            throw ConfigurationError(path, 0, "no configuration file; create one (see sl.conf(5) and examples/sl.conf) or give --config FILE")
        }
        return try Configuration.load(path: path)
    }
}
