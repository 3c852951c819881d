"""Who is asking, what they may do, and the record of what they did.

Every path (FHIR API, screens, jobs) reaches the store through here: identities and
credentials, OAuth2 scopes, the policy decision, and the tamper-evident audit trail.
"""
