import CMicroHTTPD
import Formats
import Foundation

// HTTP through GNU libmicrohttpd: its listening thread, a thread per connection (bounded by the connection limit),
// its idle timeout and its chunked encoding; this file only turns its callbacks into requests and responses.
//
// A handler runs on the connection's own thread and may block there (waiting for a generation), and so may a
// streamed body's `next`: with a thread per connection nothing else waits on it.

/// One request, its body read whole.
public struct HTTPRequest: Sendable {
    public let method: String
    /// The path without the query.
    public let path: String
    /// Header values by lowercased name.
    public let headers: [String: String]
    public let body: Data
    /// Whether the client has closed its side of the connection (checked without reading).
    public let clientGone: @Sendable () -> Bool

    public func header(_ name: String) -> String? { headers[name.lowercased()] }
}

/// A body written as it is produced (chunked). `next` returns the next piece, blocking until there is one, or nil
/// at the end; `closed` is called once when the response is over, finished or not (the client went away).
public final class StreamBody: @unchecked Sendable {
    let next: () -> Data?
    let closed: () -> Void

    public init(next: @escaping () -> Data?, closed: @escaping () -> Void) {
        self.next = next
        self.closed = closed
    }
}

public enum HTTPResponse {
    case full(status: Int, headers: [(String, String)], body: Data)
    case stream(status: Int, headers: [(String, String)], body: StreamBody)

    public static func json(_ status: Int, _ body: Data, headers: [(String, String)] = []) -> HTTPResponse {
        .full(status: status, headers: [("Content-Type", "application/json")] + headers, body: body)
    }
}

public enum HTTPServerError: Error, LocalizedError, Equatable {
    case badAddress(String)
    case cannotListen(host: String, port: Int)

    public var errorDescription: String? {
        switch self {
        case let .badAddress(host): return "--host \(host): not an IPv4 address"
        case let .cannotListen(host, port):
            return "cannot listen on \(host):\(port) (in use, or not allowed: \(String(cString: strerror(errno))))"
        }
    }
}

/// A libmicrohttpd daemon serving `handler`.
public final class HTTPServer: @unchecked Sendable {
    public typealias Handler = (HTTPRequest) -> HTTPResponse

    /// Bodies larger than this are answered 413 (read and dropped, so the connection stays in step).
    public let maxBody: Int
    /// The port it listens on (the one picked when asked for 0).
    public private(set) var port: Int = 0
    private let handler: Handler
    private var daemon: OpaquePointer?
    /// Requests begun and not yet completed.
    private let activity = NSCondition()
    private var active = 0

    /// A request being read: its body so far.
    private final class Pending {
        var body = Data()
        var tooLarge = false
    }

    /// A streamed body in flight: what is left of the last piece.
    private final class Stream: HTTPServerStreamEnding {
        let body: StreamBody
        var left = Data()
        var ended = false
        init(_ body: StreamBody) { self.body = body }
        func end() { body.closed() }
    }

