import Foundation

// loraswitch: subcommands only; everything a library user would want lives in the library.

let commands: [Command.Type] = [GenerateCommand.self, ChatCommand.self, TokenizeCommand.self, LogitsCommand.self,
                                InspectCommand.self, BenchCommand.self, FuseCommand.self,
                                UnfuseCommand.self, TrainCommand.self, EvalCommand.self, PerplexityCommand.self,
                                ServeCommand.self]

func topUsage() -> String {
    var text = "usage: loraswitch <command> [options]\n\ncommands:\n"
    for command in commands {
        text += "  \(command.name.padding(toLength: 10, withPad: " ", startingAt: 0))\(command.summary)\n"
    }
    return text + "\n`loraswitch <command> --help` shows a command's options."
}

var argv = Array(CommandLine.arguments.dropFirst())
guard let name = argv.first else {
    printError(topUsage())
    exit(2)
}
if name == "--help" || name == "-h" || name == "help" {
    print(topUsage())
    exit(0)
}
guard let command = commands.first(where: { $0.name == name }) else {
    printError("loraswitch: unknown command '\(name)'\n\n" + topUsage())
    exit(2)
}
argv.removeFirst()
if argv.contains("--help") || argv.contains("-h") {
    print("usage: loraswitch \(command.name) \(command.usage)")
    exit(0)
}
do {
    var arguments = Arguments(argv)
    let instance = try command.init(&arguments)
    try arguments.finish()
    try instance.run()
} catch let error as UsageError {
    printError("loraswitch \(command.name): \(error.message)\nusage: loraswitch \(command.name) \(command.usage)")
    exit(2)
} catch {
    // One line, whatever the message holds: names read from a file may contain line breaks.
    let message = error.localizedDescription.replacingOccurrences(of: "\r", with: "\\r")
        .replacingOccurrences(of: "\n", with: "\\n")
    printError("loraswitch: error: \(message)")
    exit(1)
}
