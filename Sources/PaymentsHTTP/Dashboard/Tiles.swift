import PaymentsCore

/// One tile per component, from what a collection saw. A source that did not answer
/// makes its tiles "unknown" with the reason, never "down": down is something seen.
enum Tiles {
    typealias Tile = DashboardState.Tile

    /// "payments-replica-1" → "replica-1": the seed's nodes carry the cluster's prefix.
    static func displayName(_ node: String) -> String {
        node.hasPrefix("payments-") ? String(node.dropFirst("payments-".count)) : node
    }

    static func nodes(_ observation: Observation, replicasSeen: inout Set<String>, membersSeen: inout Set<String>) -> [Tile] {
        var streaming: [String: QueueStats.Replica] = [:]
        var statsError: String?
        switch observation.replication {
        case let .success(replicas): for replica in replicas { streaming[displayName(replica.name)] = replica }
        case let .failure(error): statsError = describe(error)
        }
        if case let .success(cluster)? = observation.patroni {
            membersSeen.formUnion(cluster.members.map(\.name))
            // A member whose Patroni is gone (its machine lost) leaves /cluster: still a tile.
            let gone = membersSeen.subtracting(cluster.members.map(\.name)).sorted().map {
                Tile(name: $0, kind: "node", status: "down", detail: "not in the cluster (Patroni gone)")
            }
            return (cluster.members.map { member in
                var tile = Tile(name: member.name, kind: "node", status: status(ofMember: member.state),
                                role: member.role == "leader" ? "primary" : member.role)
                tile.lagBytes = member.lagBytes
                if member.role == "leader" {
                    tile.detail = member.timeline.map { "timeline \($0)" }
                } else if let replica = streaming[member.name] {
                    tile.detail = replica.state
                    tile.lagSeconds = replica.replayLagSeconds
                } else {
                    tile.detail = statsError == nil ? "not streaming from the leader" : "replication unknown"
                }
                if tile.status != "up" { tile.detail = member.state }
                return tile
            } + gone).sorted { $0.name < $1.name }
        }
        var tiles: [Tile] = []
        if let statsError {
            tiles.append(Tile(name: "primary", kind: "node", status: "unknown", role: "primary", detail: statsError))
            for name in replicasSeen.sorted() {
                tiles.append(Tile(name: name, kind: "node", status: "unknown", role: "replica", detail: "replication unknown"))
            }
            return tiles
        }
        tiles.append(Tile(name: "primary", kind: "node", status: "up", role: "primary", detail: "\(streaming.count) streaming"))
        replicasSeen.formUnion(streaming.keys)
        for name in replicasSeen.sorted() {
            if let replica = streaming[name] {
                var tile = Tile(name: name, kind: "node", status: replica.state == "streaming" ? "up" : "down",
                                role: "replica", detail: replica.state)
                tile.lagBytes = replica.replayLagBytes
                tile.lagSeconds = replica.replayLagSeconds
                tiles.append(tile)
            } else {
                tiles.append(Tile(name: name, kind: "node", status: "down", role: "replica", detail: "not streaming to the primary"))
            }
        }
        return tiles
    }

    /// Patroni's member states: 3.0 says running, 4 says streaming for a replica;
    /// starting, stopping and restarting are neither up nor down yet.
    static func status(ofMember state: String) -> String {
        switch state {
        case "running", "streaming", "in archive recovery": "up"
        case "starting", "stopping", "restarting", "creating replica", "running custom bootstrap script": "unknown"
        default: "down"
        }
    }

    static func haproxy(_ result: Result<[HAProxyServer], any Error>?) -> Tile {
        var tile = Tile(name: "haproxy", kind: "haproxy", status: "not_configured",
                        detail: "no --haproxy-stats URL given")
        switch result {
        case nil: break
        case let .success(servers)?:
            tile.status = "up"
            tile.backends = servers
            let up = servers.filter(\.isUp).count
            tile.detail = "\(up) of \(servers.count) servers up"
        case let .failure(error)?:
            tile.status = "down"
            tile.detail = describe(error)
        }
        return tile
    }

