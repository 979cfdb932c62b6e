#!/bin/sh
# Create the sqlite database presence-server.cfg needs, from Kamailio's own
# schema files (kamailio-sqlite-modules / kamailio packages).
#   usage: make-presence-db.sh /abs/path/presence.sqlite
set -eu
db="${1:?usage: $0 /abs/path/presence.sqlite}"
schema="${KAMAILIO_SQLITE_SCHEMA:-/usr/share/kamailio/db_sqlite}"
rm -f "$db"
cat "$schema/standard-create.sql" "$schema/presence-create.sql" | sqlite3 "$db"
echo "created $db"
