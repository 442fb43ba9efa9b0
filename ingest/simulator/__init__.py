"""Simulated home devices publishing realistic readings over MQTT (demo and load generation).

``simulated_devices`` is pure (a seeded random generator and the time in, a contract payload
out), ``enrolment`` registers the simulated patients and devices through the REST API, ``run``
paces the publishing at a given rate.
"""
