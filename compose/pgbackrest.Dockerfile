# PostgreSQL 17.5 with pgBackRest (Debian's, from the PostgreSQL apt repository the image
# already uses): the Compose primary archives its WAL with it, and the backup service
# takes backups with it. The configuration comes from compose/configs, mounted read-only.
FROM postgres:17.5
RUN apt-get update \
    && apt-get install -y --no-install-recommends pgbackrest \
    && rm -rf /var/lib/apt/lists/* \
    && install -d -o postgres -g postgres -m 750 /var/lib/pgbackrest /var/log/pgbackrest /var/spool/pgbackrest /tmp/pgbackrest