    static func pooler(_ name: String, _ result: Result<[PoolerPool], any Error>) -> Tile {
        var tile = Tile(name: name, kind: "pooler", status: "up")
        switch result {
        case let .success(pools):
            tile.pools = pools
            let clients = pools.reduce(0) { $0 + $1.clientsActive }, waiting = pools.reduce(0) { $0 + $1.clientsWaiting }
            let servers = pools.reduce(0) { $0 + $1.serversActive + $1.serversIdle + $1.serversUsed }
            tile.detail = "\(clients) clients, \(waiting) waiting, \(servers) servers"
        case let .failure(error):
            if case .noCredentials? = error as? PgBouncerAdminError {
                tile.status = "no_credentials"
            } else if case .unreachable? = error as? PgBouncerAdminError {
                tile.status = "down"
            } else {
                tile.status = "unknown"
            }
            tile.detail = describe(error)
        }
        return tile
    }

    /// This process, then every other serve holding running jobs (from the queue's lease
    /// owners: a serve that holds none, or serves the API only, is not seen from here).
    /// The start of every other serve's tile name.
    static let otherServePrefix = "serve "

    static func serves(totals: WorkerMetrics.Totals, concurrency: Int?, owner: String?,
                       owners: Result<[String: Int], any Error>, clocks: [ClockReading] = []) -> [Tile] {
        var detail = concurrency.map { "\(totals.inFlight) of \($0) in flight" } ?? "no workers"
        // The widest gap between this serve's clock and the others' (primary, a replica, the gateway).
        if let (a, b, skew) = ClockSkew.widest(clocks, local: "this serve") {
            let apart = String(format: "%.3f s", skew)
            detail += skew > ClockSkew.margin
                ? " · CLOCKS \(apart) apart (\(a), \(b)): past the \(Int(ClockSkew.margin)) s margin"
                : " · clocks within \(apart)"
        }
        var tiles = [Tile(name: "serve (this process)", kind: "serve", status: "up",
                          role: concurrency == nil ? "API only" : "API + workers", detail: detail)]
        if case let .success(held) = owners {
            for (other, jobs) in held.sorted(by: { $0.key < $1.key }) where other != owner {
                // host/pid/tag → "serve pid 1234 on host"
                let parts = other.split(separator: "/")
                let name = otherServePrefix + (parts.count >= 2 ? "pid \(parts[1]) on \(parts[0])" : other)
                tiles.append(Tile(name: name, kind: "serve", status: "up", role: "another process",
                                  detail: "\(jobs) jobs held"))
            }
        }
        return tiles
    }

    /// The WAL archive (the primary's pg_stat_archiver) and the newest backup: down while
    /// archiving fails (a restore's reach stops growing), not configured without archiving.
    static func backups(_ archive: Result<ArchiveHealth?, any Error>, lastBackup: Result<LastBackup?, any Error>?) -> Tile {
        var tile = Tile(name: "backups", kind: "archive", status: "up")
        var parts: [String] = []
        switch archive {
        case let .success(health?):
            if health.mode == "off" { tile.status = "not_configured" } else if health.isFailing { tile.status = "down" }
            parts.append("WAL archive: \(health.summary)")
        case .success(nil): tile.status = "unknown"
        case let .failure(error): tile.status = "unknown"; parts.append("archiver unknown: \(describe(error))")
        }
        switch lastBackup {
        case nil: parts.append("last backup: no repository given (--backup-repo)")
        case .success(nil)?: parts.append("no backup yet")
        case let .success(backup?)?: parts.append("last backup: \(backup.summary())")
        case let .failure(error)?: parts.append("last backup unknown: \(error)")
        }
        tile.detail = parts.joined(separator: "; ")
        return tile
    }

    static func gateway(_ result: Result<Void, any Error>?, url: String?) -> Tile {
        switch result {
        case nil: Tile(name: "gateway", kind: "gateway", status: "up", detail: "simulated in this process")
        case .success?: Tile(name: "gateway", kind: "gateway", status: "up", detail: url)
        case let .failure(error)?: Tile(name: "gateway", kind: "gateway", status: "down", detail: describe(error))
        }
    }
}
