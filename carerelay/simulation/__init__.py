"""The hospital-day simulation: a synthetic day driven through the real services on a simulated clock.

``hospital`` grows the demo health system to the census asked for, ``census`` writes the HL7 and WCTP
traffic of its patients, ``workload`` lays out the day (seeded, so a run can be repeated), ``clinicians``
answer what reaches them, ``runner`` moves the clock and drives the services, and ``report`` and
``chart`` say how fast and how safe it was. ``carerelay simulate`` is the thin adapter in front.
"""
