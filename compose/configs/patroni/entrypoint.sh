#!/usr/bin/env bash
# Compose's HA mode (compose/docker-compose.ha.yml): renders this node's Patroni
# configuration from the same template scripts/topology --ha uses, then runs Patroni
# (4.1.5 from PyPI, in the image built by compose/patroni.Dockerfile) as postgres.
# NODE names the node (patroni-1..3, also its host name); ETCD_HOSTS the etcd members.
set -euo pipefail
: "${NODE:?NODE must name this node}" "${ETCD_HOSTS:?ETCD_HOSTS must list the etcd members}"
CONF_DIR=/tmp/patroni
DATA_DIR=/var/lib/postgresql/data/pgdata
mkdir -p "$CONF_DIR" /var/lib/postgresql/data
cp /etc/payments/postgres/postgresql.conf "$CONF_DIR/postgresql-common.conf"
sed -e "s|@CLIENT_CIDR@|${CLIENT_CIDR}|g" -e "s|@REPL_USER@|${REPL_USER}|g" /etc/payments/postgres/pg_hba.conf > "$CONF_DIR/pg_hba.conf"
cp /etc/payments/postgres/primary/roles.psql "$CONF_DIR/roles.psql"
install -m 755 /etc/payments/patroni/post-bootstrap.sh "$CONF_DIR/patroni-post-bootstrap.sh"
sed -e "s|@NODE@|$NODE|g" -e "s|@LISTEN_HOST@|0.0.0.0|g" -e "s|@CONNECT_HOST@|$NODE|g" \
    -e "s|@REST_PORT@|8008|g" -e "s|@PG_PORT@|5432|g" -e "s|@ETCD_HOSTS@|$ETCD_HOSTS|g" \
    -e "s|@CONF_DIR@|$CONF_DIR|g" -e "s|@STATE_DIR@|/var/lib/postgresql|g" -e "s|@RUN_DIR@|/var/run/postgresql|g" \
    -e "s|@DATA_DIR@|$DATA_DIR|g" -e "s|@PG_BIN@|/usr/lib/postgresql/17/bin|g" \
    -e "s|@REPL_USER@|$REPL_USER|g" -e "s|@REPL_PASSWORD@|$REPL_PASSWORD|g" \
    -e "s|@REWIND_USER@|${REWIND_USER:-payments_rewind}|g" -e "s|@REWIND_PASSWORD@|${REWIND_PASSWORD:-rewind_password}|g" \
    /etc/payments/patroni/patroni.yml > "$CONF_DIR/patroni.yml"
mkdir -p "/var/lib/postgresql/$NODE"
chmod 600 "$CONF_DIR/patroni.yml"
exec /opt/patroni/bin/patroni "$CONF_DIR/patroni.yml"
