"""HL7 v2 over MLLP: framing, parsing, ACKs, the durable message store, the listener and the processor.

Data flow (see docs/subsystems/hl7.md): frame → store raw bytes (committed) → ACK → process in
arrival order through the patients service → status processed / filtered / error.
"""
