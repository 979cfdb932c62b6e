"""The far end of the lab's background calls: a UA that answers every call and hangs up cleanly.

INVITE gets 100 then 200 (To tag, Contact, Record-Route echoed, SDP); its
retransmissions get the same 200 again; ACK is absorbed; BYE, OPTIONS and
anything else get 200. It exists to tell whether the proxy still routes calls
while presence traffic floods it.
"""

from __future__ import annotations

import secrets

from breaker.probes._sipmsg import SipRequest, build_response, parse_request, via_branch
from testbed.udp import Datagrams

_SDP = b"v=0\r\no=far 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"


class FarEnd:
    def __init__(self, port: int) -> None:
        self.port = port
        self.answered = 0
        self._answers: dict[str, bytes] = {}  # INVITE branch -> its 200
        self._udp = Datagrams(self._datagram)

    async def start(self, host: str = "127.0.0.1") -> FarEnd:
        await self._udp.open((host, self.port))
        return self

    def close(self) -> None:
        self._udp.close()

    def _datagram(self, data: bytes, source: tuple[str, int]) -> None:
        request = parse_request(data)
        if request is None or request.method == "ACK":
            return
        if request.method == "INVITE":
            self._invite(request, source)
            return
        self.answered += 1
        self._udp.send(build_response(request, 200, to_tag=secrets.token_hex(4)), source)

    def _invite(self, request: SipRequest, source: tuple[str, int]) -> None:
        via = request.get("via") or ""
        branch = via_branch(via) or ""
        answer = self._answers.get(branch)
        if answer is None:
            self._udp.send(build_response(request, 100), source)
            headers = [("Record-Route", rr) for rr in request.get_all("record-route")]
            headers += [
                ("Contact", f"<sip:far@127.0.0.1:{self.port}>"),
                ("Content-Type", "application/sdp"),
            ]
            answer = build_response(
                request, 200, to_tag=secrets.token_hex(4), headers=headers, body=_SDP
            )
            self._answers[branch] = answer
            if len(self._answers) > 10_000:
                self._answers.pop(next(iter(self._answers)))
            self.answered += 1
        self._udp.send(answer, source)
