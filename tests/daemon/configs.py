"""What every daemon test config shares: the mock pins, a quick alert clearing, and the broker
and outbox of the test."""

GREEN, RED, BUZZER = 17, 27, 22


def service_sections(broker, tmp_path, beeps=1):
    """The `decision`, `gpio` and `mqtt` sections (YAML text) for a test broker and folder."""
    return f"""decision: {{alert_clear_s: 1.0}}
gpio:
  green: {{pin: {GREEN}}}
  red: {{pin: {RED}}}
  buzzer: {{pin: {BUZZER}, on_s: 0.05, off_s: 0.05, beeps: {beeps}}}
mqtt:
  host: {broker.host}
  port: {broker.port}
  outbox_path: {tmp_path / 'outbox.db'}
  stats_interval_s: 1
"""
