"""The landing page at `/`: where patients and staff start (the web issue builds the screens)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse

PAGE = """<!doctype html>
<html lang="en-GB">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>OpenGP</title></head>
<body>
<main>
<h1>OpenGP</h1>
<ul>
<li><a href="/patient">Patient services</a>: appointments, repeat prescriptions, your record</li>
<li><a href="/staff">Staff sign in</a></li>
<li><a href="/fhir/metadata">FHIR API capability statement</a> (for developers)</li>
</ul>
</main>
</body>
</html>
"""


NOT_YET = """<!doctype html>
<html lang="en-GB">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - OpenGP</title></head>
<body><main><h1>{title}</h1>
<p>This part of OpenGP is not switched on at this practice yet. Contact the practice by phone.</p>
<p><a href="/">Back to the start</a></p></main></body>
</html>
"""


async def landing(request: Request) -> HTMLResponse:
    return HTMLResponse(PAGE)


async def patient_services(request: Request) -> HTMLResponse:
    return HTMLResponse(NOT_YET.format(title="Patient services"))


async def staff_sign_in(request: Request) -> HTMLResponse:
    return HTMLResponse(NOT_YET.format(title="Staff sign in"))
