"""Sans-I/O protocol objects and the per-call state machine: no sockets, no awaits, no clocks.

One contract for every object here, the one of h11, wsproto and websockets' ``protocol.py``:

* **input** goes in through ``receive_*()`` (``receive_text``, ``receive_bytes``,
  ``receive_tts``, ...), with the time passed in as ``now`` where time matters;
* **what the peer should get is queued, never returned and never sent**: ``send_*()`` only
  queues, and the shell takes the queue with one drain call, ``data_to_send()``
  (:class:`~hotline.core.twilio.TwilioStream`, :class:`~hotline.core.elevenlabs.ElevenLabsStream`,
  :class:`~hotline.core.relay.RelaySession`, the recognisers of :mod:`hotline.core.scribe` and
  :mod:`hotline.core.deepgram`, :class:`~hotline.core.call.Call`);
* **what the shell should know or do** is queued the same way and drained with
  ``events_received()`` (a protocol's events) or ``actions()`` (the Call's), and the Call's
  caller audio for the recogniser with ``audio_to_recognise()``;
* an object **never calls the shell**: no callbacks, no sinks. The shell feeds it, then drains
  it, once per wake-up.
"""
