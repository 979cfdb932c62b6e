"""A UDP relay that drops a share of datagrams at random, in both directions.

For the false-alarm benchmark: probers talk to the relay, the relay to a healthy
presence server. Each client address gets its own upstream socket (as a NAT
would), so several probers can share one relay and every answer goes back to the
prober that asked. Every datagram, request or answer, is dropped independently
with probability `loss`; the relay counts what it forwarded and dropped.
"""

from __future__ import annotations

import asyncio
import random

from testbed.udp import Datagrams


class LossyRelay:
    def __init__(
        self, listen: tuple[str, int], upstream: tuple[str, int], loss: float, seed: int
    ) -> None:
        self.listen = listen
        self.upstream = upstream
        self.loss = loss
        self.rng = random.Random(seed)
        self.forwarded = 0
        self.dropped = 0
        self._front = Datagrams(self._from_client)
        self._backs: dict[tuple[str, int], Datagrams] = {}
        self._opening: set[asyncio.Future[None]] = set()

    async def start(self) -> LossyRelay:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self._front, local_addr=self.listen)
        return self

    def close(self) -> None:
        for side in (self._front, *self._backs.values()):
            side.close()

    def _keep(self) -> bool:
        if self.rng.random() < self.loss:
            self.dropped += 1
            return False
        self.forwarded += 1
        return True

    def _from_client(self, data: bytes, client: tuple[str, int]) -> None:
        back = self._backs.get(client)
        if back is None:
            back = Datagrams(lambda data, _addr: self._from_server(data, client))
            self._backs[client] = back
            task = asyncio.ensure_future(self._open(back, data))
            self._opening.add(task)
            task.add_done_callback(self._opening.discard)
            return
        if back.transport is not None and self._keep():
            back.transport.sendto(data, self.upstream)

    async def _open(self, back: Datagrams, first: bytes) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: back, local_addr=(self.listen[0], 0))
        if back.transport is not None and self._keep():
            back.transport.sendto(first, self.upstream)

    def _from_server(self, data: bytes, client: tuple[str, int]) -> None:
        if self._front.transport is not None and self._keep():
            self._front.transport.sendto(data, client)