    /// Starts listening on `host` (IPv4) and `port` (0: any free one) with at most `connections` connections, each
    /// closed after `timeout` seconds without traffic (0: never).
    public init(host: String, port: Int, connections: Int, timeout: Int, maxBody: Int, handler: @escaping Handler) throws {
        self.maxBody = maxBody
        self.handler = handler
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { throw HTTPServerError.badAddress(host) }
        let me = Unmanaged.passUnretained(self).toOpaque()
        let flags = UInt32(MHD_USE_THREAD_PER_CONNECTION.rawValue | MHD_USE_INTERNAL_POLLING_THREAD.rawValue
                           | MHD_USE_ITC.rawValue)
        daemon = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sockaddrPointer in
                loraswitch_mhd_start(flags, sockaddrPointer, accessCallback, me, completedCallback, me,
                                     UInt32(max(1, connections)), UInt32(max(0, timeout)))
            }
        }
        guard let daemon else { throw HTTPServerError.cannotListen(host: host, port: port) }
        self.port = Int(loraswitch_mhd_port(daemon))
    }

    /// Stops accepting connections (those open finish).
    public func quiesce() {
        if let daemon { _ = MHD_quiesce_daemon(daemon) }
    }

    /// Waits until no request is in progress (at most `timeout` seconds); whether none is.
    @discardableResult
    public func waitIdle(timeout: Double) -> Bool {
        activity.lock()
        defer { activity.unlock() }
        let deadline = Date(timeIntervalSinceNow: timeout)
        while active > 0 {
            if !activity.wait(until: deadline) { return false }
        }
        return true
    }

    fileprivate func completed() {
        activity.lock()
        active -= 1
        activity.broadcast()
        activity.unlock()
    }

    /// Stops the daemon: closes every connection and joins its threads. Streams must have ended first.
    public func stop() {
        if let daemon { MHD_stop_daemon(daemon) }
        daemon = nil
    }

    deinit { stop() }

    // MARK: - Callbacks

    fileprivate func access(_ connection: OpaquePointer, url: String, method: String,
                            upload: UnsafePointer<CChar>?, uploadSize: UnsafeMutablePointer<Int>,
                            context: UnsafeMutablePointer<UnsafeMutableRawPointer?>) -> MHD_Result {
        guard let stored = context.pointee else {
            // The headers are in; the body (if any) comes in the next calls.
            let pending = Pending()
            if let length = value(connection, "Content-Length").flatMap(Int.init), length > maxBody { pending.tooLarge = true }
            context.pointee = Unmanaged.passRetained(pending).toOpaque()
            activity.lock()
            active += 1
            activity.unlock()
            return MHD_Result.YES
        }
        let pending = Unmanaged<Pending>.fromOpaque(stored).takeUnretainedValue()
        if uploadSize.pointee > 0 {
            if !pending.tooLarge, let upload {
                if pending.body.count + uploadSize.pointee > maxBody {
                    pending.tooLarge = true
                    pending.body = Data()
                } else {
                    pending.body.append(UnsafeRawPointer(upload).assumingMemoryBound(to: UInt8.self), count: uploadSize.pointee)
                }
            }
            uploadSize.pointee = 0
            return MHD_Result.YES
        }
        let response: HTTPResponse
        if pending.tooLarge {
            response = .json(413, errorBody("the request body is larger than \(maxBody) bytes", type: "invalid_request_error",
                                            code: "request_too_large"))
        } else {
            let socket = loraswitch_mhd_socket(connection)
            let path = url.split(separator: "?", maxSplits: 1).first.map(String.init) ?? url
            let request = HTTPRequest(method: method, path: path, headers: headers(connection), body: pending.body,
                                      clientGone: { HTTPServer.closed(socket) })
            response = handler(request)
        }
        return queue(response, on: connection)
    }

    private func queue(_ response: HTTPResponse, on connection: OpaquePointer) -> MHD_Result {
        let made: OpaquePointer?
        let status: Int
        let headers: [(String, String)]
        switch response {
        case let .full(code, fields, body):
            status = code
            headers = fields
            made = body.withUnsafeBytes { bytes in
                MHD_create_response_from_buffer(bytes.count, UnsafeMutableRawPointer(mutating: bytes.baseAddress),
                                                MHD_ResponseMemoryMode.RESPMEM_MUST_COPY)
            }
        case let .stream(code, fields, body):
            status = code
            headers = fields
            let stream = Unmanaged.passRetained(Stream(body)).toOpaque()
            made = MHD_create_response_from_callback(UInt64.max, 4096, readerCallback, stream, freeCallback)
            if made == nil { freeCallback(stream) }
        }
        guard let made else { return MHD_Result.NO }
        for (name, value) in headers { _ = MHD_add_response_header(made, name, value) }
        let result = MHD_queue_response(connection, UInt32(status), made)
        MHD_destroy_response(made)
        return result
    }

    private func value(_ connection: OpaquePointer, _ name: String) -> String? {
        MHD_lookup_connection_value(connection, MHD_ValueKind.HEADER_KIND, name).map { String(cString: $0) }
    }

    private func headers(_ connection: OpaquePointer) -> [String: String] {
        final class Box { var fields: [String: String] = [:] }
        let box = Box()
        _ = MHD_get_connection_values(connection, MHD_ValueKind.HEADER_KIND, { context, _, key, value in
            guard let context, let key else { return MHD_Result.YES }
            let box = Unmanaged<Box>.fromOpaque(context).takeUnretainedValue()
            box.fields[String(cString: key).lowercased()] = value.map { String(cString: $0) } ?? ""
            return MHD_Result.YES
        }, Unmanaged.passUnretained(box).toOpaque())
        return box.fields
    }

    /// Whether the peer of `socket` has hung up (poll without waiting).
    private static func closed(_ socket: Int32) -> Bool {
        guard socket >= 0 else { return false }
        let hangUp: Int16 = 0x2000 // POLLRDHUP (Linux; needs _GNU_SOURCE in C, so not imported)
        var entry = pollfd(fd: socket, events: hangUp, revents: 0)
        guard poll(&entry, 1, 0) > 0 else { return false }
        return entry.revents & (hangUp | Int16(POLLHUP) | Int16(POLLERR)) != 0
    }

    fileprivate static func read(_ stream: UnsafeMutableRawPointer, into buffer: UnsafeMutablePointer<CChar>, max: Int) -> Int {
        let state = Unmanaged<Stream>.fromOpaque(stream).takeUnretainedValue()
        while state.left.isEmpty {
            if state.ended { return -1 } // MHD_CONTENT_READER_END_OF_STREAM
            guard let piece = state.body.next() else {
                state.ended = true
                return -1
            }
            state.left = piece
        }
        let n = min(max, state.left.count)
        state.left.withUnsafeBytes { bytes in
            UnsafeMutableRawPointer(buffer).copyMemory(from: bytes.baseAddress!, byteCount: n)
        }
        state.left.removeFirst(n)
        if state.left.isEmpty { state.left = Data() }
        return n
    }
}

