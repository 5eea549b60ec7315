#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// A whole file mapped read-only into memory. Weights are used in place from here: the kernel pages them in on
/// first touch and may drop them under pressure, so a model costs no more resident memory than its file.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let base: UnsafeRawPointer
    public let size: Int

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FormatError.unreadable(file: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw FormatError.unreadable(file: path, reason: String(cString: strerror(errno)))
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw FormatError.unreadable(file: path, reason: "not a regular file") }
        size = Int(info.st_size)
        guard size > 0 else { throw FormatError.truncated(file: path, detail: "the file is empty") }
        let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let address, address != MAP_FAILED else {
            throw FormatError.unreadable(file: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        base = UnsafeRawPointer(address)
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: base), size) }

    /// Drops this process's resident pages among the first `byteCount` bytes (whole pages only; the page holding
    /// byte `byteCount` stays) with `madvise(MADV_DONTNEED)`. The mapping is read-only and private, so nothing is
    /// lost: a later read of those bytes pages them in again from the file.
    public func releasePages(before byteCount: Int) {
        let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        let length = min(byteCount, size) / pageSize * pageSize
        guard length > 0 else { return }
        // Advice only: on failure the pages simply stay resident.
        _ = madvise(UnsafeMutableRawPointer(mutating: base), length, MADV_DONTNEED)
    }

    /// A cursor for reading little-endian values with bounds checks, starting at `offset`.
    public func reader(at offset: Int = 0) -> ByteReader { ByteReader(file: self, offset: offset) }
}

/// Reads little-endian values from a mapped file, never past its end: each read throws `truncated` naming what
/// it was reading.
public struct ByteReader {
    public let file: MappedFile
    public private(set) var offset: Int

    init(file: MappedFile, offset: Int) {
        self.file = file
        self.offset = offset
    }

    public var remaining: Int { file.size - offset }

    public mutating func read<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws -> T {
        let n = MemoryLayout<T>.size
        guard n <= remaining else {
            throw FormatError.truncated(file: file.path, detail: "\(what()) at offset \(offset) runs past the end (\(file.size) bytes)")
        }
        let value = T(littleEndian: file.base.loadUnaligned(fromByteOffset: offset, as: T.self))
        offset += n
        return value
    }

    public mutating func bytes(_ count: Int, _ what: @autoclosure () -> String) throws -> UnsafeRawBufferPointer {
        guard count >= 0, count <= remaining else {
            throw FormatError.truncated(file: file.path, detail: "\(what()) of \(count) bytes at offset \(offset) runs past the end (\(file.size) bytes)")
        }
        let buffer = UnsafeRawBufferPointer(start: file.base + offset, count: count)
        offset += count
        return buffer
    }
}
