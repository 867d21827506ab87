import Foundation

/// One measured figure of a `payments bench` run, with the name of the ceiling figure of
/// the same run it is compared with (pgbench, COPY, the in-process path), if any.
public struct BenchFigure: Codable, Sendable, Equatable {
    public var phase: String
    public var name: String
    public var value: Double
    public var unit: String
    public var ceiling: String?
    /// The issue's or the design's target, as text ("≥ 0.6x in-process"), if any.
    public var target: String?

    public init(phase: String, name: String, value: Double, unit: String, ceiling: String? = nil, target: String? = nil) {
        self.phase = phase
        self.name = name
        self.value = value
        self.unit = unit
        self.ceiling = ceiling
        self.target = target
    }
}

/// A whole run: when, on which code and machine, and every figure. `--json` prints it;
/// `--compare FILE` reads an earlier one.
public struct BenchReport: Codable, Sendable, Equatable {
    public var date: String
    public var commit: String
    public var cores: Int
    public var quick: Bool
    public var figures: [BenchFigure] = []

    public init(date: String, commit: String, cores: Int, quick: Bool) {
        self.date = date
        self.commit = commit
        self.cores = cores
        self.quick = quick
    }

    public func figure(_ name: String) -> BenchFigure? { figures.first { $0.name == name } }

    /// `value / ceiling` for a figure that names a ceiling measured in this run.
    public func ratio(of figure: BenchFigure) -> Double? {
        guard let name = figure.ceiling, let ceiling = self.figure(name), ceiling.value > 0 else { return nil }
        return figure.value / ceiling.value
    }

    /// A markdown table: figure, value, its ceiling in the same run, the ratio, the target.
    public func table() -> String {
        var lines = ["payments bench, \(date), commit \(commit), \(cores) cores\(quick ? ", --quick (scaled down)" : "")", "",
                     "| figure | value | ceiling in this run | ratio | target |", "|---|---|---|---|---|"]
        for f in figures {
            let ceiling = f.ceiling.flatMap { self.figure($0) }.map { "\(Self.format($0.value)) \($0.unit) \($0.name)" } ?? "-"
            let ratio = self.ratio(of: f).map { String(format: "%.2fx", $0) } ?? "-"
            lines.append("| \(f.name) | \(Self.format(f.value)) \(f.unit) | \(ceiling) | \(ratio) | \(f.target ?? "-") |")
        }
        return lines.joined(separator: "\n")
    }

    /// Each figure of this run beside the same figure of `earlier`, and their ratio.
    public func comparison(to earlier: BenchReport) -> String {
        var lines = ["compared with \(earlier.date), commit \(earlier.commit)", "",
                     "| figure | earlier | now | now / earlier |", "|---|---|---|---|"]
        for f in figures {
            guard let old = earlier.figure(f.name) ?? earlier.figures.first(where: { Self.rateless($0.name) == Self.rateless(f.name) }) else {
                lines.append("| \(f.name) | - | \(Self.format(f.value)) \(f.unit) | new |")
                continue
            }
            let ratio = old.value > 0 ? String(format: "%.2fx", f.value / old.value) : "-"
            lines.append("| \(f.name) | \(Self.format(old.value)) \(old.unit) | \(Self.format(f.value)) \(f.unit) | \(ratio) |")
        }
        return lines.joined(separator: "\n")
    }

    /// A figure's name without the rate it was paced at ("(1290/s, " becomes "(/s, "): the
    /// latency phase's rates follow each run's drain.
    static func rateless(_ name: String) -> String {
        name.replacing(/\(\d+\/s/, with: "(/s")
    }

    static func format(_ value: Double) -> String {
        if value >= 100 || value == value.rounded() {
            let formatter = NumberFormatter()
            formatter.numberStyle = .decimal
            formatter.maximumFractionDigits = 0
            return formatter.string(from: NSNumber(value: value.rounded())) ?? "\(Int(value))"
        }
        return String(format: value < 10 ? "%.2f" : "%.1f", value)
    }
}