/// OpenAI's error object.
public func errorBody(_ message: String, type: String, param: String? = nil, code: String? = nil) -> Data {
    struct Body: Encodable {
        struct Detail: Encodable {
            let message: String
            let type: String
            @JSONNull var param: String?
            @JSONNull var code: String?
        }

        let error: Detail
    }
    return (try? JSONEncoder().encode(Body(error: .init(message: message, type: type, param: param, code: code)))) ?? Data()
}

private let accessCallback: MHD_AccessHandlerCallback = { server, connection, url, method, _, upload, uploadSize, context in
    guard let server, let connection, let url, let method, let uploadSize, let context else { return MHD_Result.NO }
    return Unmanaged<HTTPServer>.fromOpaque(server).takeUnretainedValue()
        .access(connection, url: String(cString: url), method: String(cString: method), upload: upload,
                uploadSize: uploadSize, context: context)
}

private let completedCallback: MHD_RequestCompletedCallback = { server, _, context, _ in
    guard let server, let context, let pending = context.pointee else { return }
    Unmanaged<AnyObject>.fromOpaque(pending).release()
    context.pointee = nil
    Unmanaged<HTTPServer>.fromOpaque(server).takeUnretainedValue().completed()
}

private let readerCallback: MHD_ContentReaderCallback = { stream, _, buffer, max in
    guard let stream, let buffer else { return -2 }
    return HTTPServer.read(stream, into: buffer, max: max)
}

private let freeCallback: MHD_ContentReaderFreeCallback = { stream in
    guard let stream else { return }
    let state = Unmanaged<AnyObject>.fromOpaque(stream).takeRetainedValue()
    (state as? HTTPServerStreamEnding)?.end()
}

/// How the free callback ends a stream without naming the private class.
protocol HTTPServerStreamEnding: AnyObject {
    func end()
}
