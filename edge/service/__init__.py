"""The daemon that only the Pi runs: capture threads, tracking, decisions, the indicator, MQTT."""
