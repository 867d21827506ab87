# The HA mode's node for Compose (compose/docker-compose.ha.yml): PostgreSQL 17.5 with
# Patroni 4.1.5 from PyPI in a virtual environment (Debian's postgres image has no
# Patroni of its own); the configuration comes from compose/configs, mounted read-only.
FROM postgres:17.5
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv curl \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/patroni \
    && /opt/patroni/bin/pip install --no-cache-dir "patroni[etcd3]==4.1.5" "psycopg[binary]==3.3.9"
USER postgres
ENTRYPOINT ["/etc/payments/patroni/entrypoint.sh"]
