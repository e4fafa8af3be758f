"""What the tests share: one way to start a server in-process (:mod:`.server`: hotline's app or
any ASGI stand-in; :mod:`.net` binds its socket), one way to spawn ``hotline serve``
(:mod:`.spawn`), one Twilio side built from the caller simulator's pieces (:mod:`.twilio`), and
the asyncio helpers (:mod:`.aio`)."""
