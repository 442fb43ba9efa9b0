"""The clinic-side service: configuration, store, MQTT consumer, HTTP API, alerts, CLI."""
