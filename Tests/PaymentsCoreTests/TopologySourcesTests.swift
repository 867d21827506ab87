import Foundation
import NIOCore
import Testing
@testable import PaymentsCore

/// The dashboard's parsers of what the topology's components say: PgBouncer's wire
/// messages, HAProxy's stats CSV, Patroni's /cluster. Bytes and text as the real
/// components send them (HAProxy 2.6, PgBouncer 1.18, Patroni 3.0.2).
@Suite struct TopologySourcesTests {
    func message(_ type: Character, _ fill: (inout ByteBuffer) -> Void) -> ByteBuffer {
        var body = ByteBuffer()
        fill(&body)
        var buffer = ByteBuffer()
        buffer.writeInteger(type.asciiValue!)
        buffer.writeInteger(Int32(body.readableBytes + 4))
        buffer.writeImmutableBuffer(body)
        return buffer
    }

    @Test func startupNamesUserAndDatabase() {
        var startup = PgWire.startup(user: "pgbouncer_stats", database: "pgbouncer")
        let length: Int32 = startup.readInteger()!
        #expect(Int(length) == startup.readableBytes + 4)
        #expect(startup.readInteger(as: Int32.self) == 196_608)
        let rest = startup.readString(length: startup.readableBytes)!
        #expect(rest.contains("user\0pgbouncer_stats\0database\0pgbouncer\0"))
        #expect(rest.hasSuffix("\0\0"))
    }

    @Test func splitsMessagesAndKeepsAPartialOne() throws {
        var stream = message("Z") { $0.writeInteger(UInt8(ascii: "I")) }
        let second = message("C") { $0.writeString("SHOW\0") }
        stream.writeImmutableBuffer(second.getSlice(at: 0, length: 3)!)
        var messages = try PgWire.messages(from: &stream)
        #expect(messages.map(\.type) == [UInt8(ascii: "Z")])
        stream.writeImmutableBuffer(second.getSlice(at: 3, length: second.readableBytes - 3)!)
        messages = try PgWire.messages(from: &stream)
        #expect(messages.map(\.type) == [UInt8(ascii: "C")])
        #expect(stream.readableBytes == 0)
    }

    @Test func refusesAnAbsurdLength() {
        var stream = ByteBuffer()
        stream.writeInteger(UInt8(ascii: "D"))
        stream.writeInteger(Int32(2))
        #expect(throws: PgWireError.self) { try PgWire.messages(from: &stream) }
    }

    @Test func readsRowsErrorsAndNulls() throws {
        let description = message("T") { b in
            b.writeInteger(Int16(2))
            for name in ["database", "cl_active"] {
                b.writeString(name + "\0")
                b.writeInteger(Int32(0)); b.writeInteger(Int16(0)); b.writeInteger(Int32(25)); b.writeInteger(Int16(-1))
                b.writeInteger(Int32(-1)); b.writeInteger(Int16(0))
            }
        }
        let row = message("D") { b in
            b.writeInteger(Int16(2))
            b.writeInteger(Int32(3)); b.writeString("app")
            b.writeInteger(Int32(-1))
        }
        let error = message("E") { b in
            b.writeString("SFATAL\0C08P01\0Mnot allowed\0\0")
        }
        var stream = description
        stream.writeImmutableBuffer(row)
        stream.writeImmutableBuffer(error)
        let messages = try PgWire.messages(from: &stream)
        #expect(try PgWire.columnNames(messages[0].body) == ["database", "cl_active"])
        #expect(try PgWire.values(messages[1].body) == ["app", nil])
        let (text, code) = PgWire.error(messages[2].body)
        #expect(text == "not allowed")
        #expect(code == "08P01")
    }

    @Test func poolRowFromShowPools() {
        let pool = PoolerPool(row: ["database": "resilient_payment_processor", "user": "db_user", "cl_active": "12",
                                    "cl_waiting": "3", "sv_active": "8", "sv_idle": "2", "sv_used": "1", "sv_login": "0",
                                    "maxwait": "1", "maxwait_us": "250000"])
        #expect(pool?.clientsWaiting == 3)
        #expect(pool?.maxWaitSeconds == 1.25)
        #expect(PoolerPool(row: ["cl_active": "1"]) == nil)
    }

    @Test func haproxyCSV() throws {
        let csv = """
            # pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,
            pg_read,FRONTEND,,,3,9,4096,100,0,0,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,0,0,5,,
            pg_read,replica-1,0,0,2,5,,50,0,0,,0,,0,0,0,0,UP,1,1,0,0,0,120,0,,1,2,1,,50,,2,0,,4,L7OK,
            pg_read,replica-2,0,0,0,4,,50,0,0,,0,,0,0,0,0,DOWN,1,1,0,1,1,3,3,,1,2,2,,50,,2,0,,4,* L4CON,
            pg_read,BACKEND,0,0,2,9,,100,0,0,0,0,,0,0,0,0,UP,1,1,0,,0,120,0,,1,2,0,,100,,1,0,,5,,

            """
        let servers = try HAProxyServer.parse(csv: csv)
        #expect(servers.map(\.server) == ["replica-1", "replica-2"])
        #expect(servers[0].isUp && servers[0].sessions == 2 && servers[0].check == "L7OK")
        #expect(!servers[1].isUp && servers[1].lastChangeSeconds == 3 && servers[1].check == "L4CON")
        #expect(throws: HAProxyStatsError.self) { try HAProxyServer.parse(csv: "<html>stats</html>") }
        #expect(throws: HAProxyStatsError.missingColumn("status")) { try HAProxyServer.parse(csv: "# pxname,svname\nx,y\n") }
    }

    @Test func patroniCluster() throws {
        let json = """
            {"members": [
              {"name": "node-1", "role": "leader", "state": "running", "api_url": "http://127.0.0.1:8008/patroni", "host": "127.0.0.1", "port": 5432, "timeline": 7},
              {"name": "node-2", "role": "sync_standby", "state": "streaming", "host": "127.0.0.1", "port": 5433, "timeline": 7, "lag": 0},
              {"name": "node-3", "role": "replica", "state": "stopped", "host": "127.0.0.1", "port": 5434, "lag": "unknown"}
            ], "scope": "payments"}
            """
        let cluster = try JSONDecoder().decode(PatroniCluster.self, from: Data(json.utf8))
        #expect(cluster.leader?.name == "node-1")
        #expect(cluster.syncStandby == "node-2")
        #expect(cluster.timeline == 7)
        #expect(cluster.members[1].lagBytes == 0)
        #expect(cluster.members[2].lagBytes == nil && cluster.members[2].timeline == nil)
    }
}
