import Testing
import PaymentsCore

@Suite struct SQLSplitterTests {
    @Test func splitsAtTopLevelSemicolons() {
        let parts = SQLSplitter.split("CREATE TABLE a (x int);\n-- a comment; with a semicolon\nINSERT INTO a VALUES (1);  ")
        #expect(parts == ["CREATE TABLE a (x int)", "-- a comment; with a semicolon\nINSERT INTO a VALUES (1)"])
    }

    @Test func keepsQuotedAndDollarQuotedSemicolons() {
        let sql = """
            INSERT INTO t VALUES ('a;b', 'it''s; fine', "odd;name");
            CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE NOTICE 'x;y'; RETURN NEW; END $$;
            DO $body$ BEGIN PERFORM 1; END $body$;
            /* block; comment */ SELECT 1
            """
        let parts = SQLSplitter.split(sql)
        #expect(parts.count == 4)
        #expect(parts[1].hasSuffix("END $$"))
        #expect(parts[2] == "DO $body$ BEGIN PERFORM 1; END $body$")
        #expect(parts[3].hasSuffix("SELECT 1"))
    }

    @Test func dropsCommentOnlyTails() {
        #expect(SQLSplitter.split("SELECT 1;\n-- trailing comment\n") == ["SELECT 1"])
        #expect(SQLSplitter.split("  \n ; ;") == [])
    }

    @Test func parameterPlaceholdersAreNotDollarQuotes() {
        #expect(SQLSplitter.split("SELECT $1; SELECT 2") == ["SELECT $1", "SELECT 2"])
    }

    @Test func splitsTheShippedMigrations() throws {
        let migrations = try Migration.embedded()
        #expect(migrations.map(\.version) == migrations.map(\.version).sorted())
        for migration in migrations {
            #expect(!SQLSplitter.split(migration.sql).isEmpty)
        }
    }
}
