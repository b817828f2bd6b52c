#!/bin/sh
# PostgreSQL for docker-compose.yml: a first start makes the cluster with the password from
# /run/secrets/pg-password for the superuser portcullis (scram-sha-256 from the network).
set -e
data=/var/lib/postgresql/data
if [ ! -s "$data/PG_VERSION" ]; then
  initdb -D "$data" -U portcullis --pwfile=/run/secrets/pg-password -A scram-sha-256 --no-locale -E UTF8 >/dev/null
  echo "host all all 0.0.0.0/0 scram-sha-256" >>"$data/pg_hba.conf"
fi
exec postgres -D "$data" -c listen_addresses='*' -c unix_socket_directories=/tmp
