"""The live feed: what the writer thread stored, fanned out to every open page (server-sent
events). The writer calls `publish_threadsafe`; each page's stream reads its own bounded queue.
A page that cannot keep up loses its queue's backlog and is told to reload its lists (`reset`)
instead of holding memory for it."""
import asyncio
import logging

from monitor.views import event_view

log = logging.getLogger(__name__)

CLIENT_QUEUE = 500
CLOSED = ("closed", None)


class Client:
    """One open live feed."""

    def __init__(self):
        self.queue = asyncio.Queue(maxsize=CLIENT_QUEUE)
        self.overflowed = False


class Hub:
    """Every open live feed of this monitor (lives on the asyncio loop)."""

    def __init__(self, loop):
        self.loop = loop
        self.clients = set()
        self.closed = False

    def subscribe(self):
        """A new feed's Client."""
        client = Client()
        self.clients.add(client)
        return client

    def unsubscribe(self, client):
        """A feed has ended."""
        self.clients.discard(client)

    def publish_threadsafe(self, result):
        """From the writer thread: a committed WriteResult, as feed items."""
        items = [("event", event_view(row)) for row in result.new_events]
        items += [("snapshot", {"event": event_id, "snapshot": f"/api/snapshots/{snapshot_id}"})
                  for event_id, snapshot_id in result.snapshots_linked]
        if result.changed_devices or result.new_events:
            changed = sorted(result.changed_devices | {r["device"] for r in result.new_events})
            items.append(("devices", changed))
        if items and not self.closed:
            try:
                self.loop.call_soon_threadsafe(self.publish, items)
            except RuntimeError:  # the loop has closed: shutting down
                pass

    def publish(self, items):
        """On the loop: queue the items for every feed."""
        for client in list(self.clients):
            for item in items:
                try:
                    client.queue.put_nowait(item)
                except asyncio.QueueFull:
                    client.overflowed = True
                    break

    def close(self):
        """End every feed (shutdown)."""
        self.closed = True
        for client in list(self.clients):
            while not client.queue.empty():
                client.queue.get_nowait()
            client.queue.put_nowait(CLOSED)
