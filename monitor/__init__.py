"""maskdet monitor: the central monitor of a site. It subscribes to every door's MQTT topics,
stores what arrives (events once each, availability, retained camera state, stats) in SQLite or
PostgreSQL, and serves a dashboard and a JSON API.

It never imports the inference core nor the daemon: it reads the daemon's JSON Schemas
(`edge/service/schemas/`) as files, and shares only `edge.errors`, `edge.settings` and the strict
YAML loader `edge.config.loader` with the rest of the tree.

    config.py     the strict config (`/etc/maskdet-monitor/monitor.yaml`) and `--check`
    payloads.py   what arrives over MQTT, parsed and validated (hostile input is refused)
    store.py      the database: tables, writes (de-duplicated), queries, retention
    views.py      rows as the API's JSON; a device's health
    migrations/   Alembic migrations, the same for SQLite and PostgreSQL
    ingest.py     the MQTT session (QoS 1, persistent, acknowledged after the commit), the writer
    live.py       fan-out of stored events to the page's live feeds (server-sent events)
    auth.py       the token and the login cookie
    web.py        the aiohttp app: page, JSON API, CSV, live feed
    service.py    `maskdet monitor`: wiring, systemd notify and watchdog, retention, signals
    systemd.py    sd_notify (READY, WATCHDOG, STATUS, STOPPING), never blocking
    bench.py      `python -m monitor.bench`: the load benchmark
"""
