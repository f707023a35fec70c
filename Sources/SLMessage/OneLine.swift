/// Text that must stay on one line wherever it is written (a header field, a log
/// or record line, a listing): every control character, CR and LF among them,
/// becomes a space. For text that came from outside and only needs to be shown.
public enum OneLine {
    public static func of(_ text: String) -> String {
        String(text.unicodeScalars.map { $0.properties.generalCategory == .control ? " " : Character($0) })
    }
}
