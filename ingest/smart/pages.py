"""The pages ``/smart/*`` answers with when it stops a launch. Pure: every value is escaped, so
an ``iss`` or an EHR's error text with markup in it is shown as text."""

from __future__ import annotations

from html import escape
from typing import Final

from starlette.responses import HTMLResponse

from ingest.smart.errors import SmartError

_PAGE: Final = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="referrer" content="no-referrer">
  <title>{title} · RPM</title>
  <link rel="stylesheet" href="/dashboard/css/app.css">
</head>
<body>
  <main id="main" class="smart-refusal">
    <h1>{title}</h1>
    <p id="reason">{reason}</p>
    <p>{advice}</p>
  </main>
</body>
</html>
"""

_ADVICE: Final = {
    400: "Start again from the patient's chart in the EHR. If this keeps happening, tell the clinic's"
    " administrator: the EHR may not be registered with this service.",
    401: "Sign in to the EHR again and reopen the app from the patient's chart.",
    403: "Reopen the app from a patient's chart in the EHR, so that it knows who you are and which"
    " patient you are looking at.",
    404: "This patient is not enrolled in remote patient monitoring at this clinic, or their record here"
    " is not linked to the EHR yet. Ask the clinic's administrator to enrol or link them.",
    502: "The EHR did not answer as expected. Try again in a minute; if it persists, tell the clinic's"
    " administrator.",
}


def refusal_page(error: SmartError) -> HTMLResponse:
    """The page for a refused launch, with the error's status."""
    body = _PAGE.format(
        title=escape(error.title),
        reason=escape(error.reason),
        advice=escape(_ADVICE.get(error.status, _ADVICE[400])),
    )
    return HTMLResponse(body, status_code=error.status, headers={"Cache-Control": "no-store"})
