import Foundation

/// The lines of a JSON Lines file that hold anything, each with its number (from 1): a UTF-8 byte order mark before
/// the first line and a carriage return before a line feed are not part of a line, and lines of only spaces and tabs
/// are skipped (their numbers still count).
public struct JSONLines: Sequence {
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) { self.bytes = bytes }

    /// The file at `path`, read whole.
    public init(path: String) throws {
        do {
            bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw Unreadable(reason: FileManager.default.fileExists(atPath: path) ? error.localizedDescription : "no such file")
        }
    }

    /// Why a file could not be read: "no such file", or the system's reason.
    public struct Unreadable: Error {
        public let reason: String
    }

    public struct Iterator: IteratorProtocol {
        let bytes: [UInt8]
        var start: Int
        var number = 0

        public mutating func next() -> (number: Int, line: ArraySlice<UInt8>)? {
            while start < bytes.count {
                let end = bytes[start...].firstIndex(of: 0x0A) ?? bytes.count
                number += 1
                var line = bytes[start..<end]
                start = end + 1
                if line.last == 0x0D { line = line.dropLast() }
                if line.contains(where: { $0 != 0x20 && $0 != 0x09 && $0 != 0x0D }) { return (number, line) }
            }
            return nil
        }
    }

    public func makeIterator() -> Iterator {
        Iterator(bytes: bytes, start: bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0)
    }
}
