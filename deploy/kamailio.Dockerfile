# Kamailio 5.6 from Debian 12 with the modules kamailio-config/ needs.
FROM debian:bookworm-slim
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       kamailio kamailio-redis-modules kamailio-utils-modules \
       kamailio-presence-modules kamailio-sqlite-modules sqlite3 \
    && rm -rf /var/lib/apt/lists/*
COPY kamailio-config /etc/kamailio/breaker
RUN mkdir -p /run/kamailio
EXPOSE 5060/udp 5060/tcp
ENTRYPOINT ["kamailio", "-DD", "-E", "-Y", "/run/kamailio", "-w", "/run/kamailio"]
