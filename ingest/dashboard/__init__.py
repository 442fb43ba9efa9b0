"""The clinician dashboard: static HTML/CSS/JS (no build step) served by the service, and the
read-only API behind its summaries.

:mod:`.static_routes` serves the files with strict security headers, :mod:`.api_routes` answers the
summaries (SQL in :mod:`.queries`), and :mod:`.component` plugs both into the service. The pages
talk only to the REST API, with the signed-in user's token.
"""
