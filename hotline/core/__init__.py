"""Sans-I/O protocol objects and the per-call state machine: no sockets, no awaits, no clocks."""
