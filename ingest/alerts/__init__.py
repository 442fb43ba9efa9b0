"""Clinical alerts: rules stored in the database, evaluated on newly stored readings inside the
ingest transaction, with a lifecycle (open, acknowledged, resolved), a scheduler for missing data,
low battery and escalation, a durable event log behind the live SSE stream, and webhooks.
"""
