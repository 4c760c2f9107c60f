"""Alerting: one alert per state change, to the log and a Slack-compatible webhook."""
