"""What the tests share: one way to start the server (:mod:`.server`), one Twilio side built
from the caller simulator's pieces (:mod:`.twilio`), and the asyncio helpers (:mod:`.aio`)."""
