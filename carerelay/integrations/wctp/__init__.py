"""WCTP 1.3 (Wireless Communication Transfer Protocol): the server at ``POST /wctp`` for nurse call,
telemetry and alarm middleware, the outbox that answers originators (StatusInfo, MessageReply, pushed
or polled), and the client that pages through external carriers.

Data flow (see docs/subsystems/wctp.md): hardened parse (xml.py) → element model (model.py) → one
service call per operation (service.py) → the paging intake (integrations/paging) → alerts and
escalation; replies go out through the outbox (outbox.py) after commit.
"""
