"""The embedded profile's filesystem broker, with every message written atomically.

kombu's filesystem transport creates a message file under its final name and then writes it,
while its reader takes any `*.msg` file without waiting for the writer's lock. A worker polling
at the wrong moment reads an empty or partial message, fails to decode it, and stops consuming
altogether ("Unrecoverable error: JSONDecodeError"): every run asked afterwards stays queued.
Here the message is written under a name the reader ignores and renamed into place when complete.
"""

import os
import uuid
from time import monotonic

from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + ".part"  # not `<queue>.msg`, so the reader skips it
        try:
            with open(partial, "wb") as handle:
                handle.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise filesystem.ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
