import Foundation

/// `datetime.now().strftime(format)` for transformers' `strftime_now` (Llama 3.x templates print today's date
/// with `strftime_now("%d %b %Y")`). Python's strftime is the C library's in the "C" locale, on local time; this
/// implements its common directives (and glibc's `%-d` style no-padding flag). Others are refused by name.
enum Strftime {
    private static let weekdays = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
    private static let months = ["January", "February", "March", "April", "May", "June", "July", "August",
                                 "September", "October", "November", "December"]

    static func format(_ format: String, _ date: Date, timeZone: TimeZone = .current) throws -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second, .weekday], from: date)
        let year = c.year ?? 1970, month = c.month ?? 1, day = c.day ?? 1
        let hour = c.hour ?? 0, minute = c.minute ?? 0, second = c.second ?? 0
        let weekday = (c.weekday ?? 1) - 1  // 0 = Sunday
        let dayOfYear = calendar.ordinality(of: .day, in: .year, for: date) ?? 1

        func pad(_ n: Int, _ width: Int, _ noPad: Bool, _ fill: Character = "0") -> String {
            let s = String(n)
            return noPad || s.count >= width ? s : String(repeating: fill, count: width - s.count) + s
        }

        var out = ""
        var chars = Array(format)
        var i = 0
        while i < chars.count {
            let ch = chars[i]
            guard ch == "%", i + 1 < chars.count else {
                out.append(ch)
                i += 1
                continue
            }
            var directive = chars[i + 1]
            var noPad = false
            var consumed = 2
            if directive == "-", i + 2 < chars.count {
                noPad = true
                directive = chars[i + 2]
                consumed = 3
            }
            switch directive {
            case "%": out += "%"
            case "a": out += String(weekdays[weekday].prefix(3))
            case "A": out += weekdays[weekday]
            case "b", "h": out += String(months[month - 1].prefix(3))
            case "B": out += months[month - 1]
            case "d": out += pad(day, 2, noPad)
            case "e": out += pad(day, 2, noPad, " ")
            case "m": out += pad(month, 2, noPad)
            case "y": out += pad(year % 100, 2, noPad)
            case "Y": out += String(year)
            case "H": out += pad(hour, 2, noPad)
            case "I": out += pad(hour % 12 == 0 ? 12 : hour % 12, 2, noPad)
            case "M": out += pad(minute, 2, noPad)
            case "S": out += pad(second, 2, noPad)
            case "p": out += hour < 12 ? "AM" : "PM"
            case "j": out += pad(dayOfYear, 3, noPad)
            case "w": out += String(weekday)
            case "U": out += pad((dayOfYear - 1 + 7 - weekday) / 7, 2, noPad)
            case "W": out += pad((dayOfYear - 1 + 7 - (weekday + 6) % 7) / 7, 2, noPad)
            case "c":
                out += "\(String(weekdays[weekday].prefix(3))) \(String(months[month - 1].prefix(3))) \(pad(day, 2, false, " ")) "
                out += "\(pad(hour, 2, false)):\(pad(minute, 2, false)):\(pad(second, 2, false)) \(year)"
            case "x": out += "\(pad(month, 2, false))/\(pad(day, 2, false))/\(pad(year % 100, 2, false))"
            case "X": out += "\(pad(hour, 2, false)):\(pad(minute, 2, false)):\(pad(second, 2, false))"
            case "Z", "z": break  // datetime.now() is naive: no zone to print
            case "u": out += String(weekday == 0 ? 7 : weekday)
            case "F": out += "\(year)-\(pad(month, 2, false))-\(pad(day, 2, false))"
            case "T": out += "\(pad(hour, 2, false)):\(pad(minute, 2, false)):\(pad(second, 2, false))"
            case "D": out += "\(pad(month, 2, false))/\(pad(day, 2, false))/\(pad(year % 100, 2, false))"
            default:
                throw ValueError.unsupported("the strftime directive '%\(noPad ? "-" : "")\(directive)'")
            }
            i += consumed
        }
        chars.removeAll()
        return out
    }
}
