"""The clinician dashboard: static HTML/CSS/JS (no build step) served by the service.

The pages talk only to the public REST API with the signed-in user's token. :mod:`.static_routes`
serves the files with strict security headers; :mod:`.api_routes` (with its SQL in
:mod:`.queries`) answers the read-only summaries the pages show; :mod:`.component` plugs both
into the service.
"""
