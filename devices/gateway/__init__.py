"""The home gateway: BLE collector -> durable on-disk queue -> MQTT (QoS 1) to the clinic.

A reading leaves the queue only after the broker acknowledged it (PUBACK). The queue is SQLite in
WAL mode with full fsync, bounded in size (oldest readings dropped first, counted and warned
about). Device clocks that are unset or wrong are corrected here, keeping the device's own time.
"""
