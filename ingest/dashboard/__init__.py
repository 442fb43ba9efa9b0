"""The clinician dashboard: static HTML/CSS/JS (no build step) served by the service.

The pages talk only to the public REST API with the signed-in user's token; nothing here reads
the database. :mod:`.routes` serves the files with strict security headers and
:mod:`.component` plugs it into the service.
"""
