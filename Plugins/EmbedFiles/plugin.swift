import Foundation
import PackagePlugin

/// Compiles text files into the target as Swift string constants, so a `payments` binary
/// copied anywhere (a container image, /usr/local/bin) carries its migrations and its
/// OpenAPI document: nothing is looked up in the build folder at run time.
///
/// - PaymentsCore gets the package's top-level `Migrations/*.sql` as `EmbeddedMigrations`.
/// - PaymentsHTTP gets its `openapi.yaml` and `dashboard.html` as `EmbeddedHTTPFiles`.
@main
struct EmbedFiles: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let enumName: String
        let inputs: [URL]
        switch target.name {
        case "PaymentsCore":
            enumName = "EmbeddedMigrations"
            let folder = context.package.directoryURL.appending(path: "Migrations")
            inputs = try FileManager.default.contentsOfDirectory(atPath: folder.path)
                .filter { $0.hasSuffix(".sql") }
                .sorted()
                .map { folder.appending(path: $0) }
        case "PaymentsHTTP":
            enumName = "EmbeddedHTTPFiles"
            inputs = ["openapi.yaml", "Dashboard/dashboard.html"].map { target.directoryURL.appending(path: $0) }
        default:
            Diagnostics.error("EmbedFiles knows no files for target \(target.name)")
            return []
        }
        let output = context.pluginWorkDirectoryURL.appending(path: "\(enumName).swift")
        return [
            .buildCommand(
                displayName: "Embedding \(inputs.count) file(s) as \(enumName)",
                executable: try context.tool(named: "EmbedFilesTool").url,
                arguments: [enumName, output.path] + inputs.map(\.path),
                inputFiles: inputs,
                outputFiles: [output])
        ]
    }
}
